"""``gan-ensemble zoo``: train, list, sample, register and remove, through the real parser."""

from __future__ import annotations

import argparse
import importlib.util
import textwrap

import numpy as np
import pytest
from PIL import Image

from ensemble.cli import zoo as zoo_cli
from ensemble.grids import image_grid, save_grid
from zoo.catalog import Catalog

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices


def cli(argv: list[str]) -> int:
    """Parse ``argv`` with a top-level parser holding only the zoo command, and run it."""
    parser = argparse.ArgumentParser(prog="gan-ensemble")
    sub = parser.add_subparsers(dest="command", required=True)
    zoo_cli.register(sub)
    args = parser.parse_args(argv)
    result = args.func(args)  # a command returns a dict of what it wrote (main prints it with --json)
    return 0 if isinstance(result, dict) else result


@pytest.fixture
def ts_zoo(tmp_path, torchscript_generator):
    """A zoo folder with one registered TorchScript generator (12x12, 2 classes)."""
    f = tmp_path / "g.pt"
    torchscript_generator(f)
    zoo_dir = tmp_path / "zoo"
    assert cli(["zoo", "register-torchscript", str(zoo_dir), str(f), "--name", "ts", "--latent-dim", "4",
                "--num-classes", "2", "--image-shape", "12x12", "--dataset", "toy"]) == 0
    return zoo_dir


def test_register_list_sample_remove(ts_zoo, tmp_path, capsys):
    assert cli(["zoo", "register-torchscript", str(ts_zoo), str(tmp_path / "g.pt"), "--name", "ts2",
                "--latent-dim", "4", "--num-classes", "2", "--image-shape", "12,12"]) == 0
    assert "registered ts2 (id 2)" in capsys.readouterr().out
    assert cli(["zoo", "remove", str(ts_zoo), "ts2"]) == 0  # keeps the file
    assert "removed ts2 (id 2)\n" == capsys.readouterr().out
    assert len(list((ts_zoo / "foreign").iterdir())) == 2
    assert cli(["zoo", "list", str(ts_zoo)]) == 0
    out = capsys.readouterr().out
    assert "ts" in out and "torchscript" in out and "12x12" in out and "sha256" not in out
    assert cli(["zoo", "list", str(ts_zoo), "--all"]) == 0
    assert "sha256" in capsys.readouterr().out

    grid = tmp_path / "grid.png"
    assert cli(["zoo", "sample", str(ts_zoo), "ts", "-n", "10", "--seed", "3", "--nrow", "5",
                "--out", str(grid)]) == 0
    with Image.open(grid) as im:
        assert im.mode == "L"
        width, height = im.size
    assert width == 2 + 5 * (12 + 2)  # 5 images per row
    assert height >= 2 + 2 * (12 + 2)  # at least 2 rows (more when a class starts a new row)

    npz = tmp_path / "s.npz"
    assert cli(["zoo", "sample", str(ts_zoo), "1", "-n", "6", "--seed", "3", "--labels", "1",
                "--device", "cpu", "--out", str(npz)]) == 0
    with np.load(npz) as data:
        images, labels = data["images"], data["labels"]
    assert images.shape == (6, 12, 12) and images.dtype == np.uint8 and list(labels) == [1] * 6
    expected = Catalog(ts_zoo).load("ts", device="cpu").sample(6, labels=[1] * 6, seed=3)
    assert images.tobytes() == expected.tobytes()

    assert cli(["zoo", "remove", str(ts_zoo), "ts", "--delete-file"]) == 0
    assert len(Catalog(ts_zoo)) == 0 and len(list((ts_zoo / "foreign").iterdir())) == 1
    capsys.readouterr()
    assert cli(["zoo", "list", str(ts_zoo)]) == 0
    assert "no generators" in capsys.readouterr().out


