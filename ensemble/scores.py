"""Score tables: everything the search needs, computed once.

With the real k-NN radii fixed, Intra-d of any ensemble E decomposes exactly (METHOD.md §3):
``D(E) = Σ_g cnt_g / (k Σ_g n_g)`` and ``C(E) = mean_i OR_g hits[i, g]``; Inter-d is the mean of
a precomputed P × P matrix of d between generators. After one pass over the features, evaluating
an ensemble costs O(N·|E|) and a whole population is one small matrix product.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ensemble.metrics import (
    _check_k,
    check_features,
    compare_sets,
    d_score,
    knn_radii,
    prepare_features,
)
from zoo.io import atomic_write

__all__ = ["ScoreTables", "INTER_MODES"]

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
        self._hits_f = None
        self._w = None

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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_features(cls, real_features: np.ndarray, fake_features: dict[str, np.ndarray], *,
                      k: int = 5, inter_mode: str = "symmetric", pairwise: bool = True,
                      real_radii: np.ndarray | None = None, meta: dict | None = None,
                      device: str = "auto", progress: bool = True, backend=None) -> ScoreTables:
        """Build the tables from embeddings: one pass per generator, one per generator pair.

        ``backend`` (an :mod:`ensemble.parallel` backend or its name) runs the per-generator
        passes and blocks of generator pairs as tasks, locally or on a Dask cluster; the tables
        are identical to those of the default in-process loop.
        """
        if inter_mode not in INTER_MODES:
            raise ValueError(f"unknown inter_mode {inter_mode!r}; use one of {', '.join(INTER_MODES)}")
        _check_k(k)
        if not isinstance(fake_features, dict) or not fake_features:
            raise ValueError("fake_features must be a non-empty dict {generator name: features}")
        real = check_features(real_features, "real features", min_rows=k + 1)
        names = [str(n) for n in fake_features]
        fakes = {}
        for n in names:
            f = check_features(fake_features[n], f"features of generator {n!r}", min_rows=1)
            if f.shape[1] != real.shape[1]:
                raise ValueError(
                    f"features of generator {n!r} have dimension {f.shape[1]} but real have "
                    f"{real.shape[1]}; embed all images with the same backbone"
                )
            if pairwise and len(f) < k + 1:
                raise ValueError(f"generator {n!r} has {len(f)} samples; Inter-d needs at least k+1 = {k + 1}")
            fakes[n] = f
        p = len(names)
        pr = prepare_features(real, device=device, name="real features")
        radii = knn_radii(pr, k) if real_radii is None else np.asarray(real_radii, np.float32)
        counts = np.zeros(p, np.int64)
        n_fake = np.array([len(fakes[n]) for n in names], np.int64)
        hits = np.zeros((len(real), p), bool)
        directed = np.full((p, p), np.nan)
        if backend is not None:
            from ensemble.parallel import using_backend
            from ensemble.tasks import score_on_backend

            with using_backend(backend) as b:
                score_on_backend(b, real, radii, pr.center.cpu().numpy(), [fakes[n] for n in names],
                                 names, k=k, pairwise=pairwise, device=device, progress=progress,
                                 counts=counts, hits=hits, directed=directed)
        else:
            prepared, fradii = [], []
            for g, n in enumerate(tqdm(names, desc="score vs real", disable=not progress, leave=False)):
                pf = prepare_features(fakes[n], center=pr.center, device=pr.c32.device, name=n)
                counts[g], hits[:, g], fr = _score_generator(pr, radii, pf, k=k, name=n,
                                                             pairwise=pairwise)
                if pairwise:
                    prepared.append(pf)
                    fradii.append(fr)
            if pairwise:
                pairs = [(g, h) for g in range(p) for h in range(g + 1, p)]
                for g, h in tqdm(pairs, desc="score pairs", disable=not progress, leave=False):
                    directed[g, h], directed[h, g] = _score_pair(
                        prepared[g], prepared[h], fradii[g], fradii[h], n_fake[g], n_fake[h], k)
        density = counts / (k * n_fake)
        coverage = hits.mean(0)
        folded = _fold(directed, names, inter_mode)
        meta = dict(meta or {})
        meta.update({"inter_mode": inter_mode, "format": FORMAT})
        return cls(names=names, k=k, n_real=len(real), counts=counts, n_fake=n_fake, hits=hits,
                   density=density, coverage=coverage, d=d_score(density, coverage),
                   pairwise=folded, pairwise_directed=directed, meta=meta)

    @classmethod
    def compute(cls, catalog, real_images: np.ndarray, embedder, *, n_samples: int | None = None,
                k: int = 5, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                per_class: bool = False, real_labels: np.ndarray | None = None,
                names: list[str] | None = None, inter_mode: str = "symmetric",
                class_names: list[str] | None = None, backend=None,
                progress: bool = True) -> ScoreTables:
        """Sample every catalog generator, embed (cached by content), and build the tables.

        ``n_samples=None`` takes as many samples per generator as there are real images (the
        reference protocol). ``per_class=True`` also builds one set of tables per class
        (``.by_class``), which needs ``real_labels``.
        """
        from ensemble.cache import FeatureCache
        from ensemble.features import compute_features

        if per_class and real_labels is None:
            raise ValueError("per_class=True needs real_labels (the class of each real image)")
        kwargs = dict(names=names, n_samples=n_samples, seed=seed, cache=FeatureCache(cache_dir),
                      per_class=per_class, real_labels=real_labels, progress=progress)
        with contextlib.ExitStack() as stack:
            if backend is not None:  # one backend (one cluster client) for every stage below
                from ensemble.parallel import using_backend

                backend = stack.enter_context(using_backend(backend))
                kwargs["backend"] = backend
            fs = compute_features(catalog, real_images, embedder, **kwargs)
            meta = dict(fs.meta)
            meta.update({"k": k, "seed": seed})
            tables = cls.from_features(fs.real, fs.fake, k=k, inter_mode=inter_mode, meta=meta,
                                       device=getattr(embedder, "device", "auto"), progress=progress,
                                       backend=backend)
            if per_class:
                labels = np.asarray(fs.real_labels if fs.real_labels is not None else real_labels)
                classes = sorted(set(labels.tolist()))
                for c in classes:
                    cname = class_names[c] if class_names is not None else str(c)
                    fake_c = {n: f[fs.fake_labels[n] == c] for n, f in fs.fake.items()}
                    tables.by_class[cname] = cls.from_features(
                        fs.real[labels == c], fake_c, k=k, inter_mode=inter_mode,
                        meta={**meta, "class": cname}, progress=progress, backend=backend)
        return tables

    # ------------------------------------------------------------------ views
    def subset(self, names: list[str]) -> ScoreTables:
        """Tables restricted to ``names`` (in that order)."""
        self.mask_of(names)  # unknown names raise here, listing known ones
        idx = np.array([self.names.index(n) for n in names], dtype=int)
        return ScoreTables(
            names=[self.names[i] for i in idx], k=self.k, n_real=self.n_real,
            counts=self.counts[idx], n_fake=self.n_fake[idx], hits=self.hits[:, idx],
            density=self.density[idx], coverage=self.coverage[idx], d=self.d[idx],
            pairwise=self.pairwise[np.ix_(idx, idx)],
            pairwise_directed=self.pairwise_directed[np.ix_(idx, idx)], meta=dict(self.meta),
            by_class={c: t.subset(names) for c, t in self.by_class.items()},
        )

    def summary(self):
        """One row per generator: density, coverage, d against real (pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame({"name": self.names, "n_fake": self.n_fake, "density": self.density,
                             "coverage": self.coverage, "d": self.d}).sort_values("d", ascending=False)

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
        }
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
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise ValueError(f"could not read score tables {p}: {exc}") from exc
        if "meta_json" not in arrays:
            raise ValueError(f"{p} is not a score-tables file (no meta_json); create it with `gan-ensemble score`")
        return cls._from_arrays(arrays, "")

    @classmethod
    def _from_arrays(cls, a: dict, prefix: str) -> ScoreTables:
        meta = json.loads(str(a[f"{prefix}meta_json"]))
        n_real = int(meta["n_real"])
        t = cls(names=meta["names"], k=int(meta["k"]), n_real=n_real,
                counts=a[f"{prefix}counts"], n_fake=a[f"{prefix}n_fake"],
                hits=np.unpackbits(a[f"{prefix}hits"], axis=0, count=n_real).astype(bool),
                density=a[f"{prefix}density"], coverage=a[f"{prefix}coverage"], d=a[f"{prefix}d"],
                pairwise=a[f"{prefix}pairwise"], pairwise_directed=a[f"{prefix}pairwise_directed"],
                meta=meta["meta"])
        for i, c in enumerate(meta.get("classes", [])):
            t.by_class[c] = cls._from_arrays(a, f"{prefix}class{i}__")
        return t

    def __repr__(self) -> str:
        return (f"ScoreTables(P={self.n_generators}, n_real={self.n_real}, k={self.k}, "
                f"best single d={self.d.max():.4f})")


