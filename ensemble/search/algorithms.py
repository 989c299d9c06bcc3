"""Search algorithms over ensembles, and their registry.

An algorithm is ``fn(search, archive, seed) -> result or None``: ``search`` is the
:class:`~ensemble.search.EnsembleSearch` being fitted (its parameters: ``pop_size``, ``n_gen``,
``n_evals``, ...), ``archive`` an :class:`~ensemble.search.archive.Archive` through which every
mask is evaluated (``archive.evaluate(X, gen)``) and each generation or batch closed
(``archive.end_generation(gen)``), and ``seed`` the search's derived seed. Whatever it returns
becomes ``search.result_``. Every algorithm works with ``EnsembleSearch``'s defaults.

Built in:

- ``nsga2``: pymoo NSGA-II on boolean masks with the operators of
  :mod:`ensemble.search.operators` (sparse sampling, size repair, two-point or half-uniform
  crossover, bit-flip mutation, hashed duplicate elimination, batch mating).
- ``random``: the same evaluation budget (``pop_size·n_gen``) of seeded random masks whose sizes
  are uniform in ``[min_size, max_size]``.
- ``exhaustive``: every subset with a size in range (P ≤ 20): the exact front, for checking.
- ``greedy``: forward selection on ``intra_d − λ·inter_d`` for several λ, from the best pair
  (with other objectives: the first, higher is better, minus λ times the second, lower is better).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ensemble.search.archive import Archive
from ensemble.search.operators import (
    ArchiveRecorder,
    BatchMating,
    MaskDuplicates,
    MaskProblem,
    SizeRepair,
    SparseSampling,
    make_crossover,
    make_mutation,
    random_masks,
)
from zoo.registry import Registry
from zoo.seeding import derive_seed

__all__ = [
    "ALGORITHMS",
    "register_algorithm",
    "get_algorithm",
    "list_algorithms",
    "run_nsga2",
    "run_random",
    "run_exhaustive",
    "run_greedy",
    "EXHAUSTIVE_MAX_P",
    "DEFAULT_GREEDY_LAMBDAS",
]

log = logging.getLogger(__name__)

#: The largest pool ``exhaustive`` enumerates (2^P subsets).
EXHAUSTIVE_MAX_P = 20
#: The λ ladder ``greedy`` uses when ``lambdas`` is None.
DEFAULT_GREEDY_LAMBDAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0)

Algorithm = Callable[[Any, Archive, int], Any]


def _check_algorithm(name: str, fn: Any) -> None:
    if not callable(fn):
        raise ValueError(f"search algorithm {name!r} must be callable as fn(search, archive, seed), "
                         f"got {type(fn).__name__}")


ALGORITHMS: Registry[Algorithm] = Registry("search algorithm", check=_check_algorithm)


def register_algorithm(name: str, fn: Algorithm | None = None, *, overwrite: bool = False):
    """Register a search algorithm ``fn(search, archive, seed) -> result or None``.

    Registering a name twice is an error unless ``overwrite=True``. Usable as a decorator:
    ``@register_algorithm("name")``.
    """
    return ALGORITHMS.register(name, fn, overwrite=overwrite)


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    return ALGORITHMS.get(name)


def list_algorithms() -> list[str]:
    """Sorted names of the registered search algorithms."""
    return ALGORITHMS.list()


@register_algorithm("nsga2")
def run_nsga2(search, archive: Archive, seed: int):
    """pymoo NSGA-II; returns pymoo's ``Result`` (its final population)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2, binary_tournament
    from pymoo.operators.selection.tournament import TournamentSelection
    from pymoo.optimize import minimize

    lo, hi = archive.min_size, archive.max_size
    problem = MaskProblem(archive)
    repair, dups = SizeRepair(lo, hi, seed=derive_seed(seed, "repair")), MaskDuplicates()
    mating = BatchMating(TournamentSelection(func_comp=binary_tournament),
                         make_crossover(search.crossover), make_mutation(search.mutation_prob),
                         min_offsprings=search.pop_size, repair=repair, eliminate_duplicates=dups,
                         n_max_iterations=100)
    algorithm = NSGA2(pop_size=search.pop_size, sampling=SparseSampling(lo, hi, search.init_density),
                      mating=mating, repair=repair, eliminate_duplicates=dups)
    termination = ("n_eval", search.n_evals) if search.n_evals is not None else ("n_gen", search.n_gen)
    if archive.progress is not None:
        archive.progress.total = search.n_gen if search.n_evals is None else math.ceil(search.n_evals / search.pop_size)
    return minimize(problem, algorithm, termination, seed=seed % (2**32),
                    callback=ArchiveRecorder(archive, problem), verbose=False, save_history=False)