def test_sample_and_list_errors(ts_zoo, tmp_path):
    with pytest.raises(KeyError, match="'nope'.*known: ts"):
        cli(["zoo", "sample", str(ts_zoo), "nope", "--out", str(tmp_path / "out.png")])
    with pytest.raises(ValueError, match="must end in .png"):
        cli(["zoo", "sample", str(ts_zoo), "ts", "--out", str(tmp_path / "out.jpg")])
    with pytest.raises(ValueError, match="n \\(number of images\\)"):
        cli(["zoo", "sample", str(ts_zoo), "ts", "-n", "0", "--out", str(tmp_path / "out.png")])
    with pytest.raises(ValueError, match="3 entries but n=4"):
        cli(["zoo", "sample", str(ts_zoo), "ts", "-n", "4", "--labels", "0,1,1",
             "--out", str(tmp_path / "out.png")])
    with pytest.raises(ValueError, match="label 5 out of range"):
        cli(["zoo", "sample", str(ts_zoo), "ts", "-n", "2", "--labels", "5",
             "--out", str(tmp_path / "out.png")])
    with pytest.raises(ValueError, match="comma-separated integers"):
        cli(["zoo", "sample", str(ts_zoo), "ts", "--labels", "a,b", "--out", str(tmp_path / "out.png")])
    with pytest.raises(FileNotFoundError, match="no zoo catalog"):
        cli(["zoo", "list", str(tmp_path / "missing")])
    assert not list(tmp_path.glob("out.*"))
    with pytest.raises(SystemExit):  # argparse: an action is required
        cli(["zoo"])


def test_register_errors(ts_zoo, tmp_path):
    f = tmp_path / "g.pt"
    with pytest.raises(ValueError, match="image_shape"):
        cli(["zoo", "register-torchscript", str(ts_zoo), str(f), "--name", "x", "--latent-dim", "4",
             "--num-classes", "2", "--image-shape", "12,12,2"])
    with pytest.raises(ValueError, match="already in the catalog"):
        cli(["zoo", "register-torchscript", str(ts_zoo), str(f), "--name", "ts", "--latent-dim", "4",
             "--num-classes", "2", "--image-shape", "12,12"])
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        cli(["zoo", "register-torchscript", str(ts_zoo), str(tmp_path / "missing.pt"), "--name", "y",
             "--latent-dim", "4", "--num-classes", "2", "--image-shape", "12,12"])
    with pytest.raises(ValueError, match="--kwargs must be a JSON object"):
        cli(["zoo", "register-callable", str(ts_zoo), "m:f", "--name", "c", "--num-classes", "2",
             "--image-shape", "12,12", "--kwargs", "[1, 2]"])
    with pytest.raises(ValueError, match="package.module:function"):
        cli(["zoo", "register-callable", str(ts_zoo), "not-a-ref", "--name", "c", "--num-classes", "2",
             "--image-shape", "12,12"])
    assert len(Catalog(ts_zoo)) == 1


def test_register_callable(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "cli_zoo_foreign.py").write_text(textwrap.dedent('''
        import numpy as np

        class Flat:
            def __init__(self, level):
                self.level = level

            def sample(self, n, labels=None, seed=0):
                return np.full((n, 6, 6, 3), self.level, np.uint8)

        def build(level=0):
            return Flat(level)
    '''))
    monkeypatch.syspath_prepend(str(src))
    zoo_dir = tmp_path / "zoo"
    assert cli(["zoo", "register-callable", str(zoo_dir), "cli_zoo_foreign:build", "--name", "flat",
                "--num-classes", "3", "--image-shape", "6,6,3", "--kwargs", '{"level": 200}']) == 0
    out = tmp_path / "flat.png"
    assert cli(["zoo", "sample", str(zoo_dir), "flat", "-n", "4", "--out", str(out)]) == 0
    with Image.open(out) as im:
        arr = np.asarray(im)
    assert im.mode == "RGB" and arr.ndim == 3 and (arr == 200).any()


