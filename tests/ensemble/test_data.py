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


# --------------------------------------------------------------------------- data that cannot give a fair test


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _split_arrays(labels, split="train", n_other=4):
    """MedMNIST-layout arrays: ``labels`` for ``split``, two-class filler for the other splits."""
    out = {}
    for s in ("train", "val", "test"):
        lab = np.asarray(labels) if s == split else np.arange(n_other) % 2
        out[f"{s}_images"] = np.zeros((len(lab), 28, 28), np.uint8)
        out[f"{s}_labels"] = lab.reshape(-1, 1)
    return out


def test_labels_with_gaps_negative_single_class_and_empty_splits_are_refused(tmp_path):
    imgs = np.zeros((4, 28, 28), np.uint8)
    with pytest.raises(ValueError, match=r"gaps.*found 0, 2 of 0..2.*relabel"):
        from_arrays(imgs, [0, 2, 2, 0])
    with pytest.raises(ValueError, match=r"found -1.*cannot be negative"):
        from_arrays(imgs, [0, -1, 1, 0])
    with pytest.raises(ValueError, match=r"single class \('1', label 1\).*at least two classes"):
        from_arrays(imgs, [1, 1, 1, 1], class_names=["0", "1"])
    with pytest.raises(ValueError, match="single class"):
        from_arrays(imgs, [0, 0, 0, 0])
    gaps = _npz(tmp_path / "gaps.npz", **_split_arrays([0, 2, 2, 0]))
    with pytest.raises(ValueError, match=r"train split of gaps .*gaps\.npz\).*no images of class '1'"):
        load_dataset(gaps)
    empty = _npz(tmp_path / "empty.npz", **_split_arrays([], split="val"))
    assert len(load_dataset(empty, split="train")) == 4
    with pytest.raises(ValueError, match=r"the val split of empty .*empty\.npz\) is empty"):
        load_dataset(empty, split="val")
    one = _npz(tmp_path / "one.npz", **_split_arrays([1, 1, 1], split="test"))
    with pytest.raises(ValueError, match="test split of one .* single class"):
        load_dataset(one, split="test")


def test_a_real_split_missing_a_class_is_refused(tmp_path, data_root):
    with np.load(data_root / "pneumoniamnist.npz") as z:
        arrays = {k: z[k] for k in z.files}
    keep = arrays["val_labels"][:, 0] == 1
    arrays["val_images"], arrays["val_labels"] = arrays["val_images"][keep], arrays["val_labels"][keep]
    path = _npz(tmp_path / "pneumoniamnist.npz", **arrays)
    assert len(load_dataset(path, split="train")) == 4708
    with pytest.raises(ValueError, match=r"val split of pneumoniamnist .* single class \('pneumonia'"):
        load_dataset(path, split="val")


def test_an_npz_that_is_not_one_says_so_and_never_suggests_unsafe_loading(tmp_path):
    import pickle

    text = tmp_path / "notes.npz"
    text.write_text("not an archive\n")
    pick = tmp_path / "pickled.npz"
    pick.write_bytes(pickle.dumps({"train_images": [1, 2]}))
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    good = _npz(tmp_path / "good.npz", **_split_arrays([0, 1, 0, 1]))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    objects = tmp_path / "objects.npz"
    arrays = _split_arrays([0, 1, 0, 1])
    arrays["train_labels"] = np.array([0, 1, 0, 1], dtype=object)
    np.savez(objects, **arrays)
    for path in (text, pick, npy, truncated):
        with pytest.raises(ValueError, match=r"is not an \.npz archive \(not a zip file") as info:
            load_dataset(path)
        assert str(path) in str(info.value) and "allow_pickle" not in str(info.value)
    with pytest.raises(ValueError, match=r"objects\.npz' holds an array of Python objects, which is never"):
        load_dataset(objects)
    with pytest.raises(ValueError, match=r"has no array\(s\) 'val_images', 'val_labels' \(it holds: t"):
        load_dataset(_npz(tmp_path / "trainonly.npz", train_images=np.zeros((2, 28, 28), np.uint8),
                          train_labels=np.array([0, 1])), split="val")


