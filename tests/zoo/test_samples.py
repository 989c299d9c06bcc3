"""Sample-set members: reading folders and npz files, the content hash, seeded sampling."""

from __future__ import annotations

import logging
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from zoo.catalog import Catalog
from zoo.generator import Generator
from zoo.samples import (
    SampleSetGenerator,
    read_sample_set,
    sample_set_digest,
    sample_set_files,
)


def _image(label: int, index: int, shape=(8, 8)) -> np.ndarray:
    """A unique image: pixel (0, 0) holds the label, pixel (0, 1) the index."""
    img = np.full(shape, 100, np.uint8)
    img[0, 0], img[0, 1] = label, index
    return img


def _studiogan_folder(root, counts=(5, 3), npy=True):
    """Class folders 0/, 1/ as StudioGAN writes them: .npy arrays (CHW) or PNG files."""
    for label, count in enumerate(counts):
        (root / str(label)).mkdir(parents=True)
        for i in range(count):
            img = _image(label, i)
            if npy:
                np.save(root / str(label) / f"{i}.npy", img[None])  # (1, H, W), as torch writes
            else:
                Image.fromarray(img).save(root / str(label) / f"{i}.png")
    return root


def test_folder_of_npy_png_and_imagefolder_names(tmp_path):
    images, labels = read_sample_set(_studiogan_folder(tmp_path / "npy"))
    assert images.shape == (8, 8, 8) and images.dtype == np.uint8
    assert list(labels) == [0] * 5 + [1] * 3
    assert all(img[0, 0] == lab for img, lab in zip(images, labels, strict=True))

    png_images, png_labels = read_sample_set(_studiogan_folder(tmp_path / "png", npy=False))
    np.testing.assert_array_equal(png_images, images)
    np.testing.assert_array_equal(png_labels, labels)

    # An ImageFolder tree: class names sorted and numbered from 0; RGB images stay RGB.
    for name, value in (("pneumonia", 1), ("normal", 0)):
        (tmp_path / "named" / name).mkdir(parents=True)
        Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(tmp_path / "named" / name / "a.png")
    (tmp_path / "named" / "normal" / "notes.txt").write_text("ignored")
    (tmp_path / "named" / "normal" / ".hidden.png").write_bytes(b"ignored")
    assert sample_set_files(tmp_path / "named") == [("normal/a.png", 0), ("pneumonia/a.png", 1)]
    named, named_labels = read_sample_set(tmp_path / "named")
    assert named.shape == (2, 6, 6, 3) and list(named_labels) == [0, 1] and named[1].max() == 1


def test_npz_and_bad_sets(tmp_path):
    imgs = np.stack([_image(i % 2, i) for i in range(6)])
    np.savez(tmp_path / "s.npz", images=imgs, labels=np.arange(6) % 2)
    images, labels = read_sample_set(tmp_path / "s.npz")
    np.testing.assert_array_equal(images, imgs)
    assert list(labels) == [0, 1, 0, 1, 0, 1]

    np.savez(tmp_path / "nolabels.npz", images=imgs)
    with pytest.raises(ValueError, match="lacks \\['labels'\\]"):
        read_sample_set(tmp_path / "nolabels.npz")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class subfolders"):
        read_sample_set(tmp_path / "flat")
    (tmp_path / "floats" / "0").mkdir(parents=True)
    np.save(tmp_path / "floats" / "0" / "a.npy", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="dtype float32; sample images must be uint8"):
        read_sample_set(tmp_path / "floats")
    (tmp_path / "mixed" / "0").mkdir(parents=True)
    np.save(tmp_path / "mixed" / "0" / "a.npy", np.zeros((8, 8), np.uint8))
    np.save(tmp_path / "mixed" / "0" / "b.npy", np.zeros((9, 9), np.uint8))
    with pytest.raises(ValueError, match="mixes image shapes"):
        read_sample_set(tmp_path / "mixed")
    with pytest.raises(FileNotFoundError):
        read_sample_set(tmp_path / "absent")


