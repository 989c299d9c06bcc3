"""Objectives of the ensemble search, and their registry.

An objective is a named, vectorised function ``fn(tables, masks) -> values`` of the score tables
(:class:`ensemble.scoring.tables.ScoreTables`) and a ``(pop, P)`` boolean mask matrix, one value
per mask row, with a direction (``"max"`` or ``"min"``). :func:`get_objective` returns it (an
:class:`Objective`, callable as that function); :func:`register_objective` adds one;
``EnsembleSearch(objectives=(...))`` searches any two or more of them (NSGA-II handles more).

Built in (docs/method.md gives the formulas):

- ``intra-d`` (max): d(real, pooled members' samples), the paper's fidelity objective;
- ``inter-d`` (min): mean d between member pairs, the paper's redundancy objective (needs the
  pair table);
- ``class-intra-d`` (max): per class c, d(real of class c, members' class-c samples), averaged
  over classes; needs tables built with labels;
- ``coverage-overlap`` (min): mean over member pairs of the Jaccard overlap of the real points
  they cover (per class when labelled); needs no generator-pair distances.

Each objective also names an upper bound of its values on given tables (``bound``), so the
hypervolume of any objective set is normalised to [0, 1] against a fixed reference
(:func:`objective_reference`); for the default pair the reference is exactly
:func:`~ensemble.search.indicators.hv_reference`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.scoring.knn import d_score
from ensemble.search.indicators import INTER_MARGIN, hv_reference
from zoo.registry import Registry

__all__ = [
    "Objective",
    "OBJECTIVES",
    "DEFAULT_OBJECTIVES",
    "DIRECTIONS",
    "register_objective",
    "get_objective",
    "list_objectives",
    "resolve_objectives",
    "objective_reference",
    "normalise",
]

#: Directions an objective may have.
DIRECTIONS = ("max", "min")
#: The published objectives, the search's default.
DEFAULT_OBJECTIVES = ("intra-d", "inter-d")


@dataclass(frozen=True)
class Objective:
    """A named objective: ``fn(tables, masks) -> values`` (one per mask row) and its direction.

    ``pairs``: a mean over member pairs, so an ensemble of one generator scores 0 (no pair, no
    redundancy); ``needs_pairwise``: reads the generator-pair table (the score stage must build
    it); ``needs_labels``: reads the per-class fields (tables built with labels); ``bound``:
    ``bound(tables) -> float``, an upper bound of the values (normalises the hypervolume).
    """

    name: str
    fn: Callable[[Any, np.ndarray], np.ndarray]
    direction: str
    bound: Callable[[Any], float]
    pairs: bool = False
    needs_pairwise: bool = False
    needs_labels: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective {self.name!r}: direction must be one of {DIRECTIONS}, "
                             f"got {self.direction!r}")
        if not callable(self.fn) or not callable(self.bound):
            raise ValueError(f"objective {self.name!r}: fn and bound must be callable")

    def __call__(self, tables, masks) -> np.ndarray:
        """Values of the masks (``(pop, P)`` or one ``(P,)`` mask) on ``tables``."""
        return np.asarray(self.fn(tables, masks), dtype=np.float64)

    @property
    def column(self) -> str:
        """Column name in fronts and CSV files (``intra-d`` -> ``intra_d``)."""
        return self.name.replace("-", "_")

    @property
    def maximise(self) -> bool:
        return self.direction == "max"


def _check_objective(name: str, obj: Any) -> None:
    if not isinstance(obj, Objective):
        raise ValueError(f"objective {name!r} must be an ensemble.search.objectives.Objective "
                         f"(use register_objective), got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"objective {obj.name!r} registered under another name, {name!r}")


OBJECTIVES: Registry[Objective] = Registry("objective", check=_check_objective)


def register_objective(name: str, fn: Callable | None = None, *, direction: str,
                       bound: Callable[[Any], float] | None = None, pairs: bool = False,
                       needs_pairwise: bool = False, needs_labels: bool = False,
                       description: str = "", overwrite: bool = False):
    """Register ``fn(tables, masks) -> values`` as objective ``name`` with ``direction`` max or min.

    ``bound(tables)`` (default: the largest single-generator value times 1.05, or 1) bounds the
    values for the hypervolume; see :class:`Objective` for the flags. Registering a name twice
    is an error unless ``overwrite=True``. Usable as a decorator:
    ``@register_objective("name", direction="max")``. Returns ``fn``.
    """
    def add(f: Callable) -> Callable:
        obj = Objective(name=name, fn=f, direction=direction, bound=bound or _default_bound(f),
                        pairs=pairs, needs_pairwise=needs_pairwise, needs_labels=needs_labels,
                        description=description or (f.__doc__ or "").strip().split("\n")[0])
        OBJECTIVES.register(name, obj, overwrite=overwrite)
        return f

    return add(fn) if fn is not None else add


def get_objective(name: str) -> Objective:
    """The objective called ``name`` (callable as ``fn(tables, masks)``); unknown names raise."""
    return OBJECTIVES.get(name)


def list_objectives() -> list[str]:
    """Sorted names of the registered objectives."""
    return OBJECTIVES.list()


def resolve_objectives(objectives: str | Sequence[str]) -> list[Objective]:
    """The objectives named by ``objectives`` (a sequence, or a string ``"a,b"``), in order.

    Raises:
        ValueError: fewer than two, a name repeated, or an unknown name (listing the known).
    """
    if isinstance(objectives, str):
        objectives = [x for x in objectives.replace(" ", "").split(",") if x]
    try:
        names = [str(x) for x in objectives]
    except TypeError:
        raise ValueError(f"objectives must be a sequence of names, got {objectives!r}") from None
    if len(names) < 2:
        raise ValueError(f"a multi-objective search needs at least two objectives, got {names}; "
                         f"known: {', '.join(list_objectives())}")
    if len(set(names)) != len(names):
        raise ValueError(f"objectives repeat: {names}")
    return [get_objective(n) for n in names]


def objective_reference(tables, objectives: Sequence[Objective]) -> dict[str, Any]:
    """The fixed normalisation and reference point of the hypervolume for ``objectives``.

    The default pair gives :func:`~ensemble.search.indicators.hv_reference` unchanged. Otherwise
    each objective j is normalised to ``z_j = 1 − v/scale_j`` (maximised) or ``v/scale_j``
    (minimised), ``scale_j`` its ``bound(tables)``, all minimised against the point (1, …, 1).
    """
    names = [o.name for o in objectives]
    if tuple(names) == DEFAULT_OBJECTIVES:
        return hv_reference(tables)
    scales = []
    for o in objectives:
        b = float(o.bound(tables))
        scales.append(b if np.isfinite(b) and b > 0 else 1.0)
    return {"objectives": names, "directions": [o.direction for o in objectives], "scales": scales,
            "normalised_ref": [1.0] * len(names),
            "note": "HV of (1 - v/scale) for maximised and v/scale for minimised objectives, ref (1, ..., 1)"}


def normalise(values: np.ndarray, ref: dict, objectives: Sequence[Objective]) -> np.ndarray:
    """Columns of ``values`` (n, m) normalised and minimised with ``ref`` (:func:`objective_reference`)."""
    scales = ref["scales"] if "scales" in ref else [ref["intra_scale"], ref["inter_scale"]]
    v = np.asarray(values)
    cols = [1.0 - v[:, j] / s if o.maximise else v[:, j] / s
            for j, (o, s) in enumerate(zip(objectives, scales, strict=True))]
    return np.column_stack(cols)


# --------------------------------------------------------------------------- bounds


def _default_bound(fn: Callable) -> Callable[[Any], float]:
    def bound(tables) -> float:
        single = np.asarray(fn(tables, np.eye(tables.n_generators, dtype=bool)), dtype=np.float64)
        single = single[np.isfinite(single)]
        top = float(np.abs(single).max()) if len(single) else 0.0
        return INTER_MARGIN * top if top > 0 else 1.0

    return bound


def _intra_bound(tables) -> float:
    return hv_reference(tables)["intra_scale"]


def _inter_bound(tables) -> float:
    return hv_reference(tables)["inter_scale"]


def _class_intra_bound(tables) -> float:
    """Mean over classes of d(max density of one generator, coverage of all pooled): an upper bound."""
    if not tables.has_labels:
        return _intra_bound(tables)
    n = np.asarray(tables.class_n_fake, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dens = np.where(n > 0, tables.class_counts / (tables.k * n), 0.0)  # (C, P)
    covered = np.asarray(tables.class_hits, bool).any(1)
    cov = np.array([covered[tables.real_labels == c].mean() for c in np.unique(tables.real_labels)])
    b = float(np.mean(d_score(dens.max(1), cov)))
    return b if b > 0 else 1.0


def _overlap_bound(tables) -> float:
    w = np.asarray(tables.overlap_matrix(), np.float64)
    off = ~np.eye(len(w), dtype=bool)
    top = float(w[off].max()) if off.any() else 0.0
    return INTER_MARGIN * top if top > 0 else 1.0


# --------------------------------------------------------------------------- built in


@register_objective("intra-d", direction="max", bound=_intra_bound)
def intra_d(tables, masks) -> np.ndarray:
    """Intra-d: d(real, pooled members' samples) (fidelity and diversity of the pool)."""
    return tables.intra_d(masks)


@register_objective("inter-d", direction="min", bound=_inter_bound, pairs=True, needs_pairwise=True)
def inter_d(tables, masks) -> np.ndarray:
    """Inter-d: mean d over member pairs (redundancy between members' samples)."""
    return tables.inter_d(masks)


@register_objective("class-intra-d", direction="max", bound=_class_intra_bound, needs_labels=True)
def class_intra_d(tables, masks) -> np.ndarray:
    """Class-intra-d: per-class d(real of class c, members' class-c samples), mean over classes."""
    return tables.class_intra_d(masks)


@register_objective("coverage-overlap", direction="min", bound=_overlap_bound, pairs=True)
def coverage_overlap(tables, masks) -> np.ndarray:
    """Coverage-overlap: mean Jaccard overlap of the real points member pairs cover."""
    return tables.coverage_overlap(masks)
