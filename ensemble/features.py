"""Feature collection: embed the real images and a sample of every zoo generator, with caching.

:func:`compute_features` is the expensive stage in front of the score tables. For every generator
it draws ``n_samples`` images (default: as many as there are real images, the reference protocol)
from the seed ``derive_seed(seed, "sample", name)``, with labels uniform over the classes (or
balanced with ``per_class=True``), and embeds them. Each generator's features are one cache entry,
keyed by its checkpoint sha256, the embedder's backbone / weights identity / image size / channel
policy, the sample count, the seeds, the labels and the package version: a changed checkpoint gets
a new key (never a stale hit), a warm cache only loads, and a killed run resumes where it stopped.
The real features are cached under a hash of the image bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.cache import FeatureCache, hash_arrays
from ensemble.data import validate_images, validate_labels
from zoo.seeding import derive_seed

__all__ = ["FeatureSet", "compute_features", "sample_labels"]

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Real and generated features in one embedding space.

    ``real`` float32 ``(N, D)``; ``real_labels`` int64 ``(N,)`` or None; ``fake`` ``{name: float32
    (M, D)}`` in catalog order; ``fake_labels`` ``{name: int64 (M,)}`` (the labels each generator was
    asked for); ``meta`` how they were made (backbone, weights identity, image size, channels,
    n_samples, seed, package version, ...).
    """

    real: np.ndarray
    real_labels: np.ndarray | None
    fake: dict[str, np.ndarray]
    fake_labels: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Generator names, in the order they were computed."""
        return list(self.fake)

    @property
    def dim(self) -> int:
        return int(self.real.shape[1])

    def __repr__(self) -> str:
        return (f"FeatureSet(real={self.real.shape}, {len(self.fake)} generators x "
                f"{self.meta.get('n_samples')} samples, D={self.dim}, {self.meta.get('weights')})")


def sample_labels(n: int, num_classes: int, seed: int, per_class: bool = False) -> np.ndarray:
    """Labels for ``n`` generated images: uniform draws, or a shuffled balanced vector (``per_class``)."""
    rng = np.random.default_rng(derive_seed(seed, "labels", int(n), int(num_classes), bool(per_class)))
    if per_class:
        return rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    return rng.integers(0, num_classes, size=n, dtype=np.int64)


def _as_cache(cache: Any) -> FeatureCache | None:
    if cache is False:
        return None
    if cache is None:
        return FeatureCache()
    if isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return FeatureCache(cache)
    raise ValueError(f"cache must be a FeatureCache, a folder, None (the default cache) or False "
                     f"(no caching), got {cache!r}")


def _select_rows(catalog: Any, names: Sequence[str] | None) -> list[dict]:
    table = catalog.list()
    if len(table) == 0:
        where = getattr(catalog, "zoo_dir", catalog)
        raise ValueError(f"the zoo {str(where)!r} has no generators; train some with "
                         "`gan-ensemble zoo train` or register foreign ones first")
    rows = {str(r["name"]): dict(r) for r in table.to_dict("records")}
    if names is None:
        return list(rows.values())
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("names is empty; pass None for every generator of the zoo, or some names")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"names lists {dupes} more than once; each generator is scored once")
    unknown = [n for n in names if n not in rows]
    if unknown:
        known = list(rows)
        more = f", ... ({len(known)} in all)" if len(known) > 8 else ""
        raise ValueError(f"generator(s) {unknown} not in the zoo catalog; known: "
                         f"{', '.join(known[:8])}{more}")
    return [rows[n] for n in names]


def _shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return tuple(int(v) for v in value)


def _embed_cached(cache: FeatureCache | None, key: str | None, n: int, compute, meta: dict) -> tuple[np.ndarray, bool]:
    """Return (features, was_cached), computing and storing them on a miss."""
    if cache is not None and key is not None:
        hit = cache.get(key)
        if hit is not None:
            if hit.ndim == 2 and len(hit) == n and hit.dtype == np.float32:
                return hit, True
            log.warning("cache entry %s has shape %s %s, expected (%d, D) float32; recomputing",
                        key[:12], hit.shape, hit.dtype, n)
    feats = compute()
    if cache is not None and key is not None:
        cache.put(key, feats, meta)
    return feats, False


def _fake_features_on_backend(backend: Any, catalog: Any, rows: list[dict], embedder: Any,
                              store: FeatureCache | None, *, n_samples: int, seed: int,
                              per_class: bool, parts: dict, base_meta: dict,
                              progress: bool) -> tuple[dict, dict, int]:
    """The generator loop of :func:`compute_features` as tasks: cache hits load here, misses run
    :func:`ensemble.tasks.embed_generator_task` on ``backend``. Returns (fake, fake_labels, hits)."""
    from ensemble.embed import Embedder
    from ensemble.tasks import embed_generator_task, embedder_params

    if not isinstance(embedder, Embedder):
        raise ValueError(f"backend= needs an ensemble.embed.Embedder (each task rebuilds it from its "
                         f"parameters), got {type(embedder).__name__}; drop backend= to embed here")
    zoo_dir = getattr(catalog, "zoo_dir", None)
    if zoo_dir is None:
        raise ValueError("backend= needs a zoo.catalog.Catalog (tasks load generators from its "
                         f"folder), got {type(catalog).__name__}")
    params, in_domain_weights = embedder_params(embedder)
    fake: dict[str, np.ndarray | None] = {}
    fake_labels: dict[str, np.ndarray] = {}
    items = []
    hits = 0
    for row in rows:
        name = str(row["name"])
        labels = sample_labels(n_samples, int(row["num_classes"]), seed, per_class)
        sample_seed = derive_seed(seed, "sample", name)
        fake_labels[name] = labels
        key = None
        if store is not None:
            key = store.key(kind="fake", name=name, sha256=str(row["sha256"]), n_samples=n_samples,
                            seed=int(seed), sample_seed=sample_seed, labels=hash_arrays(labels), **parts)
            hit = store.get(key)
            if hit is not None and hit.ndim == 2 and len(hit) == n_samples and hit.dtype == np.float32:
                fake[name] = hit
                hits += 1
                continue
        fake[name] = None  # keeps the catalog order; filled from the task's result
        meta = {**base_meta, "kind": "fake", "name": name, "sha256": str(row["sha256"]),
                "n": n_samples, "seed": int(seed), "sample_seed": sample_seed, "per_class": bool(per_class)}
        items.append({"zoo_dir": str(Path(zoo_dir).resolve()), "name": name,
                      "sha256": str(row["sha256"]), "n_samples": n_samples, "labels": labels,
                      "sample_seed": sample_seed, "image_shape": _shape(row["image_shape"]),
                      "embedder": params, "in_domain_weights": in_domain_weights,
                      "cache_root": str(store.root.resolve()) if store is not None else None,
                      "key": key, "meta": meta})
    log.info("generator features: %d cached, %d to compute on %r", hits, len(items), backend)
    results = backend.map(embed_generator_task, items, desc="generator features" if progress else None)
    for item, feats in zip(items, results, strict=True):
        fake[item["name"]] = feats
    return fake, fake_labels, hits


def compute_features(catalog: Any, real_images: np.ndarray, embedder: Any, *,
                     names: Sequence[str] | None = None, n_samples: int | None = None, seed: int = 0,
                     cache: FeatureCache | str | os.PathLike | bool | None = None,
                     per_class: bool = False, real_labels: np.ndarray | None = None,
                     progress: bool = True, backend: Any = None) -> FeatureSet:
    """Embed ``real_images`` and ``n_samples`` images of every generator (see the module docstring).

    ``catalog``: a :class:`zoo.catalog.Catalog`; ``embedder``: an
    :class:`~ensemble.embed.Embedder` (fitted first for ``weights="in-domain"``); ``names``: a subset
    of the catalog (default all, in catalog order); ``cache``: a FeatureCache or folder, None for
    the default cache, False for none; ``per_class``: balanced generated labels (needs
    ``real_labels``, used for per-class scores). ``backend`` (an :mod:`ensemble.parallel` backend
    or its name): sample and embed the generators missing from the cache as one task each, in
    worker processes or on a Dask cluster (each task rebuilds the embedder from its parameters and
    loads the generator from the zoo folder, so both folders must be reachable from the workers);
    the features are the same as in this process.
    """
    from tqdm.auto import tqdm

    from ensemble.version import __version__

    real_images = validate_images(real_images, "real_images")
    n_real = len(real_images)
    if real_labels is not None:
        real_labels = validate_labels(real_labels, num_classes=np.iinfo(np.int64).max, n=n_real,
                                      name="real_labels")
    elif per_class:
        raise ValueError("per_class=True needs real_labels (the class of every real image)")
    if n_samples is None:
        n_samples = n_real
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer (or None for as many as real images), "
                         f"got {n_samples!r}")
    n_samples = int(n_samples)
    derive_seed(seed)  # validates the seed
    store = _as_cache(cache)
    rows = _select_rows(catalog, names)

    real_shape = tuple(real_images.shape[1:])
    for row in rows:
        shape = _shape(row["image_shape"])
        if shape != real_shape:
            raise ValueError(
                f"real images have shape {real_shape} but generator {row['name']!r} makes {shape}; "
                "score generators against real images of their own size (e.g. resize the real "
                "data, or use a zoo trained at this size)"
            )
        k = int(row["num_classes"])
        if real_labels is not None and int(real_labels.max()) >= k:
            raise ValueError(f"real_labels go up to {int(real_labels.max())} but generator "
                             f"{row['name']!r} has only {k} classes; use the zoo of this dataset")
        if per_class and n_samples < k:
            raise ValueError(f"per_class=True needs n_samples >= the number of classes ({k}), got {n_samples}")

    parts = embedder.cache_key_parts()
    device = getattr(embedder, "device", "auto")
    base_meta = {**parts, "package_version": __version__}

    real_key = store.key(kind="real", images=hash_arrays(real_images), **parts) if store is not None else None
    real, real_hit = _embed_cached(store, real_key, n_real,
                                   lambda: embedder.embed(real_images, progress=None if progress else False),
                                   {**base_meta, "kind": "real", "n": n_real})
    log.info("real features %s (%s)", real.shape, "cached" if real_hit else "computed")

    fake: dict[str, np.ndarray] = {}
    fake_labels: dict[str, np.ndarray] = {}
    hits = 0
    if backend is not None:
        from ensemble.parallel import using_backend

        with using_backend(backend) as b:
            fake, fake_labels, hits = _fake_features_on_backend(
                b, catalog, rows, embedder, store, n_samples=n_samples, seed=seed,
                per_class=per_class, parts=parts, base_meta=base_meta, progress=progress)
        for name, feats in fake.items():
            if feats.shape[1] != real.shape[1]:
                raise ValueError(f"generator {name!r} features have {feats.shape[1]} dimensions but "
                                 f"the real ones {real.shape[1]}; clear the feature cache ({store}) "
                                 "and run again")
        rows = []  # done: skip the in-process loop below
    # only ever force-disable: otherwise tqdm's defaults (and $TQDM_DISABLE) decide
    bar = tqdm(rows, desc="generator features", unit="gen",
               **({} if progress and backend is None else {"disable": True}))
    for row in bar:
        name = str(row["name"])
        k = int(row["num_classes"])
        labels = sample_labels(n_samples, k, seed, per_class)
        sample_seed = derive_seed(seed, "sample", name)
        key = None
        if store is not None:
            key = store.key(kind="fake", name=name, sha256=str(row["sha256"]), n_samples=n_samples,
                            seed=int(seed), sample_seed=sample_seed, labels=hash_arrays(labels), **parts)

        def compute(name: str = name, labels: np.ndarray = labels, sample_seed: int = sample_seed,
                    shape: tuple = _shape(row["image_shape"])) -> np.ndarray:
            gen = catalog.load(name, device=device)
            images = np.asarray(gen.sample(n_samples, labels=labels, seed=sample_seed))
            del gen
            if images.dtype != np.uint8 or images.shape != (n_samples, *shape):
                raise ValueError(
                    f"generator {name!r} returned {images.dtype} {images.shape} for {n_samples} "
                    f"images; expected uint8 {(n_samples, *shape)}. Fix its sample() or catalog entry"
                )
            return embedder.embed(images, progress=False)

        meta = {**base_meta, "kind": "fake", "name": name, "sha256": str(row["sha256"]),
                "n": n_samples, "seed": int(seed), "sample_seed": sample_seed, "per_class": bool(per_class)}
        feats, hit = _embed_cached(store, key, n_samples, compute, meta)
        if feats.shape[1] != real.shape[1]:
            raise ValueError(f"generator {name!r} features have {feats.shape[1]} dimensions but the real "
                             f"ones {real.shape[1]}; clear the feature cache ({store}) and run again")
        hits += hit
        bar.set_postfix_str(f"{name} ({'cached' if hit else 'sampled'})", refresh=False)
        fake[name] = feats
        fake_labels[name] = labels
    bar.close()
    log.info("features of %d generators: %d from the cache, %d computed", len(fake), hits, len(fake) - hits)

    meta = {
        "backbone": parts.get("backbone"),
        "weights": parts.get("weights"),
        "image_size": parts.get("image_size"),
        "channels": parts.get("channels"),
        "timm_version": parts.get("timm_version"),
        "n_samples": n_samples,
        "n_real": n_real,
        "seed": int(seed),
        "per_class": bool(per_class),
        "package_version": __version__,
        "names": list(fake),
    }
    return FeatureSet(real=real, real_labels=real_labels, fake=fake, fake_labels=fake_labels, meta=meta)
