"""Feature collection: embed the real images and a sample of every zoo generator, with caching.

:func:`compute_features` is the expensive stage in front of the score tables. For every generator
it draws ``n_samples`` images (default: as many as there are real images, the reference protocol)
from the seed ``derive_seed(seed, "sample", name)``, with labels uniform over the classes (or
balanced with ``per_class=True``), and embeds them. Each generator's features are one cache entry,
keyed by its checkpoint sha256, the embedder's backbone / weights identity / image size / channel
policy, the sample count, the seeds, the labels and the package version: a changed checkpoint gets
a new key (never a stale hit), a warm cache only loads, and a killed run resumes where it stopped.
The real features are cached under a hash of the image bytes.

Each missing generator is one :func:`embed_generator_task` (a module-level function of one
picklable item) run on an :mod:`ensemble.parallel` backend: by default ``LocalBackend(n_jobs=1)``
in this process, else worker processes or a Dask cluster. It is the one code path: the same
cache keys, the same checks and the same features wherever the tasks run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.data import validate_images, validate_labels
from ensemble.features.cache import FeatureCache, hash_arrays
from ensemble.features.embedder import Embedder, build_embedder, embedder_params
from zoo.seeding import derive_seed

__all__ = ["FeatureSet", "compute_features", "sample_labels", "embed_generator_task"]

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


def _cached_features(store: FeatureCache | None, key: str | None, n: int) -> np.ndarray | None:
    """The cached ``(n, D)`` float32 features under ``key``, or None (absent, or of the wrong shape)."""
    if store is None or key is None:
        return None
    hit = store.get(key)
    if hit is None:
        return None
    if hit.ndim == 2 and len(hit) == n and hit.dtype == np.float32:
        return hit
    log.warning("cache entry %s has shape %s %s, expected (%d, D) float32; recomputing",
                key[:12], hit.shape, hit.dtype, n)
    return None


def embed_generator_task(item: Mapping[str, Any]) -> np.ndarray:
    """Sample one generator and embed the images; store them in the feature cache; return them.

    ``item``: ``catalog`` (a :class:`zoo.catalog.Catalog`, or its folder on another process),
    ``name``, ``sha256`` (the catalog's, checked), ``n_samples``, ``labels``, ``sample_seed``,
    ``image_shape``, ``embedder`` (an :class:`~ensemble.features.embedder.Embedder`, or its
    constructor parameters on another process) and ``in_domain_weights`` (the trained weights
    file for ``weights="in-domain"`` parameters), ``cache_root`` and ``key`` (None: no caching),
    ``meta`` (stored with the entry). A cache hit (e.g. written by an earlier attempt of this
    task) is returned without sampling.
    """
    n = int(item["n_samples"])
    key = item.get("key")
    store = FeatureCache(item["cache_root"]) if key is not None else None
    hit = _cached_features(store, key, n)
    if hit is not None:
        return hit
    catalog = item["catalog"]
    if isinstance(catalog, (str, os.PathLike)):
        from zoo.catalog import Catalog

        catalog = Catalog(catalog, create=False)
    name = item["name"]
    row = catalog.get(name)
    if str(row["sha256"]) != str(item["sha256"]):
        raise ValueError(f"generator {name!r} changed in {str(getattr(catalog, 'zoo_dir', catalog))!r} "
                         "while it was being scored (sha256 differs); run the scoring again")
    embedder = item["embedder"]
    if isinstance(embedder, Mapping):
        embedder = build_embedder(embedder, item.get("in_domain_weights"))
    gen = catalog.load(name, device=getattr(embedder, "device", "auto"))
    shape = tuple(item["image_shape"])
    images = np.asarray(gen.sample(n, labels=np.asarray(item["labels"]), seed=int(item["sample_seed"])))
    del gen
    if images.dtype != np.uint8 or images.shape != (n, *shape):
        raise ValueError(
            f"generator {name!r} returned {images.dtype} {images.shape} for {n} images; expected "
            f"uint8 {(n, *shape)}. Fix its sample() or catalog entry"
        )
    feats = embedder.embed(images, progress=False)
    if store is not None:
        store.put(key, feats, item.get("meta") or {})
    return feats


def _task_embedder(embedder: Any, backend: Any) -> tuple[Any, str | None]:
    """What an item carries for ``embedder``: the object itself when the tasks run in this
    process, else its constructor parameters and in-domain weights file (rebuilt by the task)."""
    if backend.in_process:
        return embedder, None
    if not isinstance(embedder, Embedder):
        raise ValueError(f"backend {backend!r} needs an ensemble.features.Embedder (each task "
                         f"rebuilds it from its parameters), got {type(embedder).__name__}; use the "
                         "default backend to embed in this process")
    return embedder_params(embedder)


def _task_catalog(catalog: Any, backend: Any) -> Any:
    """What an item carries for ``catalog``: the object in this process, else its folder."""
    if backend.in_process:
        return catalog
    zoo_dir = getattr(catalog, "zoo_dir", None)
    if zoo_dir is None:
        raise ValueError(f"backend {backend!r} needs a zoo.catalog.Catalog (tasks load generators "
                         f"from its folder), got {type(catalog).__name__}")
    return str(Path(zoo_dir).resolve())


def compute_features(catalog: Any, real_images: np.ndarray, embedder: Any, *,
                     names: Sequence[str] | None = None, n_samples: int | None = None, seed: int = 0,
                     cache: FeatureCache | str | os.PathLike | bool | None = None,
                     per_class: bool = False, real_labels: np.ndarray | None = None,
                     progress: bool = True, backend: Any = None) -> FeatureSet:
    """Embed ``real_images`` and ``n_samples`` images of every generator (see the module docstring).

    ``catalog``: a :class:`zoo.catalog.Catalog`; ``embedder``: an
    :class:`~ensemble.features.embedder.Embedder` (fitted first for ``weights="in-domain"``);
    ``names``: a subset of the catalog (default all, in catalog order); ``cache``: a FeatureCache
    or folder, None for the default cache, False for none; ``per_class``: balanced generated
    labels (needs ``real_labels``, used for per-class scores). ``backend`` (an
    :mod:`ensemble.parallel` backend or its name; default ``LocalBackend(n_jobs=1)``, in this
    process): every generator missing from the cache is sampled and embedded by one
    :func:`embed_generator_task`. On worker processes or a Dask cluster each task rebuilds the
    embedder from its parameters and loads the generator from the zoo folder, so both folders
    must be reachable from the workers; the features are the same wherever the tasks run.
    """
    from ensemble.parallel import using_backend
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
    base_meta = {**parts, "package_version": __version__}

    real_key = store.key(kind="real", images=hash_arrays(real_images), **parts) if store is not None else None
    real = _cached_features(store, real_key, n_real)
    real_hit = real is not None
    if real is None:
        real = embedder.embed(real_images, progress=None if progress else False)
        if store is not None:
            store.put(real_key, real, {**base_meta, "kind": "real", "n": n_real})
    log.info("real features %s (%s)", real.shape, "cached" if real_hit else "computed")

    with using_backend(backend) as b:
        task_embedder, in_domain_weights = _task_embedder(embedder, b)
        task_catalog = _task_catalog(catalog, b)
        fake: dict[str, np.ndarray | None] = {}
        fake_labels: dict[str, np.ndarray] = {}
        items = []
        for row in rows:
            name = str(row["name"])
            labels = sample_labels(n_samples, int(row["num_classes"]), seed, per_class)
            sample_seed = derive_seed(seed, "sample", name)
            fake_labels[name] = labels
            key = None
            if store is not None:
                key = store.key(kind="fake", name=name, sha256=str(row["sha256"]), n_samples=n_samples,
                                seed=int(seed), sample_seed=sample_seed, labels=hash_arrays(labels),
                                **parts)
            fake[name] = _cached_features(store, key, n_samples)  # None keeps the catalog order
            if fake[name] is not None:
                continue
            meta = {**base_meta, "kind": "fake", "name": name, "sha256": str(row["sha256"]),
                    "n": n_samples, "seed": int(seed), "sample_seed": sample_seed,
                    "per_class": bool(per_class)}
            items.append({"catalog": task_catalog, "name": name, "sha256": str(row["sha256"]),
                          "n_samples": n_samples, "labels": labels, "sample_seed": sample_seed,
                          "image_shape": _shape(row["image_shape"]), "embedder": task_embedder,
                          "in_domain_weights": in_domain_weights,
                          "cache_root": str(store.root.resolve()) if store is not None else None,
                          "key": key, "meta": meta})
        hits = len(rows) - len(items)
        log.info("generator features: %d cached, %d to compute on %r", hits, len(items), b)
        results = b.map(embed_generator_task, items, desc="generator features" if progress else None)
    for item, feats in zip(items, results, strict=True):
        fake[item["name"]] = feats
    for name, feats in fake.items():
        if feats.shape[1] != real.shape[1]:
            raise ValueError(f"generator {name!r} features have {feats.shape[1]} dimensions but the real "
                             f"ones {real.shape[1]}; clear the feature cache ({store}) and run again")
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
        # provenance: what each scored generator was (its file's hash) and which real images
        "sha256": {str(r["name"]): str(r["sha256"]) for r in rows},
        "real_sha256": hash_arrays(real_images),
    }
    return FeatureSet(real=real, real_labels=real_labels, fake=fake, fake_labels=fake_labels, meta=meta)
