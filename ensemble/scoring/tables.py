"""Score tables as data: everything the search needs, computed once.

With the real k-NN radii fixed, Intra-d of any ensemble E decomposes exactly (METHOD.md §3):
``D(E) = Σ_g cnt_g / (k Σ_g n_g)`` and ``C(E) = mean_i OR_g hits[i, g]``; Inter-d is the mean of
a precomputed P × P matrix of d between generators. After one pass over the features, evaluating
an ensemble costs O(N·|E|) and a whole population is one small matrix product.

With the real labels and the classes the samples were generated for, the tables also hold the
same decomposition per class (``class_counts``, ``class_n_fake``, ``class_hits``: class-c samples
against the class-c real points and their own k-NN radii within class c), from which
:meth:`ScoreTables.class_intra_d` and :meth:`ScoreTables.coverage_overlap` are exact. Generators
whose samples collapsed or that cover almost no real point are flagged (``degenerate``, with the
reasons in ``meta["degenerate"]``; see :mod:`ensemble.scoring.degenerate`).
With held-out real features the tables also hold the memorisation audit
(:mod:`ensemble.scoring.memorisation`): ``memorisation``, one row per generator, and every
sample's nearest real image (``nn_dist``/``nn_index``, generators one after the other).
With a label check (:func:`ensemble.label_fidelity.label_agreement_table`, attached by
:meth:`ScoreTables.add_label_agreement`) they hold each generator's ``label_agreement``.

This module holds the tables (fields, the objectives ``intra_d``/``inter_d``, subsets, the
``.npz`` file) and the two ways to make them, :func:`score_features` (from embeddings) and
:func:`score_catalog` (from a zoo catalog; the scoring entry point). The computing lives in
:mod:`ensemble.scoring.build`, which returns plain fields and never imports this module, so the
imports run one way.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemble.scoring.knn import d_score
from ensemble.scoring.memorisation import ALPHA, MEMORISATION_COLUMNS
from zoo.io import atomic_write, read_npz

__all__ = ["ScoreTables", "INTER_MODES", "FORMAT", "score_features", "score_catalog"]

log = logging.getLogger(__name__)

FORMAT = "gan-ensemble-score-tables/1"
# How Inter-d folds the asymmetric d between two generators (METHOD.md §3):
#  "symmetric": ½(d(S_g, S_h) + d(S_h, S_g)) (default);
#  "first-name": the generator whose name sorts first is the reference side (one-sided, like the
#   reference code, but fixed by the names, never by file-listing order).
INTER_MODES = ("symmetric", "first-name")


@dataclass(eq=False)
class ScoreTables:
    """Sufficient statistics of Intra-d and Inter-d for P generators against one real set.

    ``counts[g]`` = Σ_{s∈S_g} Σ_i [‖s − r_i‖ < ρ_i]; ``n_fake[g]`` = |S_g|; ``hits[i, g]`` = real
    point i is covered by S_g; ``density``/``coverage``/``d`` per generator against real;
    ``pairwise_directed[g, h]`` = d(S_g, S_h) with S_g as the reference; ``pairwise`` = the folded
    matrix Inter-d uses (``meta["inter_mode"]``), diagonal NaN.

    Optional, with labels: ``real_labels`` (N,); ``class_counts[c, g]`` and ``class_n_fake[c, g]``
    as ``counts``/``n_fake`` for the class-c samples of g against the class-c real points (radii
    within class c, classes in ascending label order); ``class_hits[i, g]`` = real point i is
    covered by the samples g generated for i's class. ``degenerate[g]``: g is flagged as
    degenerate (reasons in ``meta["degenerate"]``).
    ``memorisation``: the audit
    (a DataFrame indexed by name, :data:`~ensemble.scoring.memorisation.MEMORISATION_COLUMNS`)
    or None when no held-out data was given; ``nn_dist``/``nn_index``: every sample's exact
    distance to its nearest real image and that image's index, generators in ``names`` order.
    ``label_agreement``: (P,) share of each generator's samples that a classifier of real images
    assigns to their conditioning class, or None (how it was measured: ``meta["label_fidelity"]``).
    """

    names: list[str]
    k: int
    n_real: int
    counts: np.ndarray
    n_fake: np.ndarray
    hits: np.ndarray
    density: np.ndarray
    coverage: np.ndarray
    d: np.ndarray
    pairwise: np.ndarray
    pairwise_directed: np.ndarray
    meta: dict = field(default_factory=dict)
    by_class: dict[str, ScoreTables] = field(default_factory=dict)
    real_labels: np.ndarray | None = None
    class_counts: np.ndarray | None = None
    class_n_fake: np.ndarray | None = None
    class_hits: np.ndarray | None = None
    degenerate: np.ndarray | None = None
    memorisation: object = None  # pandas DataFrame or None (kept untyped: no pandas at import)
    nn_dist: np.ndarray | None = None
    nn_index: np.ndarray | None = None
    label_agreement: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        p = len(self.names)
        if len(set(self.names)) != p:
            raise ValueError("generator names in score tables must be unique")
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.n_fake = np.asarray(self.n_fake, dtype=np.int64)
        self.hits = np.asarray(self.hits, dtype=bool)
        for name, arr, shape in [
            ("counts", self.counts, (p,)), ("n_fake", self.n_fake, (p,)),
            ("hits", self.hits, (self.n_real, p)), ("pairwise", self.pairwise, (p, p)),
            ("pairwise_directed", self.pairwise_directed, (p, p)),
        ]:
            if arr.shape != shape:
                raise ValueError(f"score tables field {name} has shape {arr.shape}, expected {shape}")
        for name in ("density", "coverage", "d"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.isfinite(arr).all():
                raise ValueError(f"score tables field {name} contains NaN or inf; recompute the tables")
            setattr(self, name, arr)
        off = ~np.eye(p, dtype=bool)
        pw = np.asarray(self.pairwise, dtype=np.float64)[off]
        self.has_pairwise = bool(np.isfinite(pw).all())
        if not self.has_pairwise and not np.isnan(pw).all():
            raise ValueError("score tables pairwise matrix contains NaN or inf off the diagonal")
        self.degenerate = (np.zeros(p, bool) if self.degenerate is None
                           else np.asarray(self.degenerate, dtype=bool).reshape(-1))
        if self.degenerate.shape != (p,):
            raise ValueError(f"score tables field degenerate has shape {self.degenerate.shape}, expected {(p,)}")
        class_fields = (self.real_labels, self.class_counts, self.class_n_fake, self.class_hits)
        if any(f is not None for f in class_fields):
            if any(f is None for f in class_fields):
                raise ValueError("per-class score fields come together: real_labels, class_counts, "
                                 "class_n_fake and class_hits")
            self.real_labels = np.asarray(self.real_labels, dtype=np.int64).reshape(-1)
            self.class_counts = np.asarray(self.class_counts, dtype=np.int64)
            self.class_n_fake = np.asarray(self.class_n_fake, dtype=np.int64)
            self.class_hits = np.asarray(self.class_hits, dtype=bool)
            c = len(np.unique(self.real_labels))
            for name, arr, shape in [
                ("real_labels", self.real_labels, (self.n_real,)), ("class_counts", self.class_counts, (c, p)),
                ("class_n_fake", self.class_n_fake, (c, p)), ("class_hits", self.class_hits, (self.n_real, p)),
            ]:
                if arr.shape != shape:
                    raise ValueError(f"score tables field {name} has shape {arr.shape}, expected {shape}")
        if self.memorisation is not None:
            if list(self.memorisation.index) != self.names:
                raise ValueError("score tables memorisation rows must be the generators, in order")
            n_total = int(self.n_fake.sum())
            for name in ("nn_dist", "nn_index"):
                arr = getattr(self, name)
                if arr is not None and np.shape(arr) != (n_total,):
                    raise ValueError(f"score tables field {name} has shape {np.shape(arr)}, expected "
                                     f"({n_total},): one entry per generated sample")
        if self.label_agreement is not None:
            self.label_agreement = _shares(self.label_agreement, p)
        self._hits_f = None
        self._w = None
        self._class_hits_f = None
        self._class_rows = None
        self._overlap = None

    # ------------------------------------------------------------------ objectives
    @property
    def n_generators(self) -> int:
        return len(self.names)

    def _masks(self, mask) -> tuple[np.ndarray, bool]:
        m = np.asarray(mask)
        single = m.ndim == 1
        m = np.atleast_2d(m)
        if m.shape[1] != self.n_generators:
            raise ValueError(f"mask has {m.shape[1]} entries but the tables hold {self.n_generators} generators")
        if m.dtype != bool:
            if not np.isin(m, (0, 1)).all():
                raise ValueError("mask must be boolean (or 0/1)")
            m = m.astype(bool)
        return m, single

    @property
    def has_labels(self) -> bool:
        """Whether the tables hold the per-class fields (real and sample labels were given)."""
        return self.real_labels is not None

    @property
    def degenerate_names(self) -> list[str]:
        """Names of the generators flagged as degenerate (see :mod:`ensemble.scoring.degenerate`)."""
        return [n for n, flag in zip(self.names, self.degenerate, strict=True) if flag]

    def warn_degenerate(self) -> None:
        """Log a warning naming every degenerate generator and why it was flagged."""
        reasons = self.meta.get("degenerate") or {}
        for name in self.degenerate_names:
            log.warning("generator %r is degenerate (%s); the search leaves it out unless "
                        "keep_degenerate=True (--keep-degenerate)", name, reasons.get(name, "flagged"))

    def mask_of(self, names) -> np.ndarray:
        """Boolean mask selecting ``names`` (unknown names raise, listing a few known ones)."""
        index = {n: i for i, n in enumerate(self.names)}
        m = np.zeros(self.n_generators, dtype=bool)
        for n in names:
            if n not in index:
                raise ValueError(f"generator {n!r} is not in the score tables; known: {self.names[:8]}...")
            m[index[n]] = True
        return m

    def density_coverage(self, mask) -> tuple[np.ndarray, np.ndarray]:
        """Density and coverage of the pooled samples of each ensemble (exact decomposition)."""
        m, single = self._masks(mask)
        mf = m.astype(np.float64)
        n = mf @ self.n_fake
        with np.errstate(invalid="ignore", divide="ignore"):
            dens = (mf @ self.counts) / (self.k * n)
        if self._hits_f is None:
            self._hits_f = self.hits.astype(np.float32)
        covered = (self._hits_f @ m.T.astype(np.float32)) > 0  # (N, pop)
        cov = covered.mean(0).astype(np.float64)
        cov[n == 0] = np.nan
        return (dens[0], cov[0]) if single else (dens, cov)

    def intra_d(self, mask):
        """Intra-d: d(real, pooled members' samples); NaN for an empty mask."""
        dens, cov = self.density_coverage(mask)
        return d_score(dens, cov)

    def class_intra_d(self, mask):
        """Class-intra-d: mean over classes c of d(real of class c, members' class-c samples).

        Exact, from the per-class counts and hits (one matrix product per population). A class
        for which the members generated nothing scores 0. Without labels there is one class and
        the value is :meth:`intra_d`. NaN for an empty mask.
        """
        if not self.has_labels:
            return self.intra_d(mask)
        m, single = self._masks(mask)
        mf = m.astype(np.float64)
        n = mf @ self.class_n_fake.T  # (pop, C)
        with np.errstate(invalid="ignore", divide="ignore"):
            dens = np.where(n > 0, (mf @ self.class_counts.T) / (self.k * n), 0.0)
        if self._class_hits_f is None:
            self._class_hits_f = self.class_hits.astype(np.float32)
            self._class_rows = [np.flatnonzero(self.real_labels == c) for c in np.unique(self.real_labels)]
        covered = (self._class_hits_f @ m.T.astype(np.float32)) > 0  # (N, pop)
        # per-class means, one column per mask (a mask's value never depends on its batch)
        cov = np.column_stack([covered[rows].mean(0) for rows in self._class_rows])  # (pop, C)
        out = d_score(dens, cov).mean(1)
        out[m.sum(1) == 0] = np.nan
        return out[0] if single else out

    def overlap_matrix(self) -> np.ndarray:
        """(P, P) Jaccard overlap of the generators' hit vectors (per class when labelled, then averaged).

        ``|H_g ∩ H_h| / |H_g ∪ H_h|`` over the real points each covers; a generator that covers
        no real point (of a class) counts as fully overlapping (1): it adds nothing. Diagonal 1.
        """
        if self._overlap is None:
            if self.has_labels:
                parts = [_jaccard(self.class_hits[self.real_labels == c])
                         for c in np.unique(self.real_labels)]
                self._overlap = np.mean(parts, axis=0)
            else:
                self._overlap = _jaccard(self.hits)
        return self._overlap

    def coverage_overlap(self, mask):
        """Coverage-overlap: mean Jaccard overlap over unordered member pairs; NaN below 2 members."""
        m, single = self._masks(mask)
        w = np.array(self.overlap_matrix(), dtype=np.float64)
        np.fill_diagonal(w, 0.0)
        mf = m.astype(np.float64)
        s = mf.sum(1)
        total = ((mf @ w) * mf).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(s >= 2, total / (s * (s - 1)), np.nan)
        return out[0] if single else out

    def inter_d(self, mask):
        """Inter-d: mean folded d over unordered member pairs; NaN with fewer than 2 members."""
        m, single = self._masks(mask)
        if not self.has_pairwise:
            raise ValueError("these score tables were built with pairwise=False, so they hold no "
                             "Inter-d; rebuild them with pairwise=True")
        if self._w is None:
            w = np.array(self.pairwise, dtype=np.float64)
            np.fill_diagonal(w, 0.0)
            self._w = w
        mf = m.astype(np.float64)
        s = mf.sum(1)
        total = ((mf @ self._w) * mf).sum(1)  # Σ over ordered member pairs (each pair twice)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(s >= 2, total / (s * (s - 1)), np.nan)
        return out[0] if single else out

    # ------------------------------------------------------------------ memorisation
    @property
    def flagged(self) -> list[str]:
        """Generators the memorisation audit flags (empty without an audit)."""
        if self.memorisation is None:
            return []
        return [n for n, f in zip(self.names, self.memorisation["flagged"], strict=True) if f]

    def nearest(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(distance, index) of each sample of ``name``'s nearest real image, from the audit."""
        if self.nn_index is None:
            raise ValueError("these score tables hold no memorisation audit; score them with "
                             "held-out real data (holdout=... / holdout_images=...)")
        self.mask_of([name])  # unknown names raise, listing known ones
        g = self.names.index(name)
        lo = int(self.n_fake[:g].sum())
        hi = lo + int(self.n_fake[g])
        return self.nn_dist[lo:hi], self.nn_index[lo:hi]

    def memorisation_of(self, names) -> dict[str, dict]:
        """The audit rows of ``names`` as JSON-able dicts (for selected.json / meta.json); {} without."""
        if self.memorisation is None:
            return {}
        self.mask_of(names)
        out = {}
        for n in names:
            row = self.memorisation.loc[n]
            out[n] = {c: (bool(row[c]) if c == "flagged" else
                          int(row[c]) if c in ("n_samples", "exact_copies", "n_close") else float(row[c]))
                      for c in MEMORISATION_COLUMNS}
        return out

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_fields(cls, fields: dict, *, warn: bool = True) -> ScoreTables:
        """Tables from the fields :mod:`ensemble.scoring.build` computes (``by_class`` nested).

        ``warn``: log a warning naming each degenerate generator (:meth:`warn_degenerate`).
        """
        fields = dict(fields)
        by_class = {str(c): cls.from_fields(f, warn=False)
                    for c, f in (fields.pop("by_class", None) or {}).items()}
        meta = {**(fields.pop("meta", None) or {}), "format": FORMAT}
        tables = cls(**fields, meta=meta)
        tables.by_class.update(by_class)
        if warn:
            tables.warn_degenerate()
        return tables

    @classmethod
    def from_features(cls, real_features: np.ndarray, fake_features: dict[str, np.ndarray], *,
                      k: int = 5, inter_mode: str = "symmetric", pairwise: bool = True,
                      real_radii: np.ndarray | None = None, meta: dict | None = None,
                      device: str = "auto", progress: bool = True, backend=None,
                      real_labels: np.ndarray | None = None,
                      fake_labels: dict[str, np.ndarray] | None = None,
                      holdout: np.ndarray | None = None, alpha: float = ALPHA) -> ScoreTables:
        """Build the tables from embeddings: one pass per generator, one per generator pair.

        ``real_features`` float32 ``(N, D)``; ``fake_features`` ``{name: (M_g, D)}``; ``k`` of the
        k-NN radii; ``inter_mode`` one of :data:`INTER_MODES`; ``pairwise=False`` skips Inter-d;
        ``real_radii`` reuses the real k-NN radii. ``backend`` (an :mod:`ensemble.parallel`
        backend or its name; default in this process) runs the passes as tasks; the tables do
        not depend on it. ``real_labels`` (N,) with ``fake_labels`` ``{name: (M_g,)}`` (the class
        each sample was generated for) add the per-class fields of class-intra-d.
        ``holdout``: held-out real features (the validation split) for the
        memorisation audit (``.memorisation``; test level ``alpha``).
        """
        from ensemble.scoring.build import feature_fields

        return cls.from_fields(feature_fields(
            real_features, fake_features, k=k, inter_mode=inter_mode, pairwise=pairwise,
            real_radii=real_radii, meta=meta, device=device, progress=progress, backend=backend,
            real_labels=real_labels, fake_labels=fake_labels, holdout=holdout, alpha=alpha))

    @classmethod
    def compute(cls, catalog, real_images: np.ndarray, embedder, *, n_samples: int | None = None,
                k: int = 5, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                per_class: bool = False, real_labels: np.ndarray | None = None,
                names: list[str] | None = None, inter_mode: str = "symmetric",
                class_names: list[str] | None = None, backend=None,
                progress: bool = True, pairwise: bool = True,
                holdout_images: np.ndarray | None = None, alpha: float = ALPHA) -> ScoreTables:
        """Sample every catalog generator, embed (cached by content), and build the tables.

        ``n_samples=None`` takes as many samples per generator as there are real images (the
        reference protocol). ``per_class=True`` also builds one set of tables per class
        (``.by_class``), which needs ``real_labels``. ``backend``: one backend (one cluster
        client) for the sampling/embedding and the scoring tasks (default: in this process).
        With ``real_labels`` the tables hold the per-class fields of class-intra-d (the samples'
        labels are those each generator was sampled with). ``pairwise=False`` skips the P² pair
        products: no Inter-d, for objective sets that do not need it.
        ``holdout_images``: the real validation images, the memorisation audit's reference.
        """
        from ensemble.scoring.build import catalog_fields

        return cls.from_fields(catalog_fields(
            catalog, real_images, embedder, n_samples=n_samples, k=k, seed=seed,
            cache_dir=cache_dir, per_class=per_class, real_labels=real_labels, names=names,
            inter_mode=inter_mode, class_names=class_names, backend=backend, progress=progress,
            pairwise=pairwise, holdout_images=holdout_images, alpha=alpha))

    # ------------------------------------------------------------------ views
    def subset(self, names: list[str]) -> ScoreTables:
        """Tables restricted to ``names`` (in that order)."""
        self.mask_of(names)  # unknown names raise here, listing known ones
        idx = np.array([self.names.index(n) for n in names], dtype=int)
        mem = nn_dist = nn_index = None
        if self.memorisation is not None:
            mem = self.memorisation.loc[list(names)].copy()
            mem.attrs = dict(self.memorisation.attrs)
            if self.nn_index is not None:
                nn_dist = np.concatenate([self.nearest(n)[0] for n in names])
                nn_index = np.concatenate([self.nearest(n)[1] for n in names])
        return ScoreTables(
            names=[self.names[i] for i in idx], k=self.k, n_real=self.n_real,
            counts=self.counts[idx], n_fake=self.n_fake[idx], hits=self.hits[:, idx],
            density=self.density[idx], coverage=self.coverage[idx], d=self.d[idx],
            pairwise=self.pairwise[np.ix_(idx, idx)],
            pairwise_directed=self.pairwise_directed[np.ix_(idx, idx)], meta=dict(self.meta),
            by_class={c: t.subset(names) for c, t in self.by_class.items()},
            real_labels=self.real_labels,
            class_counts=None if self.class_counts is None else self.class_counts[:, idx],
            class_n_fake=None if self.class_n_fake is None else self.class_n_fake[:, idx],
            class_hits=None if self.class_hits is None else self.class_hits[:, idx],
            degenerate=self.degenerate[idx],
            memorisation=mem, nn_dist=nn_dist, nn_index=nn_index,
            label_agreement=None if self.label_agreement is None else self.label_agreement[idx],
        )

    def add_label_agreement(self, table) -> None:
        """Attach :func:`ensemble.label_fidelity.label_agreement_table`'s result (a row per generator,
        any order); its ``attrs`` (the judge's validation accuracy, epochs, ...) go to
        ``meta["label_fidelity"]``."""
        by_name = dict(zip(table["name"].astype(str), table["label_agreement"], strict=True))
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise ValueError(f"label agreement table lacks generator(s) {missing[:8]}; compute it for "
                             "every generator of the tables (names=tables.names)")
        self.label_agreement = _shares([by_name[n] for n in self.names], len(self.names))
        self.meta["label_fidelity"] = dict(getattr(table, "attrs", {}) or {})

    def summary(self):
        """One row per generator: density, coverage, d against real, label agreement (when the tables
        hold it) and whether it is degenerate."""
        import pandas as pd

        cols = {"name": self.names, "n_fake": self.n_fake, "density": self.density,
                "coverage": self.coverage, "d": self.d}
        if self.label_agreement is not None:
            cols["label_agreement"] = self.label_agreement
        cols["degenerate"] = self.degenerate
        return pd.DataFrame(cols).sort_values("d", ascending=False)

    # ------------------------------------------------------------------ persistence
    def _arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        meta = {"names": self.names, "k": self.k, "n_real": self.n_real, "meta": self.meta,
                "classes": list(self.by_class)}
        out = {
            f"{prefix}meta_json": np.array(json.dumps(meta, sort_keys=True, default=str)),
            f"{prefix}counts": self.counts, f"{prefix}n_fake": self.n_fake,
            f"{prefix}hits": np.packbits(self.hits, axis=0), f"{prefix}density": self.density,
            f"{prefix}coverage": self.coverage, f"{prefix}d": self.d,
            f"{prefix}pairwise": self.pairwise, f"{prefix}pairwise_directed": self.pairwise_directed,
            f"{prefix}degenerate": self.degenerate,
        }
        if self.label_agreement is not None:  # additive: files without it load with None
            out[f"{prefix}label_agreement"] = self.label_agreement
        if self.has_labels:
            out.update({f"{prefix}real_labels": self.real_labels, f"{prefix}class_counts": self.class_counts,
                        f"{prefix}class_n_fake": self.class_n_fake,
                        f"{prefix}class_hits": np.packbits(self.class_hits, axis=0)})
        if self.memorisation is not None:  # additive: files without these keys load with None
            mem = self.memorisation
            out[f"{prefix}memorisation_json"] = np.array(json.dumps(
                {"columns": list(mem.columns), "attrs": mem.attrs}, sort_keys=True, default=str))
            for c in mem.columns:
                out[f"{prefix}memorisation__{c}"] = mem[c].to_numpy()
            if self.nn_index is not None:
                out[f"{prefix}nn_dist"] = np.asarray(self.nn_dist, np.float32)
                out[f"{prefix}nn_index"] = np.asarray(self.nn_index, np.int64)
        for i, t in enumerate(self.by_class.values()):
            out.update(t._arrays(prefix=f"{prefix}class{i}__"))
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Save as one ``.npz`` (arrays plus a JSON string; loadable without pickle)."""
        arrays = self._arrays()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScoreTables:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"score tables {str(p)!r} not found; create them with `gan-ensemble score`")
        fix = "create it again with `gan-ensemble score`"
        arrays = read_npz(p, what="score tables", fix=fix)
        if "meta_json" not in arrays:
            raise ValueError(f"{p} is not a score-tables file (no meta_json); {fix}")
        tables = cls._from_arrays(arrays, "", p)
        tables.warn_degenerate()
        return tables

    @classmethod
    def _from_arrays(cls, a: dict, prefix: str, path: Path) -> ScoreTables:
        fix = "create it again with `gan-ensemble score`"
        try:
            meta = json.loads(str(a[f"{prefix}meta_json"]))
            names, k, n_real = list(meta["names"]), int(meta["k"]), int(meta["n_real"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"score tables {str(path)!r}: unreadable metadata ({exc}); {fix}") from None
        p = len(names)
        shapes = {"counts": (p,), "n_fake": (p,), "hits": ((n_real + 7) // 8, p), "density": (p,),
                  "coverage": (p,), "d": (p,), "pairwise": (p, p), "pairwise_directed": (p, p)}
        for key, shape in shapes.items():
            arr = a.get(prefix + key)
            if arr is None:
                raise ValueError(f"score tables {str(path)!r} lack the array {prefix + key!r}; {fix}")
            if arr.shape != shape:
                raise ValueError(f"score tables {str(path)!r}: array {prefix + key!r} has shape {arr.shape}, "
                                 f"but {p} generators and {n_real} real images need {shape}; {fix}")
        labelled = {}
        if f"{prefix}real_labels" in a:  # per-class fields; older files have none
            labelled = {"real_labels": a[f"{prefix}real_labels"], "class_counts": a[f"{prefix}class_counts"],
                        "class_n_fake": a[f"{prefix}class_n_fake"],
                        "class_hits": np.unpackbits(a[f"{prefix}class_hits"], axis=0,
                                                    count=n_real).astype(bool)}
        t = cls(names=names, k=k, n_real=n_real,
                counts=a[f"{prefix}counts"], n_fake=a[f"{prefix}n_fake"],
                hits=np.unpackbits(a[f"{prefix}hits"], axis=0, count=n_real).astype(bool),
                density=a[f"{prefix}density"], coverage=a[f"{prefix}coverage"], d=a[f"{prefix}d"],
                pairwise=a[f"{prefix}pairwise"], pairwise_directed=a[f"{prefix}pairwise_directed"],
                meta=meta.get("meta", {}), degenerate=a.get(f"{prefix}degenerate"), **labelled,
                label_agreement=a.get(f"{prefix}label_agreement"),
                **cls._memorisation_from_arrays(a, prefix, names))
        for i, c in enumerate(meta.get("classes", [])):
            t.by_class[c] = cls._from_arrays(a, f"{prefix}class{i}__", path)
        return t

    @staticmethod
    def _memorisation_from_arrays(a: dict, prefix: str, names: list[str]) -> dict:
        if f"{prefix}memorisation_json" not in a:
            return {}
        import pandas as pd

        spec = json.loads(str(a[f"{prefix}memorisation_json"]))
        mem = pd.DataFrame({c: a[f"{prefix}memorisation__{c}"] for c in spec["columns"]},
                           index=pd.Index([str(n) for n in names], name="name"))
        mem.attrs.update(spec.get("attrs") or {})
        return {"memorisation": mem, "nn_dist": a.get(f"{prefix}nn_dist"),
                "nn_index": a.get(f"{prefix}nn_index")}

    def __repr__(self) -> str:
        return (f"ScoreTables(P={self.n_generators}, n_real={self.n_real}, k={self.k}, "
                f"best single d={self.d.max():.4f})")


def _shares(values, p: int) -> np.ndarray:
    """``values`` as a float64 (p,) array of shares in [0, 1] (the label agreement), else an error."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.shape != (p,) or not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ValueError(f"label agreement must be {p} shares in [0, 1] (one per generator), got "
                         f"{a[:8]} (shape {a.shape}); recompute it with label_agreement_table")
    return a


def _jaccard(hits: np.ndarray) -> np.ndarray:
    """(P, P) Jaccard overlap of the columns of ``hits`` (n, P); 1 where either column is empty."""
    h = np.asarray(hits, dtype=np.float64)
    inter = h.T @ h
    n = h.sum(0)
    union = n[:, None] + n[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where((n[:, None] > 0) & (n[None, :] > 0), inter / union, 1.0)
    np.fill_diagonal(j, 1.0)
    return j


#: Tables from embeddings (the same as :meth:`ScoreTables.from_features`).
score_features = ScoreTables.from_features
#: The scoring entry point: a zoo catalog's tables (the same as :meth:`ScoreTables.compute`).
score_catalog = ScoreTables.compute
