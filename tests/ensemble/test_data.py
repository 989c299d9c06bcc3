"""Real-data loading: MedMNIST npz, ImageFolder trees, arrays, and the errors a user can fix."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ensemble.data import (
    Dataset,
    from_arrays,
    list_medmnist_flags,
    load_dataset,
    load_image_folder,
    load_medmnist,
)


def test_pneumoniamnist_splits_match_the_official_sizes(data_root):
    sizes = {}
    for split in ("train", "val", "test"):
        ds = load_medmnist("pneumoniamnist", split=split, root=data_root, download=False)
        assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (28, 28)
        assert ds.labels.dtype == np.int64 and ds.labels.shape == (len(ds),)
        sizes[split] = (len(ds), np.bincount(ds.labels).tolist())
        assert ds.class_names == ["normal", "pneumonia"]
    assert sizes == {"train": (4708, [1214, 3494]), "val": (524, [135, 389]), "test": (624, [234, 390])}


def test_data_root_from_environment(data_root, monkeypatch):
    monkeypatch.setenv("GAN_ENSEMBLE_DATA", str(data_root))
    assert len(load_dataset("pneumoniamnist", split="val")) == 524


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pneumoniamnist\.npz.*GAN_ENSEMBLE_DATA"):
        load_medmnist("pneumoniamnist", root=tmp_path, download=False)


def test_unknown_flag_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown MedMNIST dataset flag 'pneumonia'.*breastmnist"):
        load_medmnist("pneumonia", root=tmp_path)
    assert "pneumoniamnist" in list_medmnist_flags() and "chestmnist" not in list_medmnist_flags()


def test_unknown_split(data_root):
    with pytest.raises(ValueError, match="unknown split 'training'"):
        load_medmnist("pneumoniamnist", split="training", root=data_root)


def test_npz_path_in_medmnist_layout(data_root):
    ds = load_dataset(data_root / "pneumoniamnist.npz", split="test")
    assert len(ds) == 624 and ds.name == "pneumoniamnist" and ds.class_names[1] == "pneumonia"


def test_image_folder_round_trip(tmp_path, pneumonia_small):
    for c, name in enumerate(["normal", "pneumonia"]):
        (tmp_path / name).mkdir()
        for i, img in enumerate(pneumonia_small.images[pneumonia_small.labels == c][:5]):
            Image.fromarray(img).save(tmp_path / name / f"{i}.png")
    ds = load_image_folder(tmp_path)
    assert ds.class_names == ["normal", "pneumonia"]
    assert ds.images.shape == (10, 28, 28) and np.bincount(ds.labels).tolist() == [5, 5]
    assert np.array_equal(ds.images[:5], pneumonia_small.images[pneumonia_small.labels == 0][:5])


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path)


def test_arrays_are_validated():
    imgs = np.zeros((4, 28, 28), np.uint8)
    ds = from_arrays(imgs, np.array([[0], [1], [1], [0]]))
    assert ds.labels.tolist() == [0, 1, 1, 0] and ds.num_classes == 2
    with pytest.raises(ValueError, match="uint8"):
        from_arrays(imgs.astype(np.float32), [0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"shape \(N, H, W\)"):
        from_arrays(np.zeros((4, 28), np.uint8), [0, 1, 1, 0])
    with pytest.raises(ValueError, match="out of range: found 2"):
        Dataset(imgs, np.array([0, 1, 2, 0]), ["a", "b"], "x")
    with pytest.raises(ValueError, match="3 entries but there are 4 images"):
        Dataset(imgs, np.array([0, 1, 0]), ["a", "b"], "x")
    with pytest.raises(ValueError, match="must be integers"):
        from_arrays(imgs, np.array([0.5, 1, 1, 0]))


def test_subset_is_stratified_shuffled_and_seeded(pneumonia):
    a = pneumonia.subset(500, seed=1)
    b = pneumonia.subset(500, seed=1)
    assert np.array_equal(a.images, b.images)
    counts = np.bincount(a.labels)
    assert counts.sum() == 500 and abs(counts[0] / 500 - 1214 / 4708) < 0.01
    assert not np.array_equal(a.labels, np.sort(a.labels))  # the sorted source got shuffled
