"""``Catalog.import_manifest``: many members of every kind at once, all or nothing."""

from __future__ import annotations

import csv
import textwrap

import numpy as np
import pytest
import torch

from zoo.catalog import MANIFEST_COLUMNS, Catalog
from zoo.checkpoint import save_generator

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices

CFG = {"latent_dim": 4, "num_classes": 2, "image_size": 28, "channels": 1, "output_activation": "tanh"}


@pytest.fixture
def foreign_zoo(tiny, tmp_path, monkeypatch):
    """A folder of members of every kind, as a researcher would hold them, and its manifest rows."""
    src = tmp_path / "held"
    for it in (100, 200):
        torch.manual_seed(it)
        save_generator(src / "native" / f"G_{it}.pt", architecture=tiny.name, config=CFG,
                       state_dict=tiny.G(CFG).state_dict(), iteration=it)
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(tiny.G(CFG)), str(src / "g.ts"))
    for label in (0, 1):
        (src / "samples" / str(label)).mkdir(parents=True)
        for i in range(4):
            np.save(src / "samples" / str(label) / f"{i}.npy", np.full((1, 28, 28), 10 * label + i, np.uint8))
    np.savez(src / "ddpm.npz", images=np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8),
             labels=np.array([0, 1, 0, 1, 0, 1]))
    (src / "weights.bin").write_bytes(b"level 7")
    (src / "import_test_factory.py").write_text(textwrap.dedent('''
        import numpy as np

        class Flat:
            num_classes, image_shape = 2, (28, 28)

            def __init__(self, weights):
                self.level = int(open(weights).read().split()[1])

            def sample(self, n, labels=None, seed=0):
                return np.full((n, 28, 28), self.level, np.uint8)

        def build(weights):
            return Flat(weights)
    '''))
    monkeypatch.syspath_prepend(str(src))
    rows = [
        {"name": "dc@100", "run": "dc", "kind": "native", "path": "native/G_100.pt"},
        {"name": "dc@200", "run": "dc", "iteration": "200", "kind": "native", "path": "native/G_200.pt"},
        {"name": "ts", "run": "other", "iteration": "5", "kind": "torchscript", "path": "g.ts",
         "latent_dim": "4", "num_classes": "2", "image_shape": "28x28"},
        {"name": "flat", "run": "flat", "iteration": "3", "kind": "callable",
         "path": "import_test_factory:build", "num_classes": "2", "image_shape": "28,28",
         "kwargs": '{"weights": "weights.bin"}'},
        {"name": "biggan@20000", "run": "biggan", "iteration": "20000", "kind": "samples",
         "path": "samples", "dataset": "toy"},
        {"name": "ddpm", "kind": "samples", "path": "ddpm.npz", "num_classes": "2", "replace": "true"},
    ]
    return src, rows


def write_manifest(path, rows, columns=MANIFEST_COLUMNS):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def test_import_every_kind(foreign_zoo, tmp_path, monkeypatch):
    src, rows = foreign_zoo
    monkeypatch.chdir(tmp_path)  # paths are relative to the manifest, not the working directory
    cat = Catalog(tmp_path / "zoo")
    ids = cat.import_manifest(write_manifest(src / "manifest.csv", rows))
    assert ids == [1, 2, 3, 4, 5, 6]
    table = cat.list().set_index("name")
    assert list(table["kind"]) == ["native", "native", "torchscript", "callable", "samples", "samples"]
    assert list(table["run"]) == ["dc", "dc", "other", "flat", "biggan", "ddpm"]
    assert list(table["iteration"]) == [100, 200, 5, 3, 20000, 0]  # native: from the checkpoint
    assert table.loc["biggan@20000", "dataset"] == "toy"
    assert cat.get("ddpm")["config"]["replace"] is True
    assert cat.get("flat")["config"]["kwargs"]["weights"] == str((src / "weights.bin").resolve())
    assert (tmp_path / "zoo" / "foreign").is_dir()  # the TorchScript file was copied in
    for name in table.index:
        images = cat.load(name, device="cpu").sample(4, labels=[0, 1, 0, 1], seed=1)
        assert images.shape == (4, 28, 28) and images.dtype == np.uint8
    assert (cat.load("flat").sample(2) == 7).all()
    (src / "weights.bin").write_bytes(b"level 9")
    with pytest.raises(ValueError, match="argument weights.*changed"):
        cat.load("flat")


