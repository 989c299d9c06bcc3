"""Building score tables: from features (:func:`score_features`) or from a zoo (:func:`score_catalog`).

:func:`score_features` makes one pass per generator against the real set (its count in the real
k-NN balls, the real points it covers, its own k-NN radii) and one per generator pair (d in both
directions) for Inter-d. With held-out real features (``holdout``), the per-generator pass also
finds every sample's nearest real image for the memorisation audit
(:mod:`ensemble.scoring.memorisation`), in the same pass over the distance blocks. The passes are tasks (:func:`score_generator_task`,
:func:`score_pair_block_task` over tiles of pairs from :func:`pair_blocks`) on an
:mod:`ensemble.parallel` backend: by default ``LocalBackend(n_jobs=1)`` in this process, else
worker processes or a Dask cluster. It is the one code path, and the tables are identical
wherever the tasks run. :func:`score_catalog` samples and embeds every generator of a catalog
(:func:`ensemble.features.compute_features`, cached) and scores the features, with one backend
for both stages.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensemble.features.cache import FeatureCache
from ensemble.features.collect import compute_features
from ensemble.parallel import Backend, using_backend
from ensemble.scoring.degenerate import degenerate_reason, feature_spread
from ensemble.scoring.knn import (
    PreparedFeatures,
    check_features,
    check_k,
    compare_sets,
    d_score,
    knn_radii,
    knn_radii_many,
    prepare_features,
)
from ensemble.scoring.memorisation import ALPHA, close_flags, memorisation_table

__all__ = [
    "feature_fields",
    "catalog_fields",
    "score_generator_task",
    "score_pair_block_task",
    "pair_blocks",
    "embed_holdout",
]

log = logging.getLogger(__name__)


def feature_fields(real_features: np.ndarray, fake_features: dict[str, np.ndarray], *, k: int = 5,
                   inter_mode: str = "symmetric", pairwise: bool = True,
                   real_radii: np.ndarray | None = None, meta: dict | None = None,
                   device: str = "auto", progress: bool = True, backend: Any = None,
                   real_labels: np.ndarray | None = None,
                   fake_labels: Mapping[str, np.ndarray] | None = None,
                   holdout: np.ndarray | None = None, alpha: float = ALPHA) -> dict:
    """The fields of score tables from embeddings: one pass per generator, one per generator pair.

    Returns the keyword arguments of :class:`~ensemble.scoring.tables.ScoreTables` (this module
    computes, the tables module holds the data: it never imports this one's caller back).

    ``real_features`` float32 ``(N, D)``; ``fake_features`` ``{name: (M_g, D)}``; ``k`` of the
    k-NN radii; ``inter_mode`` one of :data:`~ensemble.scoring.tables.INTER_MODES`;
    ``pairwise=False`` skips Inter-d; ``real_radii`` reuses the real k-NN radii. ``backend`` (an
    :mod:`ensemble.parallel` backend or its name; default in this process) runs the
    per-generator passes and blocks of generator pairs as tasks; the tables do not depend on it.

    ``real_labels`` (N,) and ``fake_labels`` ``{name: (M_g,)}`` (the class each sample was
    generated for) add the per-class fields class-intra-d and the per-class coverage overlap
    need: for every class c, one more pass per generator of its class-c samples against the
    class-c real points, with their own k-NN radii within class c (``class_counts`` and
    ``class_n_fake`` (C, P), ``class_hits`` (N, P), ``real_labels``). Every generator is also
    checked for degeneracy (:mod:`ensemble.scoring.degenerate`): ``degenerate`` (P,) and
    ``meta["degenerate"]`` ``{name: reason}``.
    ``holdout``: held-out real features (e.g. the validation split, ``(n_h, D)``): adds the
    memorisation audit (fields ``memorisation``, ``nn_dist``, ``nn_index``; level ``alpha``).
    """
    if inter_mode not in ("symmetric", "first-name"):
        raise ValueError(f"unknown inter_mode {inter_mode!r}; use one of symmetric, first-name")
    check_k(k)
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
    audit = holdout is not None
    if audit:
        holdout = check_features(holdout, "held-out real features", min_rows=1)
        if holdout.shape[1] != real.shape[1]:
            raise ValueError(f"held-out real features have dimension {holdout.shape[1]} but real have "
                             f"{real.shape[1]}; embed them with the same backbone")
    p = len(names)
    pr = prepare_features(real, device=device, name="real features")
    nn1 = None  # each real image's distance to its nearest other one (the audit), with the radii
    if real_radii is not None:
        radii = np.asarray(real_radii, np.float32)
    elif audit:
        both = knn_radii_many(pr, (k, 1))
        radii, nn1 = both[k], both[1]
    else:
        radii = knn_radii(pr, k)
    counts = np.zeros(p, np.int64)
    n_fake = np.array([len(fakes[n]) for n in names], np.int64)
    hits = np.zeros((len(real), p), bool)
    directed = np.full((p, p), np.nan)
    nearest: list | None = [None] * p if audit else None
    with using_backend(backend) as b:
        _fill_tables(b, real, radii, pr.center.cpu().numpy(), [fakes[n] for n in names], names,
                     k=k, pairwise=pairwise, device=device, progress=progress, counts=counts,
                     hits=hits, directed=directed, nearest=nearest)
        class_fields = None
        if real_labels is not None or fake_labels is not None:
            class_fields = _class_fields(b, real, real_labels, fakes, fake_labels, names, k=k,
                                         device=device, progress=progress)
    density = counts / (k * n_fake)
    coverage = hits.mean(0)
    folded = _fold(directed, names, inter_mode)
    real_spread = feature_spread(real)
    reasons = {n: degenerate_reason(fakes[n], k=k, coverage=float(coverage[g]), real_spread=real_spread)
               for g, n in enumerate(names)}
    meta = dict(meta or {})
    meta.update({"inter_mode": inter_mode, "degenerate": {n: r for n, r in reasons.items() if r}})
    out = dict(names=names, k=k, n_real=len(real), counts=counts, n_fake=n_fake, hits=hits,
               density=density, coverage=coverage, d=d_score(density, coverage),
               pairwise=folded, pairwise_directed=directed, meta=meta,
               degenerate=np.array([bool(reasons[n]) for n in names], bool))
    if class_fields is not None:
        out.update(class_fields)
    if audit:
        out.update(_audit_fields(pr, holdout, names, nearest, alpha, nn1))
    return out


def _class_fields(backend: Backend, real: np.ndarray, real_labels: np.ndarray | None,
                  fakes: Mapping[str, np.ndarray], fake_labels: Mapping[str, np.ndarray] | None,
                  names: Sequence[str], *, k: int, device: Any, progress: bool) -> dict:
    """Per-class counts, sample counts and hits: class-c samples against class-c real points."""
    if real_labels is None or fake_labels is None:
        raise ValueError("per-class scores need both real_labels (the class of each real image) and "
                         "fake_labels ({generator name: the class each sample was generated for})")
    y = np.asarray(real_labels).reshape(-1)
    if len(y) != len(real):
        raise ValueError(f"real_labels has {len(y)} entries but there are {len(real)} real features")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"real_labels must be integers, got dtype {y.dtype}")
    missing = [n for n in names if n not in fake_labels]
    if missing:
        raise ValueError(f"fake_labels lack the generator(s) {missing[:5]}")
    fl = {}
    for n in names:
        lab = np.asarray(fake_labels[n]).reshape(-1)
        if len(lab) != len(fakes[n]):
            raise ValueError(f"fake_labels[{n!r}] has {len(lab)} entries but the generator has "
                             f"{len(fakes[n])} samples")
        fl[n] = lab
    classes = np.unique(y)
    p = len(names)
    class_counts = np.zeros((len(classes), p), np.int64)
    class_n_fake = np.zeros((len(classes), p), np.int64)
    class_hits = np.zeros((len(real), p), bool)
    for ci, c in enumerate(classes):
        rows = np.flatnonzero(y == c)
        if len(rows) < k + 1:
            raise ValueError(f"class {int(c)} has {len(rows)} real images; per-class scores need at "
                             f"least k+1 = {k + 1} in every class")
        real_c = real[rows]
        pr = prepare_features(real_c, device=device, name=f"real features of class {int(c)}")
        radii = knn_radii(pr, k)
        gens = [g for g, n in enumerate(names) if (fl[n] == c).any()]
        if not gens:
            continue
        counts = np.zeros(len(gens), np.int64)
        hits = np.zeros((len(rows), len(gens)), bool)
        _fill_tables(backend, real_c, radii, pr.center.cpu().numpy(),
                     [fakes[names[g]][fl[names[g]] == c] for g in gens], [names[g] for g in gens],
                     k=k, pairwise=False, device=device, progress=progress, counts=counts,
                     hits=hits, directed=np.full((len(gens), len(gens)), np.nan))
        class_counts[ci, gens] = counts
        class_n_fake[ci, gens] = [int((fl[names[g]] == c).sum()) for g in gens]
        class_hits[np.ix_(rows, gens)] = hits
    return dict(real_labels=y.astype(np.int64), class_counts=class_counts, class_n_fake=class_n_fake,
                class_hits=class_hits)

def _audit_fields(pr: PreparedFeatures, holdout: np.ndarray, names: list[str], nearest: list,
                  alpha: float, nn1: np.ndarray | None) -> dict:
    """The memorisation fields from every generator's nearest real images and the held-out pass."""
    if nn1 is None:
        nn1 = knn_radii(pr, 1, name="real features")  # each training image's nearest other one
    st = compare_sets(pr, holdout, nearest_b=True)
    ref = {"close": close_flags(st.nn_dist_b, st.nn_index_b, nn1), "copies": st.nn_copy_b,
           "nn_dist": st.nn_dist_b}
    members = [{"close": close_flags(dist, idx, nn1), "copies": copy, "nn_dist": dist}
               for dist, idx, copy in nearest]
    return {"memorisation": memorisation_table(names, members, ref, alpha=alpha),
            "nn_dist": np.concatenate([m[0] for m in nearest]).astype(np.float32),
            "nn_index": np.concatenate([m[1] for m in nearest]).astype(np.int64)}


def catalog_fields(catalog: Any, real_images: np.ndarray, embedder: Any, *,
                  n_samples: int | None = None, k: int = 5, seed: int = 0,
                  cache_dir: str | os.PathLike | None = None, per_class: bool = False,
                  real_labels: np.ndarray | None = None, names: list[str] | None = None,
                  inter_mode: str = "symmetric", class_names: list[str] | None = None,
                  backend: Any = None, progress: bool = True, pairwise: bool = True,
                  holdout_images: np.ndarray | None = None, alpha: float = ALPHA) -> dict:
    """Sample every catalog generator, embed (cached by content), and compute the tables' fields.

    ``n_samples=None`` takes as many samples per generator as there are real images (the
    reference protocol). ``per_class=True`` also builds one set of tables per class
    (``by_class``: ``{class name: fields}``), which needs ``real_labels``. ``backend``: one backend (one cluster client)
    for the sampling/embedding and the scoring tasks (default: in this process). With
    ``real_labels`` the tables also hold the per-class fields of class-intra-d (the samples'
    labels are the ones each generator was sampled with); ``pairwise=False`` skips the P² pair
    products (no Inter-d).
    ``holdout_images``: held-out real images (the validation split), embedded (cached) and used
    as the reference of the memorisation audit (the overall tables only).
    """
    if per_class and real_labels is None:
        raise ValueError("per_class=True needs real_labels (the class of each real image)")
    with using_backend(backend) as b:
        fs = compute_features(catalog, real_images, embedder, names=names, n_samples=n_samples,
                              seed=seed, cache=FeatureCache(cache_dir), per_class=per_class,
                              real_labels=real_labels, progress=progress, backend=b)
        meta = dict(fs.meta)
        meta.update({"k": k, "seed": seed})
        labels = fs.real_labels if fs.real_labels is not None else real_labels
        with_labels = labels is not None and not per_class  # per_class: taken from by_class below
        holdout = None
        if holdout_images is not None:
            holdout = embed_holdout(holdout_images, embedder, cache_dir)
            meta["n_holdout"] = len(holdout)
        tables = feature_fields(fs.real, fs.fake, k=k, inter_mode=inter_mode, meta=meta,
                                device=getattr(embedder, "device", "auto"), progress=progress,
                                backend=b, pairwise=pairwise, real_labels=labels if with_labels else None,
                                fake_labels=fs.fake_labels if with_labels else None,
                                holdout=holdout, alpha=alpha)
        if per_class:
            labels = np.asarray(fs.real_labels if fs.real_labels is not None else real_labels)
            classes = sorted(set(labels.tolist()))
            for c in classes:
                cname = class_names[c] if class_names is not None else str(c)
                fake_c = {n: f[fs.fake_labels[n] == c] for n, f in fs.fake.items()}
                tables.setdefault("by_class", {})[cname] = feature_fields(
                    fs.real[labels == c], fake_c, k=k, inter_mode=inter_mode,
                    meta={**meta, "class": cname}, progress=progress, backend=b)
            # the per-class fields of class-intra-d are the per-class tables' counts and hits
            # (the same passes: class-c samples against class-c real points, radii within class c)
            parts = list(tables["by_class"].values())
            class_hits = np.zeros_like(tables["hits"])
            for c, part in zip(classes, parts, strict=True):
                class_hits[labels == c] = part["hits"]
            tables.update(real_labels=np.asarray(labels, np.int64),
                          class_counts=np.stack([part["counts"] for part in parts]),
                          class_n_fake=np.stack([part["n_fake"] for part in parts]),
                          class_hits=class_hits)
    return tables


def embed_holdout(images: np.ndarray, embedder: Any, cache_dir: str | os.PathLike | None) -> np.ndarray:
    """Features of held-out real images, cached like the real ones (under a hash of the bytes)."""
    from ensemble.data import validate_images
    from ensemble.features.cache import hash_arrays

    images = validate_images(images, "holdout_images")
    store = FeatureCache(cache_dir)
    key = store.key(kind="holdout", images=hash_arrays(images), **embedder.cache_key_parts())
    hit = store.get(key)
    if hit is not None and hit.shape[0] == len(images) and hit.dtype == np.float32:
        return hit
    feats = embedder.embed(images, progress=False)
    store.put(key, feats, {"kind": "holdout", "n": len(images)})
    return feats


# --------------------------------------------------------------------------- the passes


def _score_generator(pr: PreparedFeatures, radii: np.ndarray, pf: PreparedFeatures, *, k: int,
                     name: str, pairwise: bool, audit: bool = False) -> tuple:
    """One generator against real: (count in real balls, real points covered, own k-NN radii,
    nearest real images or None). ``audit``: also (distance, index, copy flag) of every sample's
    nearest real image, from the same pass."""
    st = compare_sets(pr, pf, radii_a=radii, need=("rows_a",), nearest_b=audit)
    fr = knn_radii(pf, k, name=f"samples of {name!r}") if pairwise else None
    nearest = (st.nn_dist_b, st.nn_index_b, st.nn_copy_b) if audit else None
    return st.count_a, st.rows_a, fr, nearest


def _score_pair(pg: PreparedFeatures, ph: PreparedFeatures, rg: np.ndarray, rh: np.ndarray,
                n_g: int, n_h: int, k: int) -> tuple[float, float]:
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


# --------------------------------------------------------------------------- the tasks


def pair_blocks(p: int, n_workers: int = 1) -> list[list[tuple[int, int]]]:
    """Split the pairs (g, h), g < h, of ``p`` generators into tiles of contiguous groups.

    A tile (groups i <= j) needs only the features of its two groups, so blocks move little data;
    about ``8 × n_workers`` blocks, largest first, keep every worker busy to the end.
    """
    if p < 2:
        return []
    n_groups = max(1, min(p, math.ceil(math.sqrt(16 * max(1, n_workers)))))
    bounds = np.linspace(0, p, n_groups + 1).round().astype(int)
    groups = [range(bounds[i], bounds[i + 1]) for i in range(n_groups) if bounds[i + 1] > bounds[i]]
    blocks = []
    for i, gi in enumerate(groups):
        for gj in groups[i:]:
            pairs = [(g, h) for g in gi for h in gj if g < h]
            if pairs:
                blocks.append(pairs)
    return sorted(blocks, key=len, reverse=True)  # stable: equal sizes keep their order


def score_generator_task(item: Mapping[str, Any]) -> tuple:
    """One generator against the real set: (count, hits (N,), the generator's k-NN radii or None,
    its samples' nearest real images ``(dist, index, copy)`` or None; ``item["audit"]`` asks)."""
    pr = prepare_features(item["real"], center=item["center"], device=item["device"],
                          name="real features")
    pf = prepare_features(item["fake"], center=pr.center, device=pr.c32.device, name=item["name"])
    count, hits, fr, nearest = _score_generator(pr, item["radii"], pf, k=item["k"], name=item["name"],
                                                pairwise=item["pairwise"], audit=item.get("audit", False))
    return int(count), np.asarray(hits, bool), fr, nearest


def score_pair_block_task(item: Mapping[str, Any]) -> list[tuple[int, int, float, float]]:
    """d in both directions for a block of generator pairs: ``[(g, h, d(S_g,S_h), d(S_h,S_g))]``.

    ``item["fakes"]``/``["radii"]``/``["n_fake"]``: ``[(g, value), ...]`` for the generators of
    the block; ``center``: the real features' centre (every set is centred on it).
    """
    feats, radii, n_fake = dict(item["fakes"]), dict(item["radii"]), dict(item["n_fake"])
    prepared = {g: prepare_features(f, center=item["center"], device=item["device"], name=f"generator {g}")
                for g, f in feats.items()}
    out = []
    for g, h in item["pairs"]:
        d_gh, d_hg = _score_pair(prepared[g], prepared[h], radii[g], radii[h], n_fake[g],
                                 n_fake[h], item["k"])
        out.append((int(g), int(h), float(d_gh), float(d_hg)))
    return out


def _fill_tables(backend: Backend, real: np.ndarray, radii: np.ndarray, center: np.ndarray,
                 fakes: Sequence[np.ndarray], names: Sequence[str], *, k: int, pairwise: bool,
                 device: Any, progress: bool, counts: np.ndarray, hits: np.ndarray,
                 directed: np.ndarray, nearest: list | None = None) -> None:
    """Fill ``counts``, ``hits`` and ``directed`` (score-table arrays) with tasks on ``backend``;
    ``nearest`` (a list of P Nones), when given, with every generator's nearest real images."""
    p = len(names)
    dev = device if isinstance(device, str) else str(device)
    real_h, radii_h, center_h, *fake_h = backend.scatter([real, radii, center, *fakes])
    items = [{"real": real_h, "radii": radii_h, "center": center_h, "fake": fake_h[g],
              "name": names[g], "k": k, "pairwise": pairwise, "device": dev,
              "audit": nearest is not None} for g in range(p)]
    fradii = []
    for g, (count, hit, fr, nn) in enumerate(backend.map(score_generator_task, items,
                                                         desc="score vs real" if progress else None)):
        counts[g], hits[:, g] = count, hit
        fradii.append(fr)
        if nearest is not None:
            nearest[g] = nn
    if not pairwise:
        return
    n_fake = [len(f) for f in fakes]
    items = []
    for pairs in pair_blocks(p, backend.n_workers):
        gens = sorted({g for pair in pairs for g in pair})
        items.append({"fakes": [(g, fake_h[g]) for g in gens], "radii": [(g, fradii[g]) for g in gens],
                      "n_fake": [(g, np.int64(n_fake[g])) for g in gens], "pairs": pairs,
                      "center": center_h, "k": k, "device": dev})
    for block in backend.map(score_pair_block_task, items, desc="score pairs" if progress else None):
        for g, h, d_gh, d_hg in block:
            directed[g, h], directed[h, g] = d_gh, d_hg