def test_missing_files_say_not_found_and_unknown_names_say_what_was_tried(tmp_path):
    for source in (tmp_path / "missing.npz", "data/pneumo.npz", str(tmp_path / "no_folder")):
        with pytest.raises(FileNotFoundError, match="not found: no such file or folder") as info:
            load_dataset(source)
        assert "unknown" not in str(info.value)
    with pytest.raises(ValueError, match="'pneumonia' is neither a file or folder nor a known "
                                         "MedMNIST flag.*pneumoniamnist"):
        load_dataset("pneumonia")
    (tmp_path / "labels.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="is a file but not an .npz"):
        load_dataset(tmp_path / "labels.csv")


@pytest.mark.parametrize("flag, why", [("chestmnist", "multi-label"),
                                       ("organmnist3d", "3-D volumes"),
                                       ("retinamnist", "ordinal grades")])
def test_unsupported_medmnist_flags_say_why(flag, why, tmp_path):
    for load in (lambda: load_medmnist(flag, root=tmp_path, download=False),
                 lambda: load_dataset(flag, root=tmp_path)):
        with pytest.raises(ValueError, match=f"{flag}' is not supported: .*{why}") as info:
            load()
        assert "unknown" not in str(info.value)
    assert flag not in list_medmnist_flags()


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_unreadable_image_is_named(tmp_path):
    for c in ("a", "b"):
        _write_png(tmp_path / c / "0.png", np.full((8, 8), 10, np.uint8))
    bad = tmp_path / "b" / "1.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"cannot read image .*b/1\.png.*replace or delete"):
        load_image_folder(tmp_path)


def test_grayscale_mixed_with_colour_says_so(tmp_path):
    _write_png(tmp_path / "a" / "0.png", np.full((8, 8), 10, np.uint8))
    _write_png(tmp_path / "b" / "0.png", np.full((8, 8, 3), 200, np.uint8))
    with pytest.raises(ValueError, match=r"mix grayscale \(1, e\.g\. .*a/0\.png'\) and colour "
                                         r"\(1, e\.g\. .*b/0\.png'\)") as info:
        load_image_folder(tmp_path)
    assert "resize" not in str(info.value)
    gray = load_image_folder(tmp_path, grayscale=True)
    assert gray.images.shape == (2, 8, 8) and gray.images[1, 0, 0] == 200
    colour = load_image_folder(tmp_path, grayscale=False)
    assert colour.images.shape == (2, 8, 8, 3) and colour.images[0, 0, 0].tolist() == [10, 10, 10]
    _write_png(tmp_path / "a" / "1.png", np.full((9, 9), 10, np.uint8))
    with pytest.raises(ValueError, match=r"different sizes \[\(8, 8\), \(9, 9\)\]"):
        load_image_folder(tmp_path, grayscale=True)


def _flat_tree(root, pneumonia_small, per_class=(20, 30)):
    for c, (name, n) in enumerate(zip(["normal", "pneumonia"], per_class, strict=True)):
        for i, img in enumerate(pneumonia_small.images[pneumonia_small.labels == c][:n]):
            _write_png(root / name / f"{i:03d}.png", img)


def test_image_folder_without_split_folders_gets_a_seeded_stratified_split(tmp_path, pneumonia_small):
    from ensemble.data import SPLIT_FRACTIONS, split_indices
    from ensemble.seeds import split_seed

    _flat_tree(tmp_path, pneumonia_small)
    parts = {s: load_dataset(tmp_path, split=s) for s in ("train", "val", "test")}
    whole = load_image_folder(tmp_path)
    assert {s: np.bincount(d.labels).tolist() for s, d in parts.items()} == {
        "train": [14, 21], "val": [2, 3], "test": [4, 6]}
    # disjoint and covering: every image of the tree lands in exactly one split
    keys = {s: {d.images[i].tobytes() for i in range(len(d))} for s, d in parts.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert len(keys["train"] | keys["val"] | keys["test"]) == len({im.tobytes() for im in whole.images}) == 50
    made = parts["val"].meta["split_made"]
    assert made["seed"] == 0 and made["split_seed"] == split_seed(0, "train-val-test")
    assert made["counts"] == {"train": 35, "val": 5, "test": 10} and made["fractions"] == SPLIT_FRACTIONS
    # seeded: the same seed gives the same split, another seed another one
    again = load_dataset(tmp_path, split="val")
    assert np.array_equal(again.images, parts["val"].images)
    other = load_dataset(tmp_path, split="val", seed=1)
    assert not np.array_equal(other.images, parts["val"].images)
    idx = split_indices(whole.labels, seed=0)["val"]
    assert np.array_equal(whole.images[idx], parts["val"].images)
    with pytest.raises(ValueError, match="no train/, val/ and test/ folders, and a held-out val split is required"):
        load_dataset(tmp_path, split="val", make_split=False)


def test_image_folder_split_folders_are_used_and_a_missing_one_is_named(tmp_path, pneumonia_small):
    _flat_tree(tmp_path / "train", pneumonia_small, per_class=(3, 3))
    _flat_tree(tmp_path / "test", pneumonia_small, per_class=(2, 2))
    ds = load_dataset(tmp_path, split="test")
    assert len(ds) == 4 and "split_made" not in ds.meta
    with pytest.raises(FileNotFoundError, match=r"has train/, test/ but no val/ folder"):
        load_dataset(tmp_path, split="val")
    tiny = tmp_path / "tiny"
    _flat_tree(tiny, pneumonia_small, per_class=(3, 30))
    with pytest.raises(ValueError, match="label 0 has only 3 images, too few for a 0.7/0.1/0.2"):
        load_dataset(tiny, split="train")


# --------------------------------------------------------------------------- 64-px MedMNIST+ data


def test_64px_medmnist_plus_file_is_read(tmp_path, data_root):
    """Only the 28-px file exists offline: this test makes ``pneumoniamnist_64.npz`` by resizing it
    (bilinear, PIL), so the loader's real MedMNIST+ path (``{flag}_64.npz``) is what is tested."""
    with np.load(data_root / "pneumoniamnist.npz") as z:
        arrays = {k: z[k] for k in z.files}
    resized = {}
    for k, v in arrays.items():
        if k.endswith("_images"):
            v = np.stack([np.asarray(Image.fromarray(im).resize((64, 64), Image.BILINEAR)) for im in v])
        resized[k] = v
    np.savez(tmp_path / "pneumoniamnist_64.npz", **resized)
    for ds in (load_medmnist("pneumoniamnist", split="val", root=tmp_path, size=64, download=False),
               load_dataset("pneumoniamnist", split="val", root=tmp_path, size=64)):
        assert ds.images.shape == (524, 64, 64) and ds.meta["size"] == 64
        assert np.array_equal(ds.labels, arrays["val_labels"][:, 0])
        assert ds.class_names == ["normal", "pneumonia"]
    assert load_dataset(tmp_path / "pneumoniamnist_64.npz", split="test", size=64).images.shape == (624, 64, 64)
    with pytest.raises(FileNotFoundError, match=r"'pneumoniamnist_128\.npz' not found"):
        load_medmnist("pneumoniamnist", root=tmp_path, size=128, download=False)
    with pytest.raises(ValueError, match="size must be one of 28, 64, 128, 224"):
        load_medmnist("pneumoniamnist", root=tmp_path, size=50, download=False)
    (tmp_path / "pneumoniamnist_224.npz").write_bytes((data_root / "pneumoniamnist.npz").read_bytes())
    with pytest.raises(ValueError, match=r"holds 28x28 images, but size=224 asks for 224x224"):
        load_medmnist("pneumoniamnist", root=tmp_path, size=224, download=False)
    with pytest.raises(ValueError, match=r"holds 28x28 images, not 64x64"):
        load_dataset(data_root / "pneumoniamnist.npz", size=64)
