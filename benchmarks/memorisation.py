"""Benchmark: what the memorisation audit (issue 16) adds to the score stage's time.

Workload (PneumoniaMNIST-like, scaled down for a shared CPU by default): a real training set of
``--n`` features, ``--P`` generators of ``--n`` samples each, a held-out real set of ``--n-holdout``
(the validation split: 524 against 4,708 training images on PneumoniaMNIST, about 1/9), D = 512
synthetic features (non-negative and correlated like pooled ReLU activations).

Contenders, measured in one run of this script, alternately (``--reps`` times each; the minimum
counts, the machine may be shared):
- **plain**: ``ScoreTables.from_features(real, fakes, k=5)``: the score stage as it was;
- **audited**: the same call with ``holdout=...``: the per-generator passes also keep every
  sample's nearest real image (in the same pass over the distance blocks), plus the real set's
  1-NN radii and the held-out set's pass against the training set.

Both give the same score tables (checked); the ratio audited / plain is printed. Target: at most
1.10 (the audit adds at most 10% to the score stage).

    python benchmarks/memorisation.py [--P 8] [--n 2000] [--n-holdout 222] [--reps 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, mixing_matrix, relu_like_features  # noqa: E402

K = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--P", type=int, default=8, help="generators")
    ap.add_argument("--n", type=int, default=2000, help="real training features, and samples per generator")
    ap.add_argument("--n-holdout", type=int, default=None, help="held-out real features (default n/9)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    from ensemble.scoring.tables import ScoreTables

    rng = np.random.default_rng(0)
    mix = mixing_matrix(rng, args.dim)
    n_h = args.n_holdout or max(1, args.n // 9)
    real = relu_like_features(rng, args.n, args.dim, mix=mix)
    holdout = relu_like_features(rng, n_h, args.dim, mix=mix)
    fakes = {f"g{g:02d}": relu_like_features(rng, args.n, args.dim, mix=mix, shift=0.02 * g,
                                             scale=1.0 + 0.01 * g) for g in range(args.P)}
    fakes["g00"][: args.n // 4] = real[: args.n // 4]  # one member copies part of the training set
    print(f"device: {device_line()}")
    print(f"workload: P={args.P} generators x {args.n} samples, {args.n} real, {n_h} held-out, "
          f"D={args.dim}, k={K}")
    ScoreTables.from_features(real[:64], {"w": fakes["g00"][:64]}, k=K, progress=False,
                              holdout=holdout[:16])  # warm-up (and the kernel build), unmeasured
    times = {"plain": [], "audited": []}
    out = {}
    for _ in range(args.reps):
        for name in ("plain", "audited"):
            t0 = time.perf_counter()
            out[name] = ScoreTables.from_features(real, fakes, k=K, progress=False,
                                                  holdout=holdout if name == "audited" else None)
            times[name].append(time.perf_counter() - t0)
    a, b = out["plain"], out["audited"]
    for field in ("counts", "hits", "d", "pairwise_directed"):
        if not np.array_equal(getattr(a, field), getattr(b, field), equal_nan=field == "pairwise_directed"):
            raise SystemExit(f"the audit changed the score tables' {field}")
    plain, audited = min(times["plain"]), min(times["audited"])
    print(f"plain score stage   : {plain:8.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times['plain'])})")
    print(f"with the audit      : {audited:8.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times['audited'])})")
    print(f"ratio audited/plain : {audited / plain:8.3f}  (target <= 1.10)")
    print(f"flagged: {b.flagged}; exact copies of g00: {int(b.memorisation.loc['g00', 'exact_copies'])}")
    return 0 if audited / plain <= 1.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
