"""The estimator: ``EnsembleSearch(...).fit(tables)`` finds the Pareto front, ``.select()`` picks G*.

Decision variables are one bit per generator (METHOD.md §4). Objectives are named
(:mod:`ensemble.search.objectives`; default ``intra-d`` and ``inter-d``, the paper's) and come from
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

Generators the tables flag as degenerate (collapsed samples, no coverage:
:mod:`ensemble.scoring.degenerate`) are left out of the search unless ``keep_degenerate=True``;
when fewer than ``max(2, min_size)`` others remain they are kept, with a warning.
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
from ensemble.search.archive import EVAL_ELEMS, Archive
from ensemble.search.indicators import hypervolume
from ensemble.search.objectives import (
    DEFAULT_OBJECTIVES,
    normalise,
    objective_reference,
    resolve_objectives,
)
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
        objectives: two or more names of ``list_objectives()`` (or a string ``"a,b"``); the
            front has one column per objective (``intra-d`` -> ``intra_d``). With other
            objectives than the default pair, ``front_`` and ``evaluated_`` also carry
            ``intra_d`` and ``inter_d`` (NaN without a pair table) for reading, and the rules read
            the first objective as fidelity and the second as redundancy.
        keep_degenerate: also search generators the tables flag as degenerate.
        exclude_memorising: leave out the generators the tables' memorisation audit flags
            (``tables.flagged``; needs tables scored with held-out real data).

    Learned: ``front_``, ``history_``, ``evaluated_``, ``result_``, ``hv_ref_``, ``tables_names_``,
    ``tables_meta_``, ``n_evals_``, ``max_size_``, ``objectives_`` (names), ``excluded_`` (every
    generator left out), ``degenerate_excluded_`` and ``memorising_excluded_`` (why),
    ``memorisation_`` (the audit rows by name, {} without an audit) (and the property
    ``hypervolume_``).

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
                 progress: bool = False, objectives: tuple[str, ...] = DEFAULT_OBJECTIVES,
                 keep_degenerate: bool = False, exclude_memorising: bool = False):
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
        self.objectives = objectives
        self.keep_degenerate = keep_degenerate
        self.exclude_memorising = exclude_memorising

    # ----------------------------------------------------------------- checks
    def _validate(self, tables) -> int:
        """Check the parameters against ``tables``; return the effective ``max_size``."""
        if not hasattr(tables, "intra_d") or not hasattr(tables, "inter_d"):
            raise ValueError(f"fit() needs ScoreTables, got {type(tables).__name__}; "
                             "load them with ScoreTables.load(path)")
        get_algorithm(self.algorithm)  # unknown names raise, listing the known
        objectives = resolve_objectives(self.objectives)
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
        need_pairs = [o.name for o in objectives if o.needs_pairwise]
        if need_pairs and not np.isfinite(pw[~np.eye(P, dtype=bool)]).all():
            raise ValueError(f"score tables' pairwise matrix has NaN/inf off the diagonal, and "
                             f"{', '.join(need_pairs)} needs it; recompute the tables with pairwise=True")
        need_labels = [o.name for o in objectives if o.needs_labels]
        if need_labels and not getattr(tables, "has_labels", False):
            raise ValueError(f"{', '.join(need_labels)} needs score tables built with labels "
                             "(ScoreTables.from_features(..., real_labels=y, fake_labels=...) or "
                             "score_catalog(..., real_labels=y)); rescore with labels")
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
        tables, degenerate = self._searched_tables(tables)
        tables, memorising = _without_memorising(tables, self.exclude_memorising)
        max_size = self._validate(tables)
        run = get_algorithm(self.algorithm)
        objectives = resolve_objectives(self.objectives)
        self.objectives_ = [o.name for o in objectives]
        self.degenerate_excluded_ = list(degenerate)
        self.memorising_excluded_ = list(memorising)
        self.excluded_ = [*degenerate, *memorising]
        self.max_size_ = max_size
        self.hv_ref_ = objective_reference(tables, objectives)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc=f"search ({self.algorithm})", unit="gen", leave=False)
        archive = Archive(tables, self.min_size, self.max_size_, self.hv_ref_, progress=bar,
                          objectives=objectives)
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
        packed, obj, size, gen = archive.evaluated()
        self.evaluated_ = pd.DataFrame({"n_gen": gen, "size": size,
                                        **{c: obj[:, j] for j, c in enumerate(archive.columns)}})
        if len(self.front_):
            _add_published_columns(self.front_, tables, lambda: np.stack(
                [tables.mask_of(m) for m in self.front_["members"]]))
        _add_published_columns(self.evaluated_, tables,
                               lambda: np.unpackbits(packed, axis=1, count=tables.n_generators).astype(bool))
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
        """Front objectives, one column per objective (intra_d, inter_d by default), or normalised
        and minimised (z_fid, z_red by default; see :func:`~ensemble.search.objectives.normalise`)."""
        self._check_fitted()
        objectives = resolve_objectives(self.objectives_)
        values = np.column_stack([self.front_[o.column].to_numpy(float) for o in objectives])
        if normalised:
            return normalise(values, self.hv_ref_, objectives)
        return values

    def _searched_tables(self, tables):
        """``tables`` without the degenerate generators (unless kept), and the names left out."""
        flags = np.asarray(getattr(tables, "degenerate", np.zeros(0, bool)), bool)
        if self.keep_degenerate or not flags.any():
            return tables, []
        bad = [n for n, f in zip(tables.names, flags, strict=True) if f]
        keep = [n for n, f in zip(tables.names, flags, strict=True) if not f]
        floor = max(2, self.min_size if isinstance(self.min_size, (int, np.integer)) else 2)
        reasons = (getattr(tables, "meta", {}) or {}).get("degenerate") or {}
        if len(keep) < floor:
            log.warning("%d of %d generators are degenerate (%s); too few others remain to search "
                        "without them, so they are kept", len(bad), tables.n_generators, ", ".join(bad))
            return tables, []
        for n in bad:
            log.warning("left out of the search: %r is degenerate (%s); keep_degenerate=True "
                        "(--keep-degenerate) keeps it", n, reasons.get(n, "flagged"))
        return tables.subset(keep), bad

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
        objectives = resolve_objectives(self.objectives_)
        view = self.front_
        if tuple(self.objectives_) != DEFAULT_OBJECTIVES:  # rules read fidelity and redundancy columns
            first, second = objectives[0], objectives[1]
            view = self.front_.copy()
            view["intra_d"] = view[first.column] * (1.0 if first.maximise else -1.0)
            view["inter_d"] = view[second.column] * (-1.0 if second.maximise else 1.0)
        try:
            row, note, *info = fn(view, **params)
        except TypeError as exc:
            raise ValueError(f"bad parameters {params} for rule {rule!r}: {exc}") from exc
        r = self.front_.iloc[int(row)]
        tm = self.tables_meta_ or {}
        meta = {  # what the tables were made from first (downstream stages read these), then the search
            "dataset": tm.get("dataset"),
            # provenance: each member's file hash as scored, the zoo and the real images scored against
            "members_sha256": {m: (tm.get("sha256") or {}).get(m) for m in r["members"]},
            "zoo": tm.get("zoo"),
            "real_sha256": tm.get("real_sha256"),
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
            "objectives": list(self.objectives_),
            "degenerate_excluded": list(self.degenerate_excluded_),
        }
        if info and info[0] is not None:  # a rule's record of how it chose (e.g. validated)
            meta["rule_info"] = _jsonable(info[0])
        kept = {k: v for k, v in params.items() if k != "context"}  # the context is data, not a setting
        if self.memorisation_:  # the audit of G*'s members (exported into the dataset's meta.json)
            meta["memorisation"] = {m: self.memorisation_[m] for m in r["members"] if m in self.memorisation_}
        if self.memorising_excluded_:
            meta["excluded_memorising"] = list(self.memorising_excluded_)
        return Ensemble(members=list(r["members"]), intra_d=float(r["intra_d"]),
                        inter_d=float(r["inter_d"]), rule=rule, rule_params=_jsonable(kept),
                        note=note, meta=meta,
                        objectives={o.name: float(r[o.column]) for o in objectives})


def _add_published_columns(df: pd.DataFrame, tables, masks) -> None:
    """Add ``intra_d`` and ``inter_d`` to ``df`` when they are not objectives (for reading and plots).

    ``masks()`` gives the rows' masks. Inter-d is NaN when the tables hold no pair table; one
    generator has Inter-d 0, as in the search.
    """
    missing = [c for c in ("intra_d", "inter_d") if c not in df.columns]
    if not missing:
        return
    X = masks() if len(df) else np.zeros((0, tables.n_generators), bool)
    batch = max(256, EVAL_ELEMS // max(1, tables.n_real))

    def batched(fn) -> np.ndarray:
        out = np.empty(len(X))
        for lo in range(0, len(X), batch):
            out[lo:lo + batch] = np.asarray(fn(X[lo:lo + batch]), float).reshape(-1)
        return out

    if "intra_d" in missing:
        df["intra_d"] = batched(tables.intra_d)
    if "inter_d" in missing:
        if getattr(tables, "has_pairwise", True):
            df["inter_d"] = np.where(X.sum(1) == 1, 0.0, batched(tables.inter_d))
        else:
            df["inter_d"] = np.full(len(X), np.nan)


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
