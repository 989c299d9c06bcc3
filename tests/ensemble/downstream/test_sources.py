"""Training sources: epoch draws, the shapes users pass, the per-generator sample store."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.downstream.sources import (
    SampleStore,
    TrainingSource,
    as_arrays,
    as_source,
    epoch_indices,
    real_splits,
    resize_images,
    slug,
)


def test_member_sampler_is_uniform_over_members():
    groups = np.r_[np.zeros(1000, int), np.ones(10, int), np.full(90, 2)]
    idx = epoch_indices(len(groups), np.random.default_rng(0), size=30_000, sampler="member",
                        groups=groups)
    share = np.bincount(groups[idx], minlength=3) / len(idx)
    np.testing.assert_allclose(share, 1 / 3, atol=0.015)
    # every image of the small member is reachable
    assert set(idx[groups[idx] == 1]) == set(range(1000, 1010))
    perm = epoch_indices(7, np.random.default_rng(0), size=10, sampler="shuffle")
    assert len(perm) == 10 and set(perm[:7]) == set(range(7))
    with pytest.raises(ValueError, match="unknown sampler"):
        epoch_indices(5, np.random.default_rng(0), sampler="nope")
    with pytest.raises(ValueError, match="needs groups"):
        epoch_indices(5, np.random.default_rng(0), sampler="member")



def test_as_source_and_as_arrays_accept_what_users_pass(pneumonia_small):
    src = as_source(pneumonia_small)
    assert isinstance(src, TrainingSource) and len(src) == len(pneumonia_small)
    assert as_source(src) is src
    pair = as_source((pneumonia_small.images[:10], pneumonia_small.labels[:10]))
    assert len(pair) == 10 and pair.groups is None
    x, y = as_arrays(pneumonia_small, "val_set")
    assert x is pneumonia_small.images and y.ndim == 1
    with pytest.raises(ValueError, match="TrainingSource"):
        as_source(3)
    with pytest.raises(ValueError, match="test_set must be"):
        as_arrays([1, 2, 3], "test_set")
    with pytest.raises(ValueError, match="groups has"):
        TrainingSource(pneumonia_small.images[:4], pneumonia_small.labels[:4], groups=[0, 1])


def test_resize_images_keeps_channels_and_skips_same_size():
    imgs = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    assert resize_images(imgs, 28) is imgs
    assert resize_images(imgs, 32).shape == (3, 32, 32)
    rgb = np.zeros((2, 28, 28, 3), np.uint8)
    assert resize_images(rgb, (32, 30)).shape == (2, 32, 30, 3)


def test_sample_store_samples_once_and_builds_member_sources(tmp_path, toy_catalog):
    store = SampleStore(tmp_path / "samples")
    names = ["toy0@0", "toy1@0"]
    assert store.ensure(toy_catalog, names, n_per_class=5, seed=3, device="cpu") == 2
    assert store.ensure(toy_catalog, names, n_per_class=5, seed=3, device="cpu") == 0  # current
    assert store.ensure(toy_catalog, names, n_per_class=5, seed=4, device="cpu") == 2  # new key
    assert store.path("toy0@0").name == "toy0_0.npz" and slug("a b/c@1") == "a_b_c_1"
    x0, y0 = store.load("toy0@0")
    assert x0.shape == (10, 28, 28) and np.bincount(y0).tolist() == [5, 5]
    src = store.source(names, samples_per_epoch=7, name="G*")
    assert src.sampler == "member" and src.samples_per_epoch == 7 and src.meta["members"] == names
    assert np.bincount(src.groups).tolist() == [10, 10]
    np.testing.assert_array_equal(src.images[src.groups == 0], x0)
    with pytest.raises(FileNotFoundError, match="ensure"):
        store.load("toy3@0")


def test_real_splits_infer_the_dataset_and_match_the_generator_size(toy_catalog, data_root):
    splits, dataset, resized = real_splits(toy_catalog, ["toy0@0"], root=data_root,
                                           splits=("val",))
    assert dataset == "pneumoniamnist" and not resized and splits["val"].image_shape[:2] == (28, 28)
    toy_catalog.register_callable("_synth_toys:make_toy", name="big@0", num_classes=2,
                                  image_shape=(32, 32), dataset="unknown", size=32)
    with pytest.raises(ValueError, match="which real dataset"):
        real_splits(toy_catalog, ["big@0"], root=data_root, splits=("val",))
    splits, _, resized = real_splits(toy_catalog, ["big@0"], dataset="pneumoniamnist", root=data_root,
                                     splits=("val",))
    assert resized and splits["val"].images.shape[1:] == (32, 32)