@register_algorithm("random")
def run_random(search, archive: Archive, seed: int) -> None:
    """``pop_size·n_gen`` (or ``n_evals``) random masks in batches of ``pop_size``."""
    rng = np.random.default_rng(seed)
    budget = search.n_evals if search.n_evals is not None else search.pop_size * search.n_gen
    if archive.progress is not None:
        archive.progress.total = math.ceil(budget / search.pop_size)
    gen, done = 0, 0
    while done < budget:
        n = min(search.pop_size, budget - done)
        gen += 1
        archive.evaluate(random_masks(n, archive.P, archive.min_size, archive.max_size, rng), gen)
        archive.end_generation(gen)
        done += n
    return None


@register_algorithm("exhaustive")
def run_exhaustive(search, archive: Archive, seed: int) -> None:
    """Every subset with a size in range, in chunks of 65,536 codes (P ≤ :data:`EXHAUSTIVE_MAX_P`)."""
    P = archive.P
    if P > EXHAUSTIVE_MAX_P:
        raise ValueError(f"exhaustive search enumerates 2^P subsets and is limited to P <= "
                         f"{EXHAUSTIVE_MAX_P}; the tables hold P = {P}: use algorithm='nsga2'")
    if search.n_evals is not None:
        log.info("exhaustive search ignores n_evals=%s", search.n_evals)
    bits = np.arange(P, dtype=np.int64)
    total = 1 << P
    chunk = 1 << 16
    if archive.progress is not None:
        archive.progress.total = math.ceil(total / chunk)
    for gen, start in enumerate(range(0, total, chunk), start=1):
        codes = np.arange(start, min(total, start + chunk), dtype=np.int64)
        X = ((codes[:, None] >> bits) & 1).astype(bool)
        size = X.sum(1)
        X = X[(size >= archive.min_size) & (size <= archive.max_size)]
        if len(X):
            archive.evaluate(X, gen)
        archive.end_generation(gen)
    return None


@register_algorithm("greedy")
def run_greedy(search, archive: Archive, seed: int) -> None:
    """Forward selection on ``intra_d − λ·inter_d`` from the best pair, for each λ of ``lambdas``."""
    P, lo, hi = archive.P, archive.min_size, archive.max_size
    lambdas = DEFAULT_GREEDY_LAMBDAS if search.lambdas is None else tuple(float(x) for x in search.lambdas)
    if not lambdas or any(not math.isfinite(x) or x < 0 for x in lambdas):
        raise ValueError(f"greedy lambdas must be finite and >= 0, got {lambdas}")
    budget = search.n_evals if search.n_evals is not None else math.inf
    gen = 1
    if lo <= 1:  # singletons are feasible too
        archive.evaluate(np.eye(P, dtype=bool), gen)
    iu = np.triu_indices(P, 1)
    pairs = np.zeros((len(iu[0]), P), dtype=bool)
    pairs[np.arange(len(pairs)), iu[0]] = True
    pairs[np.arange(len(pairs)), iu[1]] = True
    Fp = archive.evaluate(pairs, gen)
    raw = archive.oriented(pairs) if not np.isfinite(Fp).all() else (-Fp[:, 0], Fp[:, 1])
    archive.end_generation(gen)
    for lam in lambdas:
        score = raw[0] - lam * raw[1]
        cur = pairs[int(np.nanargmax(score))].copy()
        cur_score = float(np.nanmax(score))
        while cur.sum() < hi and archive.n_evals < budget:
            cand_idx = np.flatnonzero(~cur)
            C = np.repeat(cur[None], len(cand_idx), axis=0)
            C[np.arange(len(cand_idx)), cand_idx] = True
            gen += 1
            F = archive.evaluate(C, gen)
            archive.end_generation(gen)
            intra, inter = (-F[:, 0], F[:, 1]) if np.isfinite(F).all() else archive.oriented(C)
            s = intra - lam * inter
            best = int(np.nanargmax(s))
            if s[best] <= cur_score and cur.sum() >= lo:
                break
            cur, cur_score = C[best], float(s[best])
        if archive.n_evals >= budget:
            break
    return None