def test_image_grid_layout():
    imgs = np.stack([np.full((3, 4), v, np.uint8) for v in range(1, 8)])
    g = image_grid(imgs, nrow=3, padding=1, pad_value=0)
    assert g.shape == (1 + 3 * 4, 1 + 3 * 5)
    assert g[1, 1] == 1 and g[1, 1 + 5] == 2 and g[1 + 4, 1] == 4 and g[1 + 8, 1] == 7
    assert g[1 + 8, 1 + 5] == 0  # empty cell
    # labels: each class starts a new row
    labels = np.array([1, 0, 1, 0, 1, 1, 0])
    g = image_grid(imgs, nrow=3, labels=labels, padding=0)
    assert g.shape == (3 * 3, 3 * 4)
    assert [g[0, 0], g[0, 4], g[0, 8]] == [2, 4, 7]  # class 0
    assert [g[3, 0], g[3, 4], g[3, 8], g[6, 0]] == [1, 3, 5, 6]  # class 1, two rows
    assert image_grid(np.zeros((5, 2, 2, 3), np.uint8)).shape == (2 + 2 * 4, 2 + 3 * 4, 3)
    for bad in [np.zeros((2, 3, 3), np.float32), np.zeros((2, 3, 3, 2), np.uint8), np.zeros((0, 3, 3), np.uint8)]:
        with pytest.raises(ValueError):
            image_grid(bad)
    with pytest.raises(ValueError, match="nrow"):
        image_grid(imgs, nrow=0)
    with pytest.raises(ValueError, match="labels must have shape"):
        image_grid(imgs, labels=[0, 1])


def test_save_grid_is_atomic_png(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (4, 5, 5), dtype=np.uint8)
    path = save_grid(imgs, tmp_path / "g.png", nrow=2)
    with Image.open(path) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), image_grid(imgs, nrow=2))
    with pytest.raises(ValueError, match="image format"):
        save_grid(imgs, tmp_path / "g.unknownext")
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def test_train_unknown_family_fails_before_loading_data(tmp_path):
    with pytest.raises(ValueError, match="unknown architecture 'nosuchgan'.*dcgan"):
        cli(["zoo", "train", "--dataset", str(tmp_path / "absent.npz"), "--families", "dcgan,nosuchgan",
             "--out", str(tmp_path / "zoo")])
    with pytest.raises(ValueError, match="--snapshots \\[50\\] outside 1..10"):
        cli(["zoo", "train", "--dataset", "x", "--families", "dcgan", "--iterations", "10",
             "--snapshots", "5,50", "--out", str(tmp_path / "zoo")])
    assert not (tmp_path / "zoo").exists()


def test_train_real_family_on_real_data(data_root, tmp_path, capsys):
    zoo_dir = tmp_path / "zoo"
    assert cli(["zoo", "train", "--dataset", "pneumoniamnist", "--data-root", str(data_root),
                "--subset", "64", "--families", "dcgan", "--iterations", "2", "--snapshots", "1,2",
                "--batch-size", "16", "--device", "cpu", "--lr", "1e-4", "--out", str(zoo_dir)]) == 0
    table = Catalog(zoo_dir).list()
    assert list(table["iteration"]) == [1, 2] and set(table["architecture"]) == {"dcgan"}
    assert set(table["dataset"]) == {"pneumoniamnist"} and table.loc[0, "config"]["lr"] == 1e-4
    assert "dcgan: 2 generators" in capsys.readouterr().out
    grid = tmp_path / "g.png"
    assert cli(["zoo", "sample", str(zoo_dir), table.loc[1, "name"], "-n", "4", "--out", str(grid)]) == 0
    assert grid.is_file()


def test_through_the_dispatcher(ts_zoo, capsys):
    """``ensemble.cli.main`` once every command module of the dispatcher exists."""
    from ensemble.cli import COMMANDS, main

    missing = [c for c in COMMANDS if importlib.util.find_spec(f"ensemble.cli.{c}") is None]
    if missing:
        pytest.skip(f"dispatcher command modules not written yet: {missing}")
    assert main(["zoo", "list", str(ts_zoo)]) == 0
    assert "torchscript" in capsys.readouterr().out
    assert main(["zoo", "sample", str(ts_zoo), "nope", "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gan-ensemble zoo: error: no generator") and err.count("\n") == 1


def test_architectures_lists_every_family(capsys):
    import argparse

    from ensemble.cli import zoo as zoo_cli
    from zoo.registry import list_architectures

    parser = argparse.ArgumentParser()
    zoo_cli.register(parser.add_subparsers())
    args = parser.parse_args(["zoo", "architectures"])
    assert [a["name"] for a in args.func(args)["architectures"]] == list_architectures()
    out = capsys.readouterr().out
    for family in ("dcgan", "lsgan", "wgan", "wgan-gp", "sngan", "acgan", "cgan", "progan"):
        assert f"\n{family} " in "\n" + out
