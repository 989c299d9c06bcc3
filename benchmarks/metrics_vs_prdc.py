"""Benchmark: ``ensemble.scoring.knn.density_coverage`` against ``prdc.compute_prdc`` (v0.2).

Both get the same features: N real and M = N fake points in D = 512, non-negative and correlated
like pooled ReLU activations (``|z @ A|``, A with a power-law spectrum; the "fake" set is shifted
and scaled a little so that precision/recall/density/coverage are far from 0 and 1). Each
contender computes all four values (ours with its own k-NN radii for recall, like prdc).

Method (see benchmarks/_common.py): every run is a fresh subprocess; time = wall clock of the one
call; peak memory = the kernel's peak RSS during the call (VmHWM reset just before it) minus the
RSS just before it, i.e. the extra memory the call needed, inputs and libraries excluded. Each
contender runs ``--reps`` times; the table shows the best time (the machine may be shared with
other jobs, so timings are noisy: the best is the least disturbed) and the largest peak. "same"
checks that the four values agree as integer counts (density·k·M, coverage·N, precision·M,
recall·N).

Targets at N = 10,000: at least 3x faster than prdc and at most 1/4 of its peak memory.

    python benchmarks/metrics_vs_prdc.py [--sizes 4708 10000] [--reps 3] [--dim 512]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, device_line, mib, mixing_matrix, relu_like_features  # noqa: E402

K = 5


def run_ours(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict:
    from ensemble.scoring.knn import density_coverage

    out = density_coverage(real=real, fake=fake, k=k)
    return {key: out[key] for key in ("precision", "recall", "density", "coverage")}


def run_prdc(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict:
    import prdc

    with contextlib.redirect_stdout(io.StringIO()):
        out = prdc.compute_prdc(real, fake, k)
    return {key: float(v) for key, v in out.items()}


def counts(res: dict, n: int, m: int, k: int = K) -> tuple[int, ...]:
    return (round(res["density"] * k * m), round(res["coverage"] * n),
            round(res["precision"] * m), round(res["recall"] * n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4708, 10000], help="N = M values")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3, help="isolated runs per contender (best time kept)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    print(f"density/coverage vs prdc.compute_prdc; D={args.dim}, k={K}; {device_line()}")
    print(f"best of {args.reps} runs each, every run in a fresh subprocess (shared machine: noisy)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            rng = np.random.default_rng([args.seed, n])
            mix = mixing_matrix(rng, args.dim)
            real = relu_like_features(rng, n, args.dim, mix=mix)
            fake = relu_like_features(rng, n, args.dim, mix=mix, shift=0.02, scale=0.95)
            paths = {"real": Path(tmp) / f"real{n}.npy", "fake": Path(tmp) / f"fake{n}.npy"}
            np.save(paths["real"], real)
            np.save(paths["fake"], fake)
            del real, fake
            me = Path(__file__).resolve()
            ours = best_of(me, "run_ours", paths, {}, args.reps)
            ref = best_of(me, "run_prdc", paths, {}, args.reps)
            same = all(counts(r, n, n) == counts(ref["result"], n, n) for r in ours["results"])
            rows.append((n, ours, ref, same))
            print(f"  N=M={n:,}: ours {ours['all_seconds']} s, prdc {ref['all_seconds']} s", flush=True)
        method = rows[0][1]["method"]

    print()
    print(f"{'N = M':>7} | {'ours s':>7} | {'prdc s':>7} | {'speed-up':>8} | {'ours peak':>10} | "
          f"{'prdc peak':>10} | {'mem ratio':>9} | same values")
    print("-" * 90)
    for n, ours, ref, same in rows:
        print(f"{n:>7,} | {ours['seconds']:7.2f} | {ref['seconds']:7.2f} | "
              f"{ref['seconds'] / ours['seconds']:7.2f}x | {mib(ours['peak_bytes']):>10} | "
              f"{mib(ref['peak_bytes']):>10} | {ours['peak_bytes'] / ref['peak_bytes']:9.3f} | "
              f"{'yes' if same else 'NO'}")
        print(f"{'':>7}   values: {ours['result']}")
    print(f"peak memory = extra RSS during the call ({method}); targets: >= 3x faster, <= 0.25 memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
