"""Benchmark: wall time of the score stage as the zoo grows, on the local and the Dask backend.

Workload: ``ScoreTables.from_features`` (every generator against the real set, then every
unordered pair of generators, both directions of d from one pass) for P = 8, 16, 32 generators of
``--n`` samples each against ``--n`` real points, ``--dim`` features (synthetic, non-negative and
correlated like pooled ReLU activations; each generator shifted/scaled a little). The work is
1 + 2P + P(P-1)/2 passes over an n x n distance matrix (the real k-NN radii; per generator its
own radii and the comparison with real; one per pair): linear in P at first, then dominated by the
P² pairs. The table prints that count relative to the smallest P next to the measured growth.

Backends
- **local**: ``backend="local"`` (n_jobs=1): the tasks one after the other in this process.
- **dask**: a ``dask.distributed.LocalCluster`` on 127.0.0.1 with ``--workers`` worker processes
  (one thread each, no dashboard): the same tasks, features handed to the cluster once, pairs in
  tiles. Cluster start-up is reported separately, not billed to the runs.

Method: one unmeasured warm-up run per backend on a small P (imports, thread pools, worker start),
then each P timed ``--repeat`` times (best kept; the machine may be shared). Every dask table is
checked to be identical (``np.array_equal``) to the local one. With only as many cores as
workers, the cluster cannot be faster than one process using all cores: the figures show the
overhead of the task layer and the growth with P, not a speed-up. On a machine shared with other
jobs, torch's multi-threaded kernels in the local process can suffer from the contention more
than single-threaded workers; ``--local-threads 1`` compares one worker's worth of CPU instead.

    python benchmarks/scale.py [--P 8,16,32] [--n 1000] [--dim 256] [--workers 2] [--repeat 1]
                               [--local-threads N] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, mixing_matrix, relu_like_features  # noqa: E402

FIELDS = ("counts", "hits", "density", "coverage", "d", "pairwise", "pairwise_directed")


def make_features(p: int, n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    mix = mixing_matrix(rng, dim)
    real = relu_like_features(rng, n, dim, mix=mix)
    fakes = {f"g{i:02d}": relu_like_features(rng, n, dim, mix=mix, shift=0.05 * (i % 7),
                                             scale=1.0 + 0.03 * (i % 5)) for i in range(p)}
    return real, fakes


def timed(real, fakes, backend, repeat: int, device: str = "auto"):
    from ensemble.scoring.tables import ScoreTables

    best, tables = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        tables = ScoreTables.from_features(real, fakes, k=5, progress=False, device=device,
                                           backend=backend)
        best = min(best, time.perf_counter() - t0)
    return best, tables


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--P", default="8,16,32", help="zoo sizes, comma-separated")
    ap.add_argument("--n", type=int, default=1000, help="samples per generator and real points")
    ap.add_argument("--dim", type=int, default=256, help="feature dimension")
    ap.add_argument("--workers", type=int, default=2, help="dask worker processes")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per cell (best kept)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (every task uses it)")
    ap.add_argument("--local-threads", type=int, default=None,
                    help="torch threads of the local run (default: torch's, one per core)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.P.split(",")]
    os.environ.setdefault("TQDM_DISABLE", "1")

    from distributed import Client, LocalCluster

    from ensemble.parallel import DaskBackend, LocalBackend

    if args.local_threads:
        import torch

        torch.set_num_threads(args.local_threads)
    print(device_line())
    print(f"score stage: n={args.n} samples per generator and real points, D={args.dim}, k=5; "
          f"{os.cpu_count()} CPU cores; best of {args.repeat}")
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster, set_as_default=False)
    start = time.perf_counter() - t0
    rows = []
    try:
        local, dask = LocalBackend(1), DaskBackend(client)
        warm_real, warm_fakes = make_features(3, 200, args.dim, seed=1)
        timed(warm_real, warm_fakes, local, 1, args.device)
        timed(warm_real, warm_fakes, dask, 1, args.device)
        print(f"dask LocalCluster: {args.workers} workers x 1 thread on 127.0.0.1, started in "
              f"{start:.1f} s (not billed)")
        for p in sizes:
            real, fakes = make_features(p, args.n, args.dim)
            t_local, a = timed(real, fakes, local, args.repeat, args.device)
            t_dask, b = timed(real, fakes, dask, args.repeat, args.device)
            same = all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in FIELDS)
            rows.append((p, p * (p - 1) // 2, t_local, t_dask, same))
            print(f"  P={p}: local {t_local:.1f} s, dask {t_dask:.1f} s, identical={same}", flush=True)
    finally:
        client.close()
        cluster.close()

    p0, _, l0, d0, _ = rows[0]
    print()
    def passes(p: int) -> int:
        return 1 + 2 * p + p * (p - 1) // 2

    print(f"{'P':>4} {'pairs':>6} {'local s':>9} {'dask s':>9} {'dask/local':>11} "
          f"{'local xP0':>10} {'dask xP0':>9} {'passes xP0':>11} {'same':>5}")
    for p, pairs, tl, td, same in rows:
        print(f"{p:>4} {pairs:>6} {tl:>9.2f} {td:>9.2f} {td / tl:>11.2f} {tl / l0:>10.2f} "
              f"{td / d0:>9.2f} {passes(p) / passes(p0):>11.2f} {'yes' if same else 'NO':>5}")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
