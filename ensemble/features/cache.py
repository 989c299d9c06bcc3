"""A content-keyed cache of feature arrays (and the in-domain backbones behind them).

Embedding thousands of images per generator is the slow part of scoring, so every feature array is
stored under a key that is the sha256 of everything it depends on (checkpoint hash, backbone,
weights identity, image size, channel policy, sample count, seed, package version). A changed
input therefore changes the key and is never served stale, and a killed run resumes from the
entries already written. Entries are ``<key>.npy`` (read with ``allow_pickle=False``) plus a
``<key>.json`` of metadata, each written atomically; the ``.npy`` is written last, so its presence
means the entry is complete.

Location: the ``root`` argument, else ``$GAN_ENSEMBLE_CACHE``, else the user cache directory
(``platformdirs.user_cache_dir("gan-ensemble")``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from zoo.io import atomic_write

__all__ = ["FeatureCache", "CACHE_ENV", "default_cache_root", "hash_arrays", "canonical_json"]

log = logging.getLogger(__name__)

CACHE_ENV = "GAN_ENSEMBLE_CACHE"
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SUBDIRS = ("features", "models")


def default_cache_root() -> Path:
    """``$GAN_ENSEMBLE_CACHE`` if set, else the user cache dir / ``gan-ensemble``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("gan-ensemble", appauthor=False))


def _jsonable(value: Any) -> Any:
    """Plain JSON types for a key part (numpy scalars, tuples and paths included)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(
        f"cache key part {value!r} of type {type(value).__name__} is not JSON-able; "
        "pass strings, numbers, booleans, lists or dicts"
    )


def canonical_json(parts: Mapping[str, Any]) -> str:
    """Sorted, compact JSON of ``parts``: equal parts give equal text on every platform."""
    return json.dumps(_jsonable(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def hash_arrays(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' dtypes, shapes and bytes (a content hash of image/label data)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class FeatureCache:
    """Feature arrays on disk, keyed by a hash of what they were computed from."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"cache root {str(self.root)!r} is a file; pass a folder (or set ${CACHE_ENV})")

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def models_dir(self) -> Path:
        """Where trained backbones (in-domain weights) are kept."""
        return self.root / "models"

    @staticmethod
    def key(**parts: Any) -> str:
        """sha256 hex of the canonical JSON of ``parts`` plus the package version."""
        from ensemble.version import __version__

        if "package_version" in parts:
            raise ValueError("'package_version' is added to every cache key; do not pass it")
        text = canonical_json({**parts, "package_version": __version__})
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"bad cache key {key!r}; make keys with FeatureCache.key(**parts)")
        return self.features_dir / f"{key}.npy", self.features_dir / f"{key}.json"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(_KEY_RE.match(key)) and self._paths(key)[0].is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The stored array, or None when absent (an unreadable entry is dropped and counts as absent)."""
        npy, meta = self._paths(key)
        if not npy.is_file():
            return None
        try:
            return np.load(npy, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            log.warning("cache entry %s is unreadable (%s); dropping it", npy, exc)
            npy.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None

    def meta(self, key: str) -> dict | None:
        """The metadata stored with an entry (None when absent or unreadable)."""
        _, meta = self._paths(key)
        try:
            return json.loads(meta.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, array: np.ndarray, meta: Mapping[str, Any] | None = None) -> Path:
        """Store ``array`` (numeric, no objects) under ``key``; return the ``.npy`` path."""
        npy, meta_path = self._paths(key)
        arr = np.asarray(array)
        if arr.dtype.hasobject:
            raise ValueError("the feature cache stores numeric arrays only, got an object array")
        record = {
            "key": key,
            "shape": list(arr.shape),
            "dtype": arr.dtype.str,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **_jsonable(dict(meta or {})),
        }
        atomic_write(meta_path, lambda p: p.write_text(json.dumps(record, indent=1, sort_keys=True)))

        def write_npy(p: Path) -> None:
            with open(p, "wb") as f:  # a file object: np.save would append ".npy" to a path
                np.save(f, arr, allow_pickle=False)

        atomic_write(npy, write_npy)
        log.debug("cached %s %s under %s", arr.dtype, arr.shape, key[:12])
        return npy

    def delete(self, key: str) -> bool:
        """Remove one entry; True when there was one."""
        npy, meta = self._paths(key)
        existed = npy.is_file()
        npy.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        return existed

    def keys(self) -> list[str]:
        """Keys of the complete entries."""
        if not self.features_dir.is_dir():
            return []
        return sorted(p.stem for p in self.features_dir.glob("*.npy") if _KEY_RE.match(p.stem))

    def __len__(self) -> int:
        return len(self.keys())

    def __bool__(self) -> bool:  # an empty cache is still a cache (``if cache:`` must not skip it)
        return True

    def clear(self) -> None:
        """Remove every cached feature array and trained backbone (only this cache's own folders)."""
        for sub in _SUBDIRS:
            shutil.rmtree(self.root / sub, ignore_errors=True)
        log.info("cleared feature cache %s", self.root)
