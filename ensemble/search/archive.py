"""The archive of evaluations: every ensemble a search evaluates, and the front of them all.

:class:`Archive` evaluates masks (one bit per generator) on the score tables in batches, records
every evaluation whose size lies in ``[min_size, max_size]`` (packed bits, objectives, size,
generation), keeps the normalised non-dominated set up to date for the hypervolume history, and
gives the final front: the non-dominated set of *every* ensemble evaluated during the run (an
unbounded archive, so a point the population lost still counts). Every algorithm evaluates
through it, so the front, the history and ``evaluated.csv`` mean the same for all of them.

The objectives are named (:mod:`ensemble.search.objectives`; default ``intra-d``, ``inter-d``):
values are kept as computed, one column per objective, and turned into minimised columns
(maximised ones negated) for non-domination and the pymoo algorithms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ensemble.search.indicators import hypervolume, nondominated, nondominated_nd
from ensemble.search.objectives import DEFAULT_OBJECTIVES, Objective, get_objective, normalise

__all__ = ["Archive", "EVAL_ELEMS"]

#: N × batch elements of one coverage product (64 MiB in float32): sets the evaluation batch.
EVAL_ELEMS = 1 << 24


class Archive:
    """Evaluates masks on ``tables`` and remembers every evaluation (packed bits + objectives).

    Args:
        tables: a :class:`ensemble.scoring.tables.ScoreTables` (anything with ``intra_d``, ``inter_d``,
            ``n_generators`` and ``n_real``).
        min_size, max_size: the ensemble sizes that are recorded; others are evaluated but get
            infinite objectives (so a pymoo algorithm never keeps them).
        hv_ref: the reference of :func:`ensemble.search.objectives.objective_reference` (for the
            default objectives, :func:`ensemble.search.hv_reference`) for the history's HV.
        progress: an optional tqdm bar, advanced once per generation.
        objectives: the :class:`~ensemble.search.objectives.Objective` s (or names) evaluated,
            in order (default ``intra-d``, ``inter-d``).
    """

    def __init__(self, tables, min_size: int, max_size: int, hv_ref: dict, progress=None,
                 objectives=None):
        self.tables = tables
        objectives = DEFAULT_OBJECTIVES if objectives is None else objectives
        self.objective_list: list[Objective] = [o if isinstance(o, Objective) else get_objective(o)
                                                for o in objectives]
        self.sign = np.array([-1.0 if o.maximise else 1.0 for o in self.objective_list])
        self.P = tables.n_generators
        self.min_size, self.max_size = min_size, max_size
        self.hv_ref = hv_ref
        self.batch = max(256, EVAL_ELEMS // max(1, tables.n_real))
        self.n_evals = 0
        self._packed: list[np.ndarray] = []
        self._obj: list[np.ndarray] = []  # one column per objective, as computed
        self._size: list[np.ndarray] = []
        self._gen: list[np.ndarray] = []
        self._front_Z = np.empty((0, len(self.objective_list)))  # normalised front, for the history
        self.history: list[dict] = []
        self.progress = progress

    @property
    def columns(self) -> list[str]:
        """The objectives' column names (``intra_d``, ``inter_d`` by default)."""
        return [o.column for o in self.objective_list]

    def _values(self, X: np.ndarray) -> np.ndarray:
        vals = np.column_stack([np.asarray(o(self.tables, X), float).reshape(len(X))
                                for o in self.objective_list])
        one = X.sum(1) == 1  # one generator: no pair, no redundancy
        for j, o in enumerate(self.objective_list):
            if o.pairs:
                vals[:, j] = np.where(one, 0.0, vals[:, j])
        return vals

    def objectives(self, X: np.ndarray) -> tuple[np.ndarray, ...]:
        """One array per objective (``(intra_d, inter_d)`` by default) of masks X of any size,
        without recording them or counting.

        A single generator has no pair, so pair objectives (Inter-d) give 0. Greedy uses this
        for steps below ``min_size``.
        """
        vals = self._values(np.asarray(X).astype(bool, copy=False))
        return tuple(vals[:, j] for j in range(vals.shape[1]))

    def oriented(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first objective, higher is better; second objective, lower is better) of masks X.

        ``(intra_d, inter_d)`` by default; greedy scalarises these as ``first − λ·second``.
        """
        vals = self.objectives(X)
        return -self.sign[0] * vals[0], self.sign[1] * vals[1]

    def evaluate(self, X: np.ndarray, gen: int) -> np.ndarray:
        """Minimised objectives (n, m) of masks X (n, P), e.g. [-intra_d, inter_d]; records in-range masks.

        Masks outside the size range (or with a non-finite objective) get ``inf`` in every column.

        Raises:
            ValueError: ``X`` is not of shape (n, P).
        """
        X = np.asarray(X).astype(bool, copy=False)
        if X.ndim != 2 or X.shape[1] != self.P:
            raise ValueError(f"masks must have shape (n, {self.P}), got {X.shape}")
        vals = np.empty((len(X), len(self.objective_list)))
        for lo in range(0, len(X), self.batch):
            vals[lo:lo + self.batch] = self._values(X[lo:lo + self.batch])
        size = X.sum(1)
        self.n_evals += len(X)
        ok = (size >= self.min_size) & (size <= self.max_size) & np.isfinite(vals).all(1)
        if ok.any():
            self._packed.append(np.packbits(X[ok], axis=1))
            self._obj.append(vals[ok])
            self._size.append(size[ok].astype(np.int64))
            self._gen.append(np.full(int(ok.sum()), gen, dtype=np.int64))
            Z = np.vstack([self._front_Z, normalise(vals[ok], self.hv_ref, self.objective_list)])
            self._front_Z = np.unique(Z[nondominated_nd(Z)], axis=0)
        F = vals * self.sign
        F[~ok] = np.inf
        return F

    def end_generation(self, gen: int) -> None:
        """Close generation ``gen``: append (n_gen, n_evals, hypervolume, front_size) to history."""
        hv = hypervolume(self._front_Z, self.hv_ref["normalised_ref"])
        self.history.append({"n_gen": int(gen), "n_evals": int(self.n_evals), "hypervolume": hv,
                             "front_size": int(len(self._front_Z))})
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix(hv=f"{hv:.4f}", refresh=False)

    # ----------------------------------------------------------------- results
    def evaluated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every recorded evaluation: packed masks, objectives (one column each), sizes, generations."""
        if not self._obj:
            nb = (self.P + 7) // 8
            return (np.empty((0, nb), np.uint8), np.empty((0, len(self.objective_list))), np.empty(0, np.int64),
                    np.empty(0, np.int64))
        return (np.concatenate(self._packed), np.concatenate(self._obj),
                np.concatenate(self._size), np.concatenate(self._gen))

    def front(self, names: list[str]) -> pd.DataFrame:
        """The non-dominated distinct ensembles, columns ``members, size`` and one per objective.

        Sorted by each objective in order, best first (by default intra_d descending, then inter_d
        ascending), then size ascending (stable).
        """
        packed, obj, size, _ = self.evaluated()
        cols = ["members", "size", *self.columns]
        if len(obj) == 0:
            return pd.DataFrame(columns=cols)
        # one row per distinct mask (the first evaluation of it)
        view = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
        _, first = np.unique(view, return_index=True)
        first = np.sort(first)
        F = obj[first] * self.sign
        idx = first[nondominated(F) if F.shape[1] == 2 else nondominated_nd(F)]
        masks = np.unpackbits(packed[idx], axis=1, count=self.P).astype(bool)
        df = pd.DataFrame({
            "members": [[names[j] for j in np.flatnonzero(m)] for m in masks],
            "size": size[idx],
            **{c: obj[idx, j] for j, c in enumerate(self.columns)},
        })
        df = df.sort_values([*self.columns, "size"],
                            ascending=[not o.maximise for o in self.objective_list] + [True],
                            kind="mergesort")
        return df.reset_index(drop=True)
