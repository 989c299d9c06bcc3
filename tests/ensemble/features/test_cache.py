"""FeatureCache: content keys, atomic entries, invalidation, location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ensemble.version
from ensemble.features.cache import (
    CACHE_ENV,
    FeatureCache,
    canonical_json,
    default_cache_root,
    hash_arrays,
)


def test_key_is_canonical_and_content_sensitive():
    a = FeatureCache.key(backbone="resnet18", weights="random:seed0", image_size=32, extra={"b": 1, "a": 2})
    b = FeatureCache.key(extra={"a": 2, "b": 1}, image_size=32, weights="random:seed0", backbone="resnet18")
    assert a == b and len(a) == 64 and int(a, 16) >= 0
    assert a != FeatureCache.key(backbone="resnet18", weights="random:seed1", image_size=32, extra={"b": 1, "a": 2})
    assert a != FeatureCache.key(backbone="resnet18", weights="random:seed0", image_size=64, extra={"b": 1, "a": 2})
    # numpy scalars and tuples give the same key as their plain equivalents
    assert FeatureCache.key(n=np.int64(5), shape=(2, 3)) == FeatureCache.key(n=5, shape=[2, 3])
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_key_includes_package_version(monkeypatch):
    before = FeatureCache.key(backbone="resnet18")
    monkeypatch.setattr(ensemble.version, "__version__", "999.0.0")
    assert FeatureCache.key(backbone="resnet18") != before
    with pytest.raises(ValueError, match="package_version"):
        FeatureCache.key(package_version="1")
    with pytest.raises(ValueError, match="JSON"):
        FeatureCache.key(thing=object())


def test_put_get_roundtrip_and_meta(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    key = cache.key(kind="test", i=1)
    assert key not in cache and cache.get(key) is None and len(cache) == 0
    assert bool(cache), "an empty cache must not be falsy"
    arr = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    path = cache.put(key, arr, meta={"name": "g@1", "n": np.int64(7)})
    assert path.suffix == ".npy" and key in cache and cache.keys() == [key]
    got = cache.get(key)
    assert got.dtype == np.float32 and np.array_equal(got, arr)
    meta = cache.meta(key)
    assert meta["name"] == "g@1" and meta["n"] == 7 and meta["shape"] == [7, 5]
    # nothing temporary left behind
    assert sorted(p.name for p in cache.features_dir.iterdir()) == [f"{key}.json", f"{key}.npy"]
    # overwrite replaces
    cache.put(key, arr * 2)
    assert np.array_equal(cache.get(key), arr * 2)


def test_unreadable_entry_is_a_miss_and_dropped(tmp_path):
    cache = FeatureCache(tmp_path)
    key = cache.key(kind="corrupt")
    cache.put(key, np.ones((3, 2), np.float32))
    (cache.features_dir / f"{key}.npy").write_bytes(b"not an npy file")
    assert cache.get(key) is None
    assert key not in cache


def test_pickled_arrays_are_refused(tmp_path):
    cache = FeatureCache(tmp_path)
    with pytest.raises(ValueError, match="numeric"):
        cache.put(cache.key(kind="obj"), np.array([{"a": 1}], dtype=object))
    # an object .npy placed by hand is never unpickled
    key = cache.key(kind="planted")
    cache.features_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache.features_dir / f"{key}.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert cache.get(key) is None


def test_bad_keys_rejected(tmp_path):
    cache = FeatureCache(tmp_path)
    for bad in ("../escape", "", "a/b", "x" * 200):
        with pytest.raises(ValueError, match="cache key"):
            cache.get(bad)
        assert bad not in cache


def test_clear_removes_entries_but_not_foreign_files(tmp_path):
    cache = FeatureCache(tmp_path)
    for i in range(3):
        cache.put(cache.key(i=i), np.zeros((2, 2), np.float32))
    cache.models_dir.mkdir(parents=True)
    (cache.models_dir / "m.safetensors").write_bytes(b"x")
    (tmp_path / "users_file.txt").write_text("keep me")
    assert len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and not cache.models_dir.exists()
    assert (tmp_path / "users_file.txt").read_text() == "keep me"
    assert cache.delete(cache.key(i=0)) is False


def test_root_from_env_then_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "envcache"))
    assert FeatureCache().root == tmp_path / "envcache"
    assert FeatureCache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv(CACHE_ENV)
    root = default_cache_root()
    assert root.name == "gan-ensemble" and isinstance(root, Path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        FeatureCache(tmp_path / "file")


def test_hash_arrays_sees_bytes_shape_and_dtype():
    a = np.arange(12, dtype=np.uint8)
    h = hash_arrays(a)
    assert h == hash_arrays(a.copy())
    assert h != hash_arrays(a.reshape(3, 4))
    assert h != hash_arrays(a.astype(np.int64))
    b = a.copy()
    b[5] += 1
    assert h != hash_arrays(b)
    assert hash_arrays(a, b) != hash_arrays(b, a)
    # non-contiguous views hash like their contiguous copies
    m = np.arange(20, dtype=np.uint8).reshape(4, 5)
    assert hash_arrays(m[:, ::2]) == hash_arrays(np.ascontiguousarray(m[:, ::2]))
