"""Benchmark the ensemble search on a reference-sized pool (P = 110) of synthetic generators.

One run prints:
  1. NSGA-II (pop 100 x 200 generations) vs random search at the same 20,000 evaluations, and
     greedy forward selection: final hypervolume (same fixed reference point) and wall time;
  2. NSGA-II vs random vs Optuna multi-objective TPE (the reference's optimiser, one boolean
     categorical per generator) at 1,000 evaluations;
  3. evaluations per second of the decomposed objectives (ScoreTables) vs the reference way
     (pool the members' features and recompute density/coverage; Inter-d from the 45 member pairs)
     at |E| = 10, and the ratio.

The pool imitates the reference zoo: 22 "GANs" x 5 snapshots (20k..100k iterations). Real
features are a Gaussian mixture; each GAN covers a subset of the modes with its own spread and a
bias that shrinks as training goes on; snapshots of one GAN share modes and bias (correlated); some
GANs mode-collapse late. Features are 32-D; sizes are set by --n-real / --n-fake.

    python benchmarks/search.py                      # builds the tables (~1-3 min on 2 cores)
    python benchmarks/search.py --tables /tmp/t.npz  # reuse (or create) a tables file
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ensemble.scoring.knn import density_coverage
from ensemble.scoring.tables import ScoreTables
from ensemble.search import EnsembleSearch, hv_reference, hypervolume, nondominated
from zoo.seeding import derive_seed


def make_zoo(*, n_gans=22, n_snap=5, n_real=2000, n_fake=1000, dim=32, n_clusters=12, seed=0):
    """Synthetic (real, {name: fake}) features shaped like the reference's 110-generator zoo."""
    rng = np.random.default_rng(derive_seed(seed, "bench-zoo"))
    centers = rng.normal(0, 3.0, size=(n_clusters, dim))
    w = rng.dirichlet(np.full(n_clusters, 2.0))
    real = centers[rng.choice(n_clusters, n_real, p=w)] + rng.normal(0, 1.0, (n_real, dim))
    fakes = {}
    for g in range(n_gans):
        k = int(rng.integers(2, n_clusters + 1))
        modes = rng.choice(n_clusters, size=k, replace=False)
        mode_w = rng.dirichlet(np.full(k, 1.0))
        spread0 = rng.uniform(0.7, 1.3)
        b = rng.normal(0, 1.0, dim)
        bias = b / np.linalg.norm(b) * rng.uniform(0.5, 3.5)
        collapse_at = int(rng.integers(2, n_snap + 3))  # >= n_snap: never collapses
        for s in range(n_snap):
            t = (s + 1) / n_snap
            shift = bias * (1.2 - t) + rng.normal(0, 0.05, dim)
            spread = spread0 * (1 + 0.3 * (1 - t))
            ws = mode_w * np.exp(rng.normal(0, 0.3, k))
            c = modes[rng.choice(k, n_fake, p=ws / ws.sum())]
            x = centers[c] + shift + rng.normal(0, spread, (n_fake, dim))
            if s >= collapse_at:
                anchors = x[rng.choice(n_fake, 8, replace=False)]
                x = anchors[rng.integers(0, 8, n_fake)] + rng.normal(0, 0.3, (n_fake, dim))
            fakes[f"gan{g:02d}@{(s + 1) * 20}k"] = x.astype(np.float32)
    return real.astype(np.float32), fakes


