"""The archive of evaluations: every ensemble a search evaluates, and the front of them all.

:class:`Archive` evaluates masks (one bit per generator) on the score tables in batches, records
every evaluation whose size lies in ``[min_size, max_size]`` (packed bits, objectives, size,
generation), keeps the normalised non-dominated set up to date for the hypervolume history, and
gives the final front: the non-dominated set of *every* ensemble evaluated during the run (an
unbounded archive, so a point the population lost still counts). Every algorithm evaluates
through it, so the front, the history and ``evaluated.csv`` mean the same for all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ensemble.search.indicators import hypervolume, nondominated, normalised_objectives

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
        hv_ref: the reference of :func:`ensemble.search.hv_reference` for the history's HV.
        progress: an optional tqdm bar, advanced once per generation.
    """

    def __init__(self, tables, min_size: int, max_size: int, hv_ref: dict, progress=None):
        self.tables = tables
        self.P = tables.n_generators
        self.min_size, self.max_size = min_size, max_size
        self.hv_ref = hv_ref
        self.batch = max(256, EVAL_ELEMS // max(1, tables.n_real))
        self.n_evals = 0
        self._packed: list[np.ndarray] = []
        self._obj: list[np.ndarray] = []  # columns intra_d, inter_d
        self._size: list[np.ndarray] = []
        self._gen: list[np.ndarray] = []
        self._front_Z = np.empty((0, 2))  # normalised archive front, for the history
        self.history: list[dict] = []
        self.progress = progress

    def objectives(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(intra_d, inter_d)`` of masks X of any size, without recording them or counting.

        A single generator has no pair and so Inter-d 0. Greedy uses this for steps below
        ``min_size``.
        """
        intra = np.asarray(self.tables.intra_d(X), float)
        inter = np.asarray(self.tables.inter_d(X), float)
        inter = np.where(X.sum(1) == 1, 0.0, inter)
        return intra, inter

    def evaluate(self, X: np.ndarray, gen: int) -> np.ndarray:
        """Objectives (n, 2) = [-intra_d, inter_d] of masks X (n, P); records in-range masks.

        Masks outside the size range (or with a non-finite objective) get ``inf`` in both columns.

        Raises:
            ValueError: ``X`` is not of shape (n, P).
        """
        X = np.asarray(X).astype(bool, copy=False)
        if X.ndim != 2 or X.shape[1] != self.P:
            raise ValueError(f"masks must have shape (n, {self.P}), got {X.shape}")
        intra = np.empty(len(X))
        inter = np.empty(len(X))
        for lo in range(0, len(X), self.batch):
            xb = X[lo:lo + self.batch]
            intra[lo:lo + len(xb)] = self.tables.intra_d(xb)
            inter[lo:lo + len(xb)] = self.tables.inter_d(xb)
        size = X.sum(1)
        inter = np.where(size == 1, 0.0, inter)  # one generator: no pair, no redundancy
        self.n_evals += len(X)
        ok = (size >= self.min_size) & (size <= self.max_size) & np.isfinite(intra) & np.isfinite(inter)
        if ok.any():
            self._packed.append(np.packbits(X[ok], axis=1))
            self._obj.append(np.column_stack([intra[ok], inter[ok]]))
            self._size.append(size[ok].astype(np.int64))
            self._gen.append(np.full(int(ok.sum()), gen, dtype=np.int64))
            Z = np.vstack([self._front_Z, normalised_objectives(intra[ok], inter[ok], self.hv_ref)])
            self._front_Z = np.unique(Z[nondominated(Z)], axis=0)
        F = np.column_stack([-intra, inter])
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
        """Every recorded evaluation: packed masks, objectives (intra_d, inter_d), sizes, generations."""
        if not self._obj:
            nb = (self.P + 7) // 8
            return (np.empty((0, nb), np.uint8), np.empty((0, 2)), np.empty(0, np.int64),
                    np.empty(0, np.int64))
        return (np.concatenate(self._packed), np.concatenate(self._obj),
                np.concatenate(self._size), np.concatenate(self._gen))

    def front(self, names: list[str]) -> pd.DataFrame:
        """The non-dominated distinct ensembles, columns ``members, size, intra_d, inter_d``.

        Sorted by intra_d descending, then inter_d ascending, then size ascending (stable).
        """
        packed, obj, size, _ = self.evaluated()
        cols = ["members", "size", "intra_d", "inter_d"]
        if len(obj) == 0:
            return pd.DataFrame(columns=cols)
        # one row per distinct mask (the first evaluation of it)
        view = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
        _, first = np.unique(view, return_index=True)
        first = np.sort(first)
        F = np.column_stack([-obj[first, 0], obj[first, 1]])
        idx = first[nondominated(F)]
        masks = np.unpackbits(packed[idx], axis=1, count=self.P).astype(bool)
        df = pd.DataFrame({
            "members": [[names[j] for j in np.flatnonzero(m)] for m in masks],
            "size": size[idx],
            "intra_d": obj[idx, 0],
            "inter_d": obj[idx, 1],
        })
        df = df.sort_values(["intra_d", "inter_d", "size"], ascending=[False, True, True],
                            kind="mergesort")
        return df.reset_index(drop=True)
