"""Benchmark: building the score tables for P generators, three ways.

Workload (the reference protocol on PneumoniaMNIST): P = 40 generators x n = 4,708 samples, a
real set of 4,708, D = 512 features (synthetic, non-negative and correlated like pooled ReLU
activations; each generator is shifted/scaled a little so that the values are not degenerate).

Contenders
- **ours**: ``ScoreTables.from_features(real, fakes, k=5)``: radii of the real set and of every
  generator, every generator against real, every unordered pair once (both directions of d from
  one pass). On a CPU each block's comparisons run in the one-pass C kernel
  (``ensemble.scoring.blockkernel``, built once per machine into the cache folder; a first build, about
  1 s, would fall inside ours' time).
- **reference way**: ``prdc.compute_prdc`` per generator against real (P calls) and per ordered
  pair (P(P-1) calls): 40 + 1,560 calls at P = 40, each building three n x n distance matrices.
  Far too slow to run fully: a random sample of calls (``--ref-real`` generator-vs-real calls
  and ``--ref-pairs`` ordered pairs) is timed one by one and the mean time per call is
  multiplied by the number of calls (all calls have the same shape, so they cost the same).
  The sampled calls also check our tables: the d values must agree.
- **floor**: the distance-matrix products the tables cannot avoid, nothing else: one
  ``torch.addmm`` per row block (the same block size as ensemble.scoring.knn) producing squared
  distances into a preallocated buffer, for the real set with itself, every generator with
  itself, every generator against real and every unordered pair: 1 + 2P + P(P-1)/2 products.

Method (see benchmarks/_common.py): each contender runs in a fresh subprocess after an
unmeasured warm-up call on 64 rows; time = wall clock; peak memory = peak RSS during the call
minus the RSS just before it (inputs and libraries excluded). The machine may be shared with other
jobs, so timings are noisy.

Size: the default is the full workload. If that would take too long here (it needs roughly
``(1 + 2P + P(P-1)/2) x`` the time of one 4,708 x 4,708 x 512 product for the floor, and about 1.7x
that for ours), run a smaller ``--P`` and pass ``--extrapolate-to 40``: ours and the floor are
scaled by the number of n x n products (1 + 2P + P(P-1)/2, dominated by the P² pairs); the
reference way by its number of prdc calls; peak memory of ours is reported as measured (it grows
linearly with P: the centred float32 copy of every generator's features is kept for the pairs).

Targets: at least 3x faster than the reference way, within 1.5x of the floor.

With and without the pair table: ``ScoreTables.from_features(..., pairwise=False)`` (what the score
stage builds when no selected objective needs generator-pair distances, e.g. ``class-intra-d`` and
``coverage-overlap``) skips the P(P-1)/2 pair products and the P generator radii. Both are timed in
the same run, alternating, best of ``--reps``, and their ratio printed; ``--pairs-only`` runs just
this comparison (no reference, no floor).

    python benchmarks/score_tables.py [--P 40] [--n 4708] [--ref-pairs 20] [--extrapolate-to 40] [--reps 1]
    python benchmarks/score_tables.py --P 40 --n 1000 --pairs-only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, mib, mixing_matrix, relu_like_features, run_isolated  # noqa: E402

K = 5


# ---------------------------------------------------------------------------- contenders
def run_ours(real: np.ndarray, fakes: dict[str, np.ndarray]) -> dict:
    from ensemble.scoring.tables import ScoreTables

    t = ScoreTables.from_features(real, fakes, k=K, progress=False)
    return {"names": t.names, "directed": np.nan_to_num(t.pairwise_directed, nan=-1.0).tolist(),
            "d": t.d.tolist()}


def run_ours_no_pairs(real: np.ndarray, fakes: dict[str, np.ndarray]) -> dict:
    """The score stage without the pair table (no Inter-d)."""
    from ensemble.scoring.tables import ScoreTables

    t = ScoreTables.from_features(real, fakes, k=K, pairwise=False, progress=False)
    return {"names": t.names, "d": t.d.tolist()}


def run_reference(real: np.ndarray, fakes: dict[str, np.ndarray], calls: list) -> dict:
    """prdc.compute_prdc for each call: ["real", g] (g vs real) or [g, h] (h against g as real)."""
    import prdc

    from ensemble.scoring.knn import d_score

    seconds, values = [], []
    for ref, other in calls:
        a = real if ref == "real" else fakes[ref]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            r = prdc.compute_prdc(a, fakes[other], K)
        seconds.append(time.perf_counter() - t0)
        values.append(float(d_score(float(r["density"]), float(r["coverage"]))))
    return {"seconds": seconds, "d": values}


def run_floor(real: np.ndarray, fakes: dict[str, np.ndarray]) -> dict:
    """Time only the unavoidable blocked products (centred float32 copies made first, untimed)."""
    import torch

    from ensemble.scoring.knn import rows_per_block
    from zoo.device import resolve_device

    dev = resolve_device("auto")
    center = real.mean(0, dtype=np.float64).astype(np.float32)
    sets = []  # (centred float32 features, their squared norms): all a product needs
    for x in [real, *fakes.values()]:
        c = torch.from_numpy(x - center).to(dev)
        sets.append((c, (c * c).sum(1)))
    p = len(sets) - 1
    jobs = [(0, 0)] + [(g, g) for g in range(1, p + 1)] + [(g, 0) for g in range(1, p + 1)]
    jobs += [(g, h) for g in range(1, p + 1) for h in range(g + 1, p + 1)]
    widest = max(len(c) for c, _ in sets)
    buf = torch.empty(rows_per_block(widest, None) * widest, dtype=torch.float32, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for a_i, b_i in jobs:
        (a, _), (b, b_sq) = sets[a_i], sets[b_i]
        step = rows_per_block(len(b), None)
        for lo in range(0, len(a), step):
            hi = min(len(a), lo + step)
            out = buf[: (hi - lo) * len(b)].view(hi - lo, len(b))
            torch.addmm(b_sq[None, :], a[lo:hi], b.T, beta=1.0, alpha=-2.0, out=out)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "products": len(jobs)}


# ---------------------------------------------------------------------------- driver
def n_products(p: int) -> int:
    """n x n distance products the tables need: real radii, P radii, P vs real, P(P-1)/2 pairs."""
    return 1 + 2 * p + p * (p - 1) // 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--P", type=int, default=40, help="number of generators")
    ap.add_argument("--n", type=int, default=4708, help="samples per generator and real points")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--ref-pairs", type=int, default=20, help="ordered pairs timed the reference way")
    ap.add_argument("--ref-real", type=int, default=3, help="generator-vs-real prdc calls timed")
    ap.add_argument("--extrapolate-to", type=int, default=None, metavar="P",
                    help="also report figures scaled to this many generators")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor measurement")
    ap.add_argument("--reps", type=int, default=1, help="alternating runs of ours and the floor; best of each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs-only", action="store_true",
                    help="only time the score stage with and without the pair table")
    args = ap.parse_args(argv)
    if args.P < 2:
        ap.error("--P must be at least 2 (the tables need pairs)")

    p, n = args.P, args.n
    target = args.extrapolate_to or p
    print(f"score tables: P={p} generators x n={n:,}, N_real={n:,}, D={args.dim}, k={K}; {device_line()}")
    me = Path(__file__).resolve()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        mix = mixing_matrix(rng, args.dim)
        np.save(Path(tmp) / "real.npy", relu_like_features(rng, n, args.dim, mix=mix))
        fake_dir = Path(tmp) / "fakes"
        fake_dir.mkdir()
        for g in range(p):
            f = relu_like_features(rng, n, args.dim, mix=mix, shift=float(rng.uniform(0.0, 0.05)),
                                   scale=float(rng.uniform(0.85, 1.1)))
            np.save(fake_dir / f"g{g:03d}.npy", f)
        inputs = {"real": Path(tmp) / "real.npy", "fakes": fake_dir}
        names = [f"g{g:03d}" for g in range(p)]
        if args.pairs_only:
            return _pairs_comparison(me, inputs, p, args.reps)

        # ours and the floor alternate, best of --reps each: on a shared machine a load change
        # between the two would otherwise move their ratio
        runs_ours, runs_floor = [], []
        for rep in range(args.reps):
            runs_ours.append(run_isolated(me, "run_ours", inputs, {}))
            print(f"  ours (run {rep + 1}): {runs_ours[-1]['seconds']:.1f} s", flush=True)
            if not args.no_floor:
                runs_floor.append(run_isolated(me, "run_floor", inputs, {}))
                print(f"  floor (run {rep + 1}): {runs_floor[-1]['result']['seconds']:.1f} s", flush=True)
        ours = min(runs_ours, key=lambda r: r["seconds"])
        ours["peak_bytes"] = max(r["peak_bytes"] for r in runs_ours)
        floor = min(runs_floor, key=lambda r: r["result"]["seconds"]) if runs_floor else None
        pairs = [(g, h) for g in range(p) for h in range(p) if g != h]
        pick = rng.choice(len(pairs), size=min(args.ref_pairs, len(pairs)), replace=False)
        real_pick = rng.choice(p, size=min(args.ref_real, p), replace=False)
        calls = [["real", names[g]] for g in real_pick] + \
                [[names[pairs[i][0]], names[pairs[i][1]]] for i in pick]
        ref = run_isolated(me, "run_reference", inputs, {"calls": calls})
        print(f"  reference: {len(calls)} prdc calls in {sum(ref['result']['seconds']):.1f} s", flush=True)

    # correctness: the sampled prdc calls against our tables
    index = {nm: i for i, nm in enumerate(ours["result"]["names"])}
    worst = 0.0
    for (a, b), d_ref in zip(calls, ref["result"]["d"], strict=True):
        d_ours = ours["result"]["d"][index[b]] if a == "real" else ours["result"]["directed"][index[a]][index[b]]
        worst = max(worst, abs(d_ours - d_ref))

    per_call = float(np.mean(ref["result"]["seconds"]))
    ref_calls = lambda q: q + q * (q - 1)  # noqa: E731
    scale = n_products(target) / n_products(p)
    rows = [("measured", p, ours["seconds"], per_call * ref_calls(p),
             floor["result"]["seconds"] if floor else None)]
    if target != p:
        rows.append(("extrapolated", target, ours["seconds"] * scale, per_call * ref_calls(target),
                     floor["result"]["seconds"] * scale if floor else None))

    print()
    print(f"{'':>12} | {'P':>3} | {'ours s':>8} | {'reference s':>11} | {'floor s':>8} | "
          f"{'ref/ours':>8} | {'ours/floor':>10}")
    print("-" * 80)
    for label, q, t_ours, t_ref, t_floor in rows:
        fl = "-" if t_floor is None else f"{t_floor:8.1f}"
        of = "-" if t_floor is None else f"{t_ours / t_floor:9.2f}x"
        print(f"{label:>12} | {q:>3} | {t_ours:8.1f} | {t_ref:11.1f} | {fl:>8} | "
              f"{t_ref / t_ours:7.1f}x | {of:>10}")
    print()
    print(f"reference: {len(calls)} prdc calls timed ({len(real_pick)} vs real, {len(pick)} ordered pairs), "
          f"mean {per_call:.2f} s/call (min {min(ref['result']['seconds']):.2f}, "
          f"max {max(ref['result']['seconds']):.2f}), x {ref_calls(p):,} calls at P={p}"
          + (f", x {ref_calls(target):,} at P={target}" if target != p else ""))
    if target != p:
        print(f"ours and floor extrapolated by n x n products: {n_products(p)} at P={p} -> "
              f"{n_products(target)} at P={target} (x{scale:.2f})")
    print(f"peak memory (extra RSS, {ours['method']}): ours {mib(ours['peak_bytes'])} (P={p}), "
          f"reference {mib(ref['peak_bytes'])} (one call at a time), "
          f"floor {mib(floor['peak_bytes']) if floor else '-'} (centred float32 copies of all features + one block)")
    print(f"sampled prdc d vs our tables: max |difference| = {worst:.2e}")
    print("targets: >= 3x faster than the reference way, within 1.5x of the floor")
    return 0


def _pairs_comparison(me: Path, inputs: dict, p: int, reps: int) -> int:
    """Time the score stage with and without the pair table (alternating, best of ``reps``)."""
    with_pairs, without = [], []
    for rep in range(reps):
        with_pairs.append(run_isolated(me, "run_ours", inputs, {}))
        without.append(run_isolated(me, "run_ours_no_pairs", inputs, {}))
        print(f"  run {rep + 1}: with pair table {with_pairs[-1]['seconds']:.1f} s, "
              f"without {without[-1]['seconds']:.1f} s", flush=True)
    a = min(with_pairs, key=lambda r: r["seconds"])
    b = min(without, key=lambda r: r["seconds"])
    same = np.array_equal(np.asarray(a["result"]["d"]), np.asarray(b["result"]["d"]))
    print()
    print(f"score stage at P={p}: with the pair table {a['seconds']:.1f} s (peak {mib(a['peak_bytes'])}), "
          f"without {b['seconds']:.1f} s (peak {mib(b['peak_bytes'])}): "
          f"{a['seconds'] / b['seconds']:.1f}x faster without; per-generator d identical: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
