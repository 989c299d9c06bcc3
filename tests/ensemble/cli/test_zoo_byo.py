"""``gan-ensemble zoo``: bring your own zoo (sample sets, --run/--iteration, bulk import), through
the real top-level parser."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest

from ensemble.cli import main
from zoo.catalog import MANIFEST_COLUMNS, Catalog

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices


@pytest.fixture
def held(tmp_path, torchscript_generator):
    """A researcher's files: a StudioGAN-style sample folder, an npz sample set, a TorchScript file."""
    root = tmp_path / "held"
    for label, count in ((0, 3), (1, 2)):
        (root / "biggan" / str(label)).mkdir(parents=True)
        for i in range(count):
            np.save(root / "biggan" / str(label) / f"{i}.npy", np.full((12, 12), 40 * label + i, np.uint8))
    rng = np.random.default_rng(0)
    np.savez(root / "ddpm.npz", images=rng.integers(0, 256, (8, 12, 12), dtype=np.uint8),
             labels=np.arange(8) % 2)
    torchscript_generator(root / "g.pt")
    return root


def test_register_samples_with_run_and_iteration(held, tmp_path, capsys, caplog):
    zoo_dir = tmp_path / "zoo"
    assert main(["zoo", "register-samples", str(zoo_dir), str(held / "biggan"), "--name", "biggan@9000",
                 "--run", "biggan", "--iteration", "9000", "--dataset", "toy"]) == 0
    assert "registered biggan@9000 (id 1, 5 images, per class [3, 2])" in capsys.readouterr().out
    assert main(["zoo", "register-samples", str(zoo_dir), str(held / "ddpm.npz"), "--name", "ddpm",
                 "--with-replacement"]) == 0
    assert main(["zoo", "register-torchscript", str(zoo_dir), str(held / "g.pt"), "--name", "ts@7",
                 "--run", "ts", "--iteration", "7", "--latent-dim", "4", "--num-classes", "2",
                 "--image-shape", "12x12"]) == 0
    cat = Catalog(zoo_dir)
    assert [(r["run"], r["iteration"]) for _, r in cat.list().iterrows()] == [
        ("biggan", 9000), ("ddpm", 0), ("ts", 7)]
    assert cat.get("ddpm")["config"]["replace"] is True
    capsys.readouterr()
    assert main(["zoo", "list", str(zoo_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["id", "name", "run"]
    assert "biggan@9000" in out and "samples" in out

    npz = tmp_path / "s.npz"
    assert main(["zoo", "sample", str(zoo_dir), "biggan@9000", "-n", "5", "--labels", "0,1,0,1,0",
                 "--out", str(npz)]) == 0
    with np.load(npz) as data:
        assert sorted(data["images"][data["labels"] == 1, 0, 0]) == [40, 41]
    capsys.readouterr()
    assert main(["zoo", "sample", str(zoo_dir), "biggan@9000", "-n", "3", "--labels", "1",
                 "--out", str(npz)]) == 2
    assert "3 images of class 1 asked for, but the set holds only 2" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        assert main(["zoo", "sample", str(zoo_dir), "ddpm", "-n", "9", "--labels", "1",
                     "--out", str(npz)]) == 0
    assert "drawing with replacement" in caplog.text


def test_negative_iteration_is_refused(held, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["zoo", "register-samples", str(tmp_path / "zoo"), str(held / "biggan"), "--name", "x",
              "--iteration", "-3"])
    assert exc.value.code == 2
    assert "must be a non-negative integer, got -3" in capsys.readouterr().err


def _manifest(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return path


def test_import_all_or_nothing(held, tmp_path, capsys):
    rows = [
        {"name": "biggan@9000", "run": "biggan", "iteration": "9000", "kind": "samples", "path": "biggan"},
        {"name": "ddpm", "kind": "samples", "path": "ddpm.npz", "replace": "true"},
        {"name": "ts", "kind": "torchscript", "path": "g.pt", "latent_dim": "4", "num_classes": "2",
         "image_shape": "12x12"},
    ]
    zoo_dir = tmp_path / "zoo"
    bad = _manifest(held / "bad.csv", rows[:2] + [dict(rows[2], num_classes="two")])
    assert main(["zoo", "import", str(zoo_dir), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 3 (line 4), column 'num_classes': must be an integer, got 'two'" in err
    assert len(Catalog(zoo_dir)) == 0

    good = _manifest(held / "manifest.csv", rows)
    assert main(["zoo", "import", str(zoo_dir), str(good)]) == 0
    assert "imported 3 generators (ids 1..3)" in capsys.readouterr().out
    cat = Catalog(zoo_dir)
    assert cat.names() == ["biggan@9000", "ddpm", "ts"]
    assert cat.load("ts").sample(2).shape == (2, 12, 12)