def _score_generator(pr, radii, pf, *, k: int, name: str, pairwise: bool):
    """One generator against real: (count in real balls, real points covered, own k-NN radii)."""
    st = compare_sets(pr, pf, radii_a=radii, need=("rows_a",))
    fr = knn_radii(pf, k, name=f"samples of {name!r}") if pairwise else None
    return st.count_a, st.rows_a, fr


def _score_pair(pg, ph, rg, rh, n_g, n_h, k: int):
    """(d(S_g, S_h), d(S_h, S_g)) from one pass over the distances between two generators."""
    st = compare_sets(pg, ph, radii_a=rg, radii_b=rh, need=("rows_a", "cols_b"))
    # reference g: density of S_h in S_g's balls, coverage of S_g's points by S_h
    return (d_score(st.count_a / (k * n_h), st.rows_a.mean()),
            d_score(st.count_b / (k * n_g), st.cols_b.mean()))


def _fold(directed: np.ndarray, names: list[str], mode: str) -> np.ndarray:
    if mode == "symmetric":
        folded = 0.5 * (directed + directed.T)
    else:  # "first-name": the generator whose name sorts first is the reference
        p = len(names)
        folded = np.full((p, p), np.nan)
        for g in range(p):
            for h in range(p):
                if g != h:
                    ref, other = (g, h) if names[g] <= names[h] else (h, g)
                    folded[g, h] = directed[ref, other]
    np.fill_diagonal(folded, np.nan)
    return folded
