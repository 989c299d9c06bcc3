"""The estimator: ``EnsembleSearch(...).fit(tables)`` finds the Pareto front, ``.select()`` picks G*.

Decision variables are one bit per generator (METHOD.md §4). Objectives come from
:class:`ensemble.scoring.tables.ScoreTables`, which evaluates a whole population of masks in one matrix
product, so every algorithm evaluates in batches through an
:class:`~ensemble.search.archive.Archive`. Whatever the algorithm, ``front_`` is the
non-dominated set of *every* ensemble evaluated during the run (each point of NSGA-II's final
first front is on it, or dominated by a point on it that the population lost). Hypervolumes use
the fixed reference of :func:`~ensemble.search.indicators.hv_reference`, so runs, seeds and
algorithms on the same tables compare.

It follows the scikit-learn contract: the constructor only stores its parameters, ``fit``
validates them against the tables, ``get_params``/``set_params`` come from the constructor's
signature (``sklearn.base.clone`` works), and learned state ends in ``_``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ensemble.search.algorithms import get_algorithm
from ensemble.search.archive import Archive
from ensemble.search.indicators import hv_reference, hypervolume, normalised_objectives
from ensemble.search.operators import CROSSOVERS
from ensemble.search.result import Ensemble
from ensemble.search.rules import check_rule_params, get_rule
from zoo.seeding import derive_seed

__all__ = ["EnsembleSearch"]

log = logging.getLogger(__name__)


class EnsembleSearch(BaseEstimator):
    """Multi-objective search for ensembles of generators (scikit-learn style).

    Args:
        algorithm: one of ``list_algorithms()`` (``nsga2``, ``random``, ``exhaustive``, ``greedy``).
        pop_size, n_gen: NSGA-II population and generations; ``random`` uses ``pop_size·n_gen``
            evaluations in batches of ``pop_size``.
        seed: the search's seed; every random choice derives from it (same seed, same front).
            Stage commands and the pipeline pass ``ensemble.seeds.search_seed(root)``.
        min_size, max_size: ensemble size bounds (``max_size=None``: all generators).
        crossover: ``two-point`` or ``hux`` (half-uniform).
        mutation_prob: bit-flip probability per bit (None: 1/P).
        init_density: NSGA-II initial bit density (None: sparse random sizes).
        n_evals: evaluation budget; overrides ``n_gen`` for NSGA-II and ``pop_size·n_gen`` for
            random, caps greedy; exhaustive ignores it.
        lambdas: greedy scalarisation weights λ in ``intra_d − λ·inter_d`` (None: a default ladder).
        progress: show a tqdm bar over generations.
        exclude_memorising: leave out the generators the tables' memorisation audit flags
            (``tables.flagged``; needs tables scored with held-out real data).

    Learned: ``front_``, ``history_``, ``evaluated_``, ``result_``, ``hv_ref_``, ``tables_names_``,
    ``tables_meta_``, ``n_evals_``, ``max_size_``, ``excluded_`` (generators left out as
    memorising), ``memorisation_`` (the audit rows by name, {} without an audit) (and the
    property ``hypervolume_``).

    Raises:
        ValueError: from ``fit``, for parameters that do not fit the tables (each message says
            which parameter and how to fix it).

    Example:
        >>> from sklearn.base import clone
        >>> clone(EnsembleSearch(seed=3)).get_params()["seed"]
        3
    """

    def __init__(self, algorithm: str = "nsga2", pop_size: int = 100, n_gen: int = 200, seed: int = 0,
                 min_size: int = 2, max_size: int | None = None, crossover: str = "two-point",
                 mutation_prob: float | None = None, init_density: float | None = None,
                 n_evals: int | None = None, lambdas: tuple[float, ...] | None = None,
                 progress: bool = False, exclude_memorising: bool = False):
        self.algorithm = algorithm
        self.pop_size = pop_size
        self.n_gen = n_gen
        self.seed = seed
        self.min_size = min_size
        self.max_size = max_size
        self.crossover = crossover
        self.mutation_prob = mutation_prob
        self.init_density = init_density
        self.n_evals = n_evals
        self.lambdas = lambdas
        self.progress = progress
        self.exclude_memorising = exclude_memorising

    # ----------------------------------------------------------------- checks
    def _validate(self, tables) -> int:
        """Check the parameters against ``tables``; return the effective ``max_size``."""
        if not hasattr(tables, "intra_d") or not hasattr(tables, "inter_d"):
            raise ValueError(f"fit() needs ScoreTables, got {type(tables).__name__}; "
                             "load them with ScoreTables.load(path)")
        get_algorithm(self.algorithm)  # unknown names raise, listing the known
        P = tables.n_generators
        if P < 2:
            raise ValueError(f"the score tables hold {P} generator(s); an ensemble search needs at "
                             "least 2: add generators to the zoo and rescore")
        for name in ("counts", "n_fake", "density", "coverage", "d"):
            arr = np.asarray(getattr(tables, name), dtype=np.float64)
            if not np.isfinite(arr).all():
                bad = [tables.names[i] for i in np.flatnonzero(~np.isfinite(arr))[:5]]
                raise ValueError(f"score tables field {name!r} has NaN/inf for {bad}; recompute the tables")
        if (np.asarray(tables.n_fake) <= 0).any():
            raise ValueError("score tables have a generator with no samples (n_fake = 0); recompute them")
        pw = np.asarray(tables.pairwise, dtype=np.float64)
        if not np.isfinite(pw[~np.eye(P, dtype=bool)]).all():
            raise ValueError("score tables' pairwise matrix has NaN/inf off the diagonal; recompute "
                             "the tables with pairwise=True")
        _check_int("min_size", self.min_size, 1)
        if self.min_size > P:
            raise ValueError(f"min_size={self.min_size} exceeds the {P} generators in the tables; "
                             f"use --min-size {P} or fewer")
        max_size = P if self.max_size is None else self.max_size
        _check_int("max_size", max_size, 1)
        if max_size < self.min_size:
            raise ValueError(f"max_size={max_size} is below min_size={self.min_size}; raise max_size")
        if max_size > P:
            log.info("max_size=%d exceeds the %d generators; using %d", max_size, P, P)
            max_size = P
        _check_int("pop_size", self.pop_size, 2)
        _check_int("n_gen", self.n_gen, 1)
        if self.n_evals is not None:
            _check_int("n_evals", self.n_evals, 1)
        if self.crossover not in CROSSOVERS:
            raise ValueError(f"unknown crossover {self.crossover!r}; use one of {', '.join(CROSSOVERS)}")
        for name in ("mutation_prob", "init_density"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        return max_size

    # ----------------------------------------------------------------- fit
    def fit(self, tables) -> EnsembleSearch:
        """Search the ensembles of ``tables`` (a :class:`ScoreTables`) and keep the Pareto front.

        Returns:
            self, fitted.
        """
        self.memorisation_ = tables.memorisation_of(tables.names) if hasattr(tables, "memorisation_of") else {}
        tables, self.excluded_ = _without_memorising(tables, self.exclude_memorising)
        max_size = self._validate(tables)
        run = get_algorithm(self.algorithm)
        self.max_size_ = max_size
        self.hv_ref_ = hv_reference(tables)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc=f"search ({self.algorithm})", unit="gen", leave=False)
        archive = Archive(tables, self.min_size, self.max_size_, self.hv_ref_, progress=bar)
        try:
            with _single_threaded_blas():
                result = run(self, archive, derive_seed(int(self.seed), "search", self.algorithm))
        finally:
            if bar is not None:
                bar.close()
        if not archive.history or archive.history[-1]["n_evals"] != archive.n_evals:
            archive.end_generation(archive.history[-1]["n_gen"] + 1 if archive.history else 1)
        self.result_ = result
        self.tables_names_ = list(tables.names)
        self.tables_meta_ = _jsonable(getattr(tables, "meta", {}))
        self.n_evals_ = archive.n_evals
        self.front_ = archive.front(self.tables_names_)
        self.history_ = pd.DataFrame(archive.history, columns=["n_gen", "n_evals", "hypervolume", "front_size"])
        _, obj, size, gen = archive.evaluated()
        self.evaluated_ = pd.DataFrame({"n_gen": gen, "size": size, "intra_d": obj[:, 0], "inter_d": obj[:, 1]})
        if len(self.front_) == 0:
            raise ValueError("the search evaluated no ensemble within the size bounds; check min_size/max_size")
        log.info("%s: %d evaluations, front of %d ensembles, HV %.4f", self.algorithm, self.n_evals_,
                 len(self.front_), self.hypervolume_)
        return self

    @property
    def hypervolume_(self) -> float:
        """Final hypervolume of the front against the fixed reference (``hv_ref_``)."""
        self._check_fitted()
        return hypervolume(self.front_objectives(normalised=True), self.hv_ref_["normalised_ref"])

    def front_objectives(self, normalised: bool = False) -> np.ndarray:
        """Front objectives: columns (intra_d, inter_d), or normalised minimised (z_fid, z_red)."""
        self._check_fitted()
        intra, inter = self.front_["intra_d"].to_numpy(float), self.front_["inter_d"].to_numpy(float)
        if normalised:
            return normalised_objectives(intra, inter, self.hv_ref_)
        return np.column_stack([intra, inter])

    def _check_fitted(self) -> None:
        check_is_fitted(self, "front_", msg="this EnsembleSearch is not fitted yet; call .fit(tables) first")

    # ----------------------------------------------------------------- select
    def select(self, rule: str = "max-fidelity", **params) -> Ensemble:
        """Pick G* from the front with a registered rule (``list_rules()``).

        Raises:
            ValueError: unknown rule, parameters that do not fit it, or an unfitted search.
        """
        self._check_fitted()
        fn = get_rule(rule)
        check_rule_params(rule, params)
        try:
            row, note = fn(self.front_, **params)
        except TypeError as exc:
            raise ValueError(f"bad parameters {params} for rule {rule!r}: {exc}") from exc
        r = self.front_.iloc[int(row)]
        tm = self.tables_meta_ or {}
        meta = {  # what the tables were made from first (downstream stages read these), then the search
            "dataset": tm.get("dataset"),
            "k": tm.get("k"),
            "backbone": tm.get("backbone"),
            "weights": tm.get("weights"),
            "tables": self.tables_meta_,
            "algorithm": self.algorithm,
            "seed": int(self.seed),
            "pop_size": int(self.pop_size),
            "n_gen": int(self.n_gen),
            "n_evals": int(self.n_evals_),
            "min_size": int(self.min_size),
            "max_size": int(self.max_size_),
            "crossover": self.crossover,
            "n_generators": len(self.tables_names_),
            "front_size": int(len(self.front_)),
            "hypervolume": float(self.hypervolume_),
            "hv_ref": self.hv_ref_,
        }
        if self.memorisation_:  # the audit of G*'s members (exported into the dataset's meta.json)
            meta["memorisation"] = {m: self.memorisation_[m] for m in r["members"]}
        if self.excluded_:
            meta["excluded_memorising"] = list(self.excluded_)
        return Ensemble(members=list(r["members"]), intra_d=float(r["intra_d"]),
                        inter_d=float(r["inter_d"]), rule=rule, rule_params=_jsonable(params),
                        note=note, meta=meta)


def _without_memorising(tables, exclude: bool):
    """(tables without the generators the memorisation audit flags, their names) when ``exclude``."""
    if not exclude:
        return tables, []
    if getattr(tables, "memorisation", None) is None:
        raise ValueError("exclude_memorising=True needs score tables with a memorisation audit; score "
                         "them with held-out real data (ScoreTables.from_features(..., holdout=...), "
                         "score_catalog(..., holdout_images=...) or `gan-ensemble score --holdout val`)")
    flagged = list(tables.flagged)
    if tables.n_generators - len(flagged) < 2:
        raise ValueError(f"the memorisation audit flags {len(flagged)} of the {tables.n_generators} "
                         f"generators ({', '.join(flagged)}); fewer than 2 are left to search. Look at "
                         "the audit (tables.memorisation) or search without exclude_memorising")
    if flagged:
        log.info("leaving out %d generator(s) the memorisation audit flags: %s", len(flagged),
                 ", ".join(flagged))
        tables = tables.subset([n for n in tables.names if n not in set(flagged)])
    return tables, flagged


def _single_threaded_blas():
    """BLAS/OpenMP limited to one thread while searching.

    The search's matrix products are small (N × P by P × pop); thread hand-offs cost more than
    they save, badly so on a busy machine (3× slower NSGA-II on a loaded 2-core box).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _check_int(name: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
