"""Selection rules: how G* is picked from a Pareto front, and their registry.

A rule is ``fn(front: DataFrame, **params) -> (row, note)``: ``front`` has the columns
``members, size, intra_d, inter_d`` and is sorted by intra_d descending, then inter_d ascending,
then size ascending (as :attr:`EnsembleSearch.front_ <ensemble.search.EnsembleSearch>` is), so a
rule can break ties by taking the first of equal candidates; ``row`` is the position of G* and
``note`` says why a rule fell back (empty when it did not). A rule may return a third element, a
JSON-able record of how it chose (kept in ``selected.json`` as ``meta["rule_info"]``). Every rule
works with its defaults, except a rule that needs more than the front: it takes a ``context``
parameter and refuses to run without one (:func:`rule_needs_context`).

Built in: ``max-fidelity`` (the reference's choice), ``knee``, ``asf`` (weighted achievement
scalarisation), ``smallest-within`` and ``validated`` (a brief downstream check of candidates on
real validation data, :mod:`ensemble.search.validated`, loaded with the registry). Add one with
:func:`register_rule`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from zoo.registry import Registry

__all__ = [
    "RULES",
    "register_rule",
    "get_rule",
    "list_rules",
    "check_rule_params",
    "rule_needs_context",
    "max_fidelity",
    "knee",
    "asf",
    "smallest_within",
    "parse_weights",
]

log = logging.getLogger(__name__)

Rule = Callable[..., tuple[int, str]]


def _check_rule(name: str, fn: Any) -> None:
    if not callable(fn):
        raise ValueError(f"selection rule {name!r} must be callable as fn(front, **params) -> "
                         f"(row, note), got {type(fn).__name__}")


def _load_builtins() -> None:
    # rules that live in their own module register themselves on import (they import this one)
    importlib.import_module("ensemble.search.validated")


RULES: Registry[Rule] = Registry("selection rule", loader=_load_builtins, check=_check_rule)


def register_rule(name: str, fn: Rule | None = None, *, overwrite: bool = False):
    """Register a rule that picks G* from a front: ``fn(front: DataFrame, **params) -> (row, note)``.

    Registering a name twice is an error unless ``overwrite=True``. Usable as a decorator:
    ``@register_rule("name")``.
    """
    return RULES.register(name, fn, overwrite=overwrite)


def get_rule(name: str) -> Rule:
    """The rule called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    return RULES.get(name)


def list_rules() -> list[str]:
    """Sorted names of the registered selection rules."""
    return RULES.list()


def check_rule_params(name: str, params: dict) -> None:
    """Raise a ValueError now if ``params`` do not fit rule ``name`` (before a long search)."""
    fn = get_rule(name)
    try:
        inspect.signature(fn).bind(None, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters {params} for rule {name!r}: {exc}") from exc


def rule_needs_context(name: str) -> bool:
    """Whether rule ``name`` takes a ``context`` (data beyond the front, e.g. ``validated``)."""
    return "context" in inspect.signature(get_rule(name)).parameters


def _front_arrays(front: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(front) == 0:
        raise ValueError("the front is empty; nothing to select")
    return (front["intra_d"].to_numpy(float), front["inter_d"].to_numpy(float),
            front["size"].to_numpy(int))


@register_rule("max-fidelity")
def max_fidelity(front: pd.DataFrame) -> tuple[int, str]:
    """Highest Intra-d (the reference's choice); ties: lower Inter-d, then fewer members."""
    intra, inter, size = _front_arrays(front)
    order = np.lexsort((size, inter, -intra))
    return int(order[0]), ""


@register_rule("knee")
def knee(front: pd.DataFrame) -> tuple[int, str]:
    """Point farthest from the line joining the two extremes, on the ideal side (normalised).

    Falls back to ``max-fidelity`` (with a note and a warning) when the front has fewer than 3
    distinct points or none lies on the ideal side of the extremes' line.
    """
    intra, inter, size = _front_arrays(front)
    distinct = np.unique(np.column_stack([intra, inter]), axis=0)
    best, _ = max_fidelity(front)
    if len(distinct) < 3:
        note = (f"knee: the front has {len(distinct)} distinct point(s) (< 3); "
                "fell back to max-fidelity")
        log.warning(note)
        return best, note
    z1 = (intra.max() - intra) / (np.ptp(intra) or 1.0)  # 0 = best fidelity
    z2 = (inter - inter.min()) / (np.ptp(inter) or 1.0)  # 0 = least redundancy
    a = best
    b = int(np.lexsort((size, -intra, inter))[0])  # least redundancy; ties: higher fidelity
    ab = np.array([z1[b] - z1[a], z2[b] - z2[a]])
    norm = np.hypot(*ab)
    cross = ab[0] * (z2 - z2[a]) - ab[1] * (z1 - z1[a])
    ideal_side = np.sign(ab[0] * (0 - z2[a]) - ab[1] * (0 - z1[a])) or 1.0
    dist = ideal_side * cross / norm
    if not (dist > 1e-12).any():
        note = "knee: no front point lies on the ideal side of the extremes' line; fell back to max-fidelity"
        log.warning(note)
        return best, note
    order = np.lexsort((size, inter, -intra, -dist))
    return int(order[0]), ""


@register_rule("asf")
def asf(front: pd.DataFrame, weights=(0.5, 0.5)) -> tuple[int, str]:
    """Weighted achievement scalarisation: min max(w_fid·z_fid, w_red·z_red) on normalised objectives.

    Weights are importances: a larger ``w_fid`` penalises lost fidelity more and moves G* toward
    the high-fidelity end. A 1e-6 augmentation term breaks ties toward Pareto-better points.
    """
    w = parse_weights(weights)
    intra, inter, size = _front_arrays(front)
    z1 = (intra.max() - intra) / (np.ptp(intra) or 1.0)
    z2 = (inter - inter.min()) / (np.ptp(inter) or 1.0)
    s = np.maximum(w[0] * z1, w[1] * z2) + 1e-6 * (w[0] * z1 + w[1] * z2)
    order = np.lexsort((size, inter, -intra, s))
    return int(order[0]), ""


@register_rule("smallest-within")
def smallest_within(front: pd.DataFrame, tol: float = 0.01) -> tuple[int, str]:
    """Fewest members whose Intra-d is within ``tol`` (relative) of the best; ties: higher Intra-d."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol < 1):
        raise ValueError(f"tol must be a relative tolerance in [0, 1), got {tol!r}")
    intra, inter, size = _front_arrays(front)
    best = intra.max()
    ok = intra >= best - tol * abs(best) - 1e-12
    cand = np.flatnonzero(ok)
    order = np.lexsort((inter[cand], -intra[cand], size[cand]))
    return int(cand[order[0]]), ""


def parse_weights(weights) -> tuple[float, float]:
    """``(w_fid, w_red)`` from two positive numbers or a string ``"0.7,0.3"``, normalised to sum 1.

    Raises:
        ValueError: not two finite positive numbers.
    """
    if isinstance(weights, str):
        weights = [x for x in weights.replace(" ", "").split(",") if x]
    try:
        w = tuple(float(x) for x in weights)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights must be two numbers (w_fid, w_red), got {weights!r}") from exc
    if len(w) != 2 or not all(math.isfinite(x) and x > 0 for x in w):
        raise ValueError(f"weights must be two positive numbers (w_fid, w_red), e.g. 0.5,0.5; got {weights!r}")
    s = w[0] + w[1]
    return (w[0] / s, w[1] / s)
