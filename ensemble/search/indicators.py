"""Quality indicators of a front: non-domination, hypervolume, IGD, and the fixed HV reference.

Both objectives are minimised inside these functions (a front of ``(intra_d, inter_d)`` is passed
as ``(-intra_d, inter_d)`` or normalised first, see :func:`normalised_objectives`).

Which implementation, and why:

- :func:`hypervolume` is pymoo's ``HV`` indicator (exact in two dimensions), behind a guard that
  drops non-finite points and points that do not strictly dominate the reference (pymoo would
  count nothing for them either, but an empty or all-NaN set must give 0, not an error).
- :func:`nondominated` is pymoo's ``NonDominatedSorting(...).do(F, only_non_dominated_front=True)``
  on the finite rows (it keeps every copy of a non-dominated vector, as we need, and on the
  20,000-point archives of a default NSGA-II run it is about 6× faster than the sort-and-sweep
  this module used before, with the same rows kept); rows with a NaN or inf are dominated by
  definition here (pymoo has no rule for them), so a failed evaluation is never on the front.
- :func:`igd` is ours. pymoo's ``IGD(pf, norm_by_dist=True, ideal=..., nadir=...)`` gives the same
  value when every objective of the reference set has a non-zero range (a test checks this), but
  divides by zero and returns ``inf`` when one has none (a reference front of one point, or with
  one Inter-d value), and returns 0, the perfect score, for an empty front (pymoo 0.6.2); ours
  scales a zero range by 1 and gives ``inf`` for an empty front.

The fixed reference (:func:`hv_reference`) makes hypervolumes of runs, seeds and algorithms on
the same tables comparable: objectives are normalised to ``z_fid = 1 − intra_d / intra_ub`` and
``z_red = inter_d / inter_ub`` (both minimised), where ``intra_ub = d(max_g density_g, coverage
of all generators pooled)`` is an upper bound on any ensemble's Intra-d (pooled density is a
weighted mean of the members' densities; coverage only grows with members; d increases in both)
and ``inter_ub`` is 1.05 × the largest pairwise d (no ensemble's Inter-d, a mean of pairs, can
exceed the largest pair). The reference point is ``(1, 1)``, i.e. Intra-d = 0 and Inter-d =
``inter_ub``; HV lies in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from ensemble.scoring.knn import d_score

__all__ = [
    "nondominated",
    "nondominated_nd",
    "hypervolume",
    "igd",
    "hv_reference",
    "normalised_objectives",
    "INTER_MARGIN",
]

#: ``inter_ub`` is this factor times the largest pairwise d (see :func:`hv_reference`).
INTER_MARGIN = 1.05


def nondominated(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` (n, 2), both objectives minimised.

    Rows with equal objective vectors are all kept when that vector is non-dominated; rows with a
    NaN are dominated by definition.

    Raises:
        ValueError: ``F`` is not of shape (n, 2).

    Example:
        >>> nondominated(np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 2.0]])).tolist()
        [True, True, False]
    """
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[1] != 2:
        raise ValueError(f"objective matrix must have shape (n, 2), got {F.shape}")
    return nondominated_nd(F)


def nondominated_nd(F: np.ndarray) -> np.ndarray:
    """:func:`nondominated` for any number m >= 1 of minimised objectives (columns of ``F``)."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[1] < 1:
        raise ValueError(f"objective matrix must have shape (n, m), got {F.shape}")
    keep = np.zeros(len(F), dtype=bool)
    finite = np.flatnonzero(np.isfinite(F).all(1))
    if len(finite) == 0:
        return keep
    first = NonDominatedSorting().do(F[finite], only_non_dominated_front=True)
    keep[finite[np.asarray(first, dtype=np.int64)]] = True
    return keep


def hypervolume(F: np.ndarray, ref: np.ndarray | tuple[float, float]) -> float:
    """Hypervolume dominated by ``F`` (n, m; minimised) up to ``ref`` (pymoo's HV indicator).

    Points that do not strictly dominate ``ref`` add nothing; an empty set has HV 0.

    Example:
        >>> hypervolume(np.array([[0.5, 0.5]]), (1.0, 1.0))
        0.25
    """
    F = np.asarray(F, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if F.size == 0:
        return 0.0
    F = np.atleast_2d(F)
    F = F[np.isfinite(F).all(1) & (F < ref).all(1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref)(F))


def igd(front_F: np.ndarray, reference_F: np.ndarray) -> float:
    """Inverted generational distance of ``front_F`` to ``reference_F`` (normalised).

    Both are (n, m) objective vectors in the same orientation (e.g. columns intra_d, inter_d).
    Each objective is scaled by the range of the reference set (a zero range counts as 1); IGD is
    the mean, over reference points, of the Euclidean distance to the nearest front point. It is
    0 exactly when every reference vector is in the front, and ``inf`` for an empty front.

    Raises:
        ValueError: the reference set is empty, or the two sets differ in objectives.
    """
    A = np.atleast_2d(np.asarray(front_F, dtype=np.float64))
    R = np.atleast_2d(np.asarray(reference_F, dtype=np.float64))
    if R.size == 0:
        raise ValueError("igd needs a non-empty reference set")
    if A.size == 0:
        return math.inf
    if A.shape[1] != R.shape[1]:
        raise ValueError(f"front has {A.shape[1]} objectives but the reference has {R.shape[1]}")
    lo, hi = R.min(0), R.max(0)
    scale = np.where(hi - lo > 0, hi - lo, 1.0)
    d = np.sqrt((((R[:, None, :] - A[None, :, :]) / scale) ** 2).sum(-1))
    return float(d.min(1).mean())


def hv_reference(tables) -> dict[str, Any]:
    """The fixed normalisation and reference point used for hypervolume on ``tables``.

    ``tables`` is a :class:`ensemble.scoring.tables.ScoreTables`; see the module docstring for the bounds.
    """
    k = tables.k
    dens = np.asarray(tables.counts, np.float64) / (k * np.asarray(tables.n_fake, np.float64))
    cov_all = float(np.asarray(tables.hits, bool).any(1).mean())
    intra_ub = float(d_score(float(dens.max()), cov_all))
    pw = np.asarray(tables.pairwise, np.float64)
    off = ~np.eye(len(pw), dtype=bool)
    inter_max = float(pw[off].max()) if off.any() else 0.0
    inter_ub = INTER_MARGIN * inter_max if inter_max > 0 else 1.0
    return {
        "intra_d": 0.0,
        "inter_d": inter_ub,
        "intra_scale": intra_ub if intra_ub > 0 else 1.0,
        "inter_scale": inter_ub,
        "normalised_ref": [1.0, 1.0],
        "note": "HV of (1 - intra_d/intra_scale, inter_d/inter_scale), both minimised, ref (1, 1)",
    }


def normalised_objectives(intra: np.ndarray, inter: np.ndarray, ref: dict) -> np.ndarray:
    """Columns ``(1 − intra/intra_scale, inter/inter_scale)`` of ``ref`` (:func:`hv_reference`)."""
    return np.column_stack([1.0 - np.asarray(intra) / ref["intra_scale"],
                            np.asarray(inter) / ref["inter_scale"]])