def run_optuna(tables, n_trials: int, seed: int, timeout: float, min_size: int = 2):
    """Optuna multi-objective TPE, one boolean categorical per generator (the reference's setup)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = tables.names
    ref = hv_reference(tables)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial):
        mask = np.array([trial.suggest_categorical(n, [False, True]) for n in names])
        if mask.sum() < min_size:  # infeasible: the worst corner of the reference box
            return 0.0, ref["inter_d"]
        return float(tables.intra_d(mask)), float(tables.inter_d(mask))

    t = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    wall = time.perf_counter() - t
    vals = np.array([tr.values for tr in study.trials if tr.values is not None])
    return vals, wall


def front_hv(intra_inter: np.ndarray, ref: dict) -> float:
    z = np.column_stack([1 - intra_inter[:, 0] / ref["intra_scale"], intra_inter[:, 1] / ref["inter_scale"]])
    return hypervolume(z[nondominated(z)], ref["normalised_ref"])


def eval_speed(tables, real, fakes, *, size=10, n_masks=10_000, n_ref=3, seed=0, with_prdc=True):
    """(decomposed evals/s, reference-way evals/s, prdc intra-only s per mask or None)."""
    rng = np.random.default_rng(seed)
    P, names = tables.n_generators, tables.names
    keys = rng.random((n_masks, P)).argsort(1) < size
    tables.intra_d(keys[:10]), tables.inter_d(keys[:10])  # warm caches
    with threadpool_limits(limits=1):  # as inside EnsembleSearch.fit
        t = time.perf_counter()
        for lo in range(0, n_masks, 100):
            tables.intra_d(keys[lo:lo + 100])
            tables.inter_d(keys[lo:lo + 100])
        fast = n_masks / (time.perf_counter() - t)

    t = time.perf_counter()
    for m in keys[:n_ref]:
        members = [names[j] for j in np.flatnonzero(m)]
        density_coverage(real=real, fake=np.concatenate([fakes[n] for n in members]), k=tables.k,
                         precision_recall=False)
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                density_coverage(real=fakes[a], fake=fakes[b], k=tables.k, precision_recall=False)
                density_coverage(real=fakes[b], fake=fakes[a], k=tables.k, precision_recall=False)
    slow = n_ref / (time.perf_counter() - t)

    prdc_s = None
    if with_prdc:
        try:
            from prdc import compute_prdc
        except ImportError:
            pass
        else:
            members = [names[j] for j in np.flatnonzero(keys[0])]
            t = time.perf_counter()
            compute_prdc(real_features=real, fake_features=np.concatenate([fakes[n] for n in members]),
                         nearest_k=tables.k)
            prdc_s = time.perf_counter() - t
    return fast, slow, prdc_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=Path, default=None, help="reuse this tables file (created if missing)")
    ap.add_argument("--n-real", type=int, default=2000)
    ap.add_argument("--n-fake", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--optuna-trials", type=int, default=1000, help="0 skips Optuna")
    ap.add_argument("--optuna-timeout", type=float, default=1800.0, help="seconds; trials done are reported")
    ap.add_argument("--no-prdc", action="store_true", help="skip the prdc timing (slow: fake x fake distances)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    real, fakes = make_zoo(n_real=args.n_real, n_fake=args.n_fake, seed=args.seed)
    if args.tables is not None and args.tables.is_file():
        tables = ScoreTables.load(args.tables)
        build = "loaded"
    else:
        t = time.perf_counter()
        tables = ScoreTables.from_features(real, fakes, k=5, progress=False, meta={"bench": "synthetic"})
        build = f"{time.perf_counter() - t:.1f} s"
        if args.tables is not None:
            tables.save(args.tables)
    P = tables.n_generators
    print(f"tables: P={P} (22 GANs x 5 snapshots), N_real={tables.n_real}, {args.n_fake} samples per "
          f"generator, 32-D features, k={tables.k}; build {build}")
    ref = hv_reference(tables)
    print(f"hypervolume reference: Intra-d 0 / Inter-d {ref['inter_d']:.4f}; normalised by "
          f"Intra-d upper bound {ref['intra_scale']:.4f}")

    rows = []

    def record(label, fn):
        t, c = time.perf_counter(), time.process_time()
        s = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        rows.append((label, s.n_evals_, s.hypervolume_, len(s.front_), s.front_["intra_d"].max(), wall, cpu))
        return s

    print("\n== 1. full budget (pop 100 x 200 generations = 20,000 evaluations) ==")
    nsga = record("nsga2 two-point (seed 0)", lambda: EnsembleSearch(seed=args.seed).fit(tables))
    record("nsga2 hux (seed 0)", lambda: EnsembleSearch(seed=args.seed, crossover="hux").fit(tables))
    for s in (1, 2):
        record(f"nsga2 two-point (seed {s})", lambda s=s: EnsembleSearch(seed=args.seed + s).fit(tables))
    rnd = record("random (seed 0)", lambda: EnsembleSearch("random", seed=args.seed).fit(tables))
    record("greedy (8 lambdas)", lambda: EnsembleSearch("greedy").fit(tables))
    _table(rows)
    ok = nsga.hypervolume_ > rnd.hypervolume_
    print(f"NSGA-II hypervolume {nsga.hypervolume_:.4f} > random {rnd.hypervolume_:.4f}: {ok}")
    print(f"NSGA-II at P={P}, 100 x 200: {rows[0][5]:.2f} s wall, {rows[0][6]:.2f} s CPU (target < 5 s); "
          f"machine load average {_load()}")

    print("\n== 2. 1,000 evaluations ==")
    rows.clear()
    record("nsga2 (pop 50 x 20 gen)", lambda: EnsembleSearch(seed=args.seed, pop_size=50, n_gen=20).fit(tables))
    record("nsga2 (pop 100 x 10 gen)", lambda: EnsembleSearch(seed=args.seed, n_gen=10).fit(tables))
    record("random", lambda: EnsembleSearch("random", seed=args.seed, pop_size=100, n_gen=10).fit(tables))
    _table(rows)
    if args.optuna_trials <= 0:
        print("optuna TPE skipped (--optuna-trials 0)")
        vals = None
    else:
        try:
            vals, wall = run_optuna(tables, args.optuna_trials, args.seed, args.optuna_timeout)
        except ImportError:
            print("optuna not installed; skipped (pip install gan-ensemble[bench])")
            vals = None
    if vals is not None:
        print(f"{'optuna TPE (multi-objective)':30s} {len(vals):>8,d} {front_hv(vals, ref):9.4f} "
              f"{int(nondominated(np.column_stack([-vals[:, 0], vals[:, 1]])).sum()):>6d} "
              f"{vals[:, 0].max():10.4f} {wall:8.1f}"
              + ("" if len(vals) >= args.optuna_trials else f"  (stopped by --optuna-timeout after {len(vals)} trials)"))

    print("\n== 3. objective evaluation speed at |E| = 10 ==")
    fast, slow, prdc_s = eval_speed(tables, real, fakes, seed=args.seed, with_prdc=not args.no_prdc)
    print(f"decomposed (ScoreTables, batches of 100): {fast:,.0f} ensembles/s (Intra-d + Inter-d)")
    print(f"reference way (pool features, density_coverage; 45 pairs x 2 for Inter-d): {slow:.3f} ensembles/s")
    print(f"ratio: {fast / slow:,.0f}x")
    if prdc_s is not None:
        print(f"prdc.compute_prdc on the pooled 10 members (Intra-d only): {prdc_s:.2f} s per ensemble "
              f"({fast * prdc_s:,.0f}x slower than decomposed Intra-d + Inter-d)")
    return 0 if ok else 1


def _load() -> str:
    try:
        import os

        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def _table(rows) -> None:
    print(f"{'algorithm':30s} {'evals':>8s} {'HV':>9s} {'front':>6s} {'max Intra':>10s} {'wall s':>8s} {'cpu s':>7s}")
    for label, n, hv, nf, best, wall, cpu in rows:
        print(f"{label:30s} {n:>8,d} {hv:9.4f} {nf:>6d} {best:10.4f} {wall:8.2f} {cpu:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