def test_digest_is_content_and_paths(tmp_path):
    a = _studiogan_folder(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    assert sample_set_digest(a) == sample_set_digest(b)  # same files, another place
    (b / "0" / "notes.txt").write_text("not an image")
    assert sample_set_digest(a) == sample_set_digest(b)  # files that are not read do not count
    (b / "0" / "4.npy").rename(b / "0" / "9.npy")
    assert sample_set_digest(a) != sample_set_digest(b)  # a renamed file
    (b / "0" / "9.npy").rename(b / "0" / "4.npy")
    assert sample_set_digest(a) == sample_set_digest(b)
    np.save(b / "1" / "0.npy", _image(1, 77)[None])
    assert sample_set_digest(a) != sample_set_digest(b)  # changed bytes


def test_sampling_is_seeded_per_class_and_without_replacement(tmp_path, caplog):
    gen = SampleSetGenerator.from_path(_studiogan_folder(tmp_path / "s"))
    assert isinstance(gen, Generator)
    assert gen.num_classes == 2 and gen.image_shape == (8, 8) and gen.class_counts == [5, 3]
    labels = [0, 1, 0, 0, 1, 0, 1, 0]
    x = gen.sample(8, labels=labels, seed=3)
    assert x.dtype == np.uint8 and x.shape == (8, 8, 8)
    assert list(x[:, 0, 0]) == labels  # every image is of the asked class
    for c, count in ((0, 5), (1, 3)):  # all stored images of each class, each once
        assert sorted(x[x[:, 0, 0] == c, 0, 1]) == list(range(count))
    np.testing.assert_array_equal(gen.sample(8, labels=labels, seed=3), x)
    assert any(not np.array_equal(gen.sample(8, labels=labels, seed=s), x) for s in range(4, 10))

    y = gen.sample(4, seed=1)  # labels drawn as every generator draws them
    from zoo.generator import resolve_labels

    assert list(y[:, 0, 0]) == list(resolve_labels(4, None, 2, 1))

    with pytest.raises(ValueError, match="4 images of class 1 asked for, but the set holds only 3"):
        gen.sample(4, labels=[1, 1, 1, 1])
    assert SampleSetGenerator(gen.images, gen.labels, num_classes=3).class_counts == [5, 3, 0]
    with pytest.raises(ValueError, match="holds only 0 of that class"):
        SampleSetGenerator(gen.images, gen.labels, num_classes=3).sample(1, labels=[2])

    with_replacement = SampleSetGenerator(gen.images, gen.labels, replace=True)
    with caplog.at_level(logging.WARNING, logger="zoo.samples"):
        z = with_replacement.sample(7, labels=[1] * 7, seed=0)
    assert "drawing with replacement" in caplog.text
    assert set(z[:, 0, 1]) <= {0, 1, 2} and list(z[:, 0, 0]) == [1] * 7
    np.testing.assert_array_equal(with_replacement.sample(7, labels=[1] * 7, seed=0), z)


def test_catalog_register_load_and_verify(tmp_path):
    zoo_dir = tmp_path / "zoo"
    folder = _studiogan_folder(zoo_dir / "samples" / "biggan-200")
    imgs = np.stack([_image(i % 2, i) for i in range(6)])
    np.savez(tmp_path / "diffusion.npz", images=imgs, labels=np.arange(6) % 2)
    cat = Catalog(zoo_dir)
    a = cat.register_samples(folder, name="biggan@200", run="biggan", iteration=200, dataset="toy")
    b = cat.register_samples(tmp_path / "diffusion.npz", name="ddpm", num_classes=2, replace=True)
    row = cat.get(a)
    assert (row["kind"], row["run"], row["iteration"], row["path"]) == ("samples", "biggan", 200,
                                                                       "samples/biggan-200")
    assert row["sha256"] == sample_set_digest(folder) and row["config"]["class_counts"] == [5, 3]
    assert cat.get(b)["config"]["replace"] is True and cat.get(b)["run"] == "ddpm"
    gen = cat.load("biggan@200")
    np.testing.assert_array_equal(gen.sample(6, seed=2), SampleSetGenerator.from_path(folder).sample(6, seed=2))
    assert cat.load("ddpm").sample(9, labels=[0] * 9).shape == (9, 8, 8)  # replace=True recorded

    np.save(folder / "0" / "0.npy", _image(0, 50)[None])
    with pytest.raises(ValueError, match="sample set .* has sha256 .* changed since it was registered"):
        cat.load("biggan@200")
    with pytest.raises(ValueError, match="already in the catalog"):
        cat.register_samples(tmp_path / "diffusion.npz", name="ddpm")
    cat.remove("biggan@200", delete_file=True)
    assert not folder.exists()


def test_version_1_catalog_is_upgraded_for_samples(tmp_path):
    """A catalog made before sample sets (kind check without 'samples') takes them, ids continue."""
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    con = sqlite3.connect(zoo_dir / "catalog.sqlite")
    con.executescript("""
        CREATE TABLE generators (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, run TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('native', 'torchscript', 'callable')),
            architecture TEXT NOT NULL, config TEXT NOT NULL, dataset TEXT NOT NULL,
            image_shape TEXT NOT NULL, num_classes INTEGER NOT NULL, iteration INTEGER NOT NULL,
            path TEXT NOT NULL, sha256 TEXT NOT NULL, created TEXT NOT NULL);
        CREATE INDEX generators_run ON generators (run);
        INSERT INTO generators VALUES (1, 'a', 'r', 'callable', 'callable', '{}', 'toy', '[8, 8]', 2,
                                       0, 'm:f', 'x', 'now');
        INSERT INTO generators VALUES (2, 'b', 'r', 'callable', 'callable', '{}', 'toy', '[8, 8]', 2,
                                       0, 'm:f', 'y', 'now');
        DELETE FROM generators WHERE id = 2;
        PRAGMA user_version = 1;
    """)
    con.commit()
    con.close()
    cat = Catalog(zoo_dir)
    new = cat.register_samples(_studiogan_folder(tmp_path / "s"), name="s")
    assert new == 3  # the id sequence survived the rebuild: id 2 is not reused
    assert cat.names() == ["a", "s"] and cat.get("a")["sha256"] == "x"
    with sqlite3.connect(zoo_dir / "catalog.sqlite") as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 2
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "generators_run" in indexes
    with pytest.raises(sqlite3.IntegrityError):  # the kind check is still enforced
        with sqlite3.connect(zoo_dir / "catalog.sqlite") as con:
            con.execute("UPDATE generators SET kind = 'other' WHERE name = 'a'")