@pytest.mark.parametrize("change, row, column, message", [
    ({"kind": "gan"}, 3, "kind", "must be one of native, torchscript, callable, samples"),
    ({"path": "missing.ts"}, 3, "path", "not found .*relative to the manifest's folder"),
    ({"latent_dim": ""}, 3, "latent_dim", "a torchscript member needs latent_dim"),
    ({"latent_dim": "four"}, 3, "latent_dim", "must be an integer"),
    ({"image_shape": "28x9"}, 3, "image_shape", "expected"),
    ({"image_shape": "eight"}, 3, "image_shape", "must look like 28x28"),
    ({"iteration": "-1"}, 3, "iteration", "non-negative"),
    ({"name": "dc@100"}, 3, "name", "also the name of row 1"),
    ({"name": ""}, 3, "name", "empty"),
    ({"replace": "yes"}, 3, "replace", "does not apply to a torchscript member"),
])
def test_a_bad_row_registers_nothing(foreign_zoo, tmp_path, change, row, column, message):
    src, rows = foreign_zoo
    rows[2] = {**rows[2], **change}
    cat = Catalog(tmp_path / "zoo")
    manifest = write_manifest(src / "manifest.csv", rows)
    with pytest.raises(ValueError, match=rf"row {row} \(line {row + 1}\), column '{column}': .*{message}"):
        cat.import_manifest(manifest)
    assert len(cat) == 0
    assert not (tmp_path / "zoo" / "foreign").exists() or not any((tmp_path / "zoo" / "foreign").iterdir())


def test_late_errors_roll_back_and_remove_copies(foreign_zoo, tmp_path):
    src, rows = foreign_zoo
    cat = Catalog(tmp_path / "zoo")
    cat.register_samples(src / "ddpm.npz", name="ddpm")  # the last row's name is taken
    with pytest.raises(ValueError, match="row 6 \\(line 7\\), column 'name': .*already in the catalog"):
        cat.import_manifest(write_manifest(src / "manifest.csv", rows))
    assert cat.names() == ["ddpm"]
    assert not any((tmp_path / "zoo" / "foreign").iterdir())  # the TorchScript copy was removed

    bad_kwargs = [dict(rows[3], kwargs="{not json")]
    with pytest.raises(ValueError, match="row 1 \\(line 2\\), column 'kwargs': not valid JSON"):
        cat.import_manifest(write_manifest(src / "m2.csv", bad_kwargs))
    too_many = [dict(rows[4], num_classes="1")]  # the folder has label 1
    with pytest.raises(ValueError, match="column 'num_classes': .*num_classes=1"):
        cat.import_manifest(write_manifest(src / "m3.csv", too_many))
    assert cat.names() == ["ddpm"]


def test_manifest_shape_errors(foreign_zoo, tmp_path):
    src, rows = foreign_zoo
    cat = Catalog(tmp_path / "zoo")
    with pytest.raises(ValueError, match="unknown column\\(s\\) \\['latent'\\]"):
        cat.import_manifest(write_manifest(src / "a.csv", [], columns=("name", "kind", "path", "latent")))
    with pytest.raises(ValueError, match="missing column\\(s\\) \\['path'\\]"):
        cat.import_manifest(write_manifest(src / "b.csv", [], columns=("name", "kind")))
    with pytest.raises(ValueError, match="lists no members"):
        cat.import_manifest(write_manifest(src / "c.csv", []))
    (src / "d.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        cat.import_manifest(src / "d.csv")
    with pytest.raises(FileNotFoundError):
        cat.import_manifest(src / "absent.csv")


def test_file_arguments_only_take_paths_to_files(tmp_path, monkeypatch):
    from zoo.catalog import file_arguments

    (tmp_path / "m").mkdir()
    for rel in ("m/cpu", "m/w.bin", "m/run/config"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "here.yaml").write_text("cwd")
    monkeypatch.chdir(tmp_path)
    found = file_arguments({"device": "cpu", "w": "w.bin", "cfg": "run/config", "gone": "x.pt",
                            "n": 3, "yaml": "here.yaml", "abs": str(tmp_path / "m" / "w.bin")},
                           base=tmp_path / "m")
    assert found == {"w": tmp_path / "m" / "w.bin", "cfg": tmp_path / "m" / "run" / "config",
                     "yaml": tmp_path / "here.yaml", "abs": tmp_path / "m" / "w.bin"}
