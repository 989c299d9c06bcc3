"""The SQLite catalog: rows, lookups, verified loading, foreign generators, parallel writers."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from zoo.catalog import Catalog, GeneratorNotFoundError
from zoo.checkpoint import save_generator
from zoo.generator import Generator, TorchGenerator, TorchScriptGenerator
from zoo.io import sha256_file

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices

CFG = {"latent_dim": 8, "num_classes": 2, "image_size": 28, "channels": 1, "output_activation": "tanh"}


def _train_like(tiny, zoo_dir, run="tiny", iterations=(10, 20)):
    """Write checkpoints the way training does and add them to the catalog; return the ids."""
    cat = Catalog(zoo_dir)
    ids = []
    for it in iterations:
        torch.manual_seed(it)
        path = zoo_dir / "runs" / run / f"G_{it}.pt"
        digest = save_generator(path, architecture=tiny.name, config=CFG,
                                state_dict=tiny.G(CFG).state_dict(), iteration=it)
        ids.append(cat.add(run=run, iteration=it, architecture=tiny.name, config=CFG, dataset="toy",
                           image_shape=(28, 28), num_classes=2, path=path, sha256=digest))
    return ids


def test_add_list_get(tiny, tmp_path):
    ids = _train_like(tiny, tmp_path)
    cat = Catalog(tmp_path)
    assert ids == [1, 2] and len(cat) == 2
    table = cat.list()
    assert isinstance(table, pd.DataFrame)
    assert list(table["id"]) == [1, 2] and list(table["name"]) == ["tiny@10", "tiny@20"]
    assert table.loc[0, "image_shape"] == (28, 28) and table.loc[0, "config"] == CFG
    assert list(table.columns) == ["id", "name", "run", "kind", "architecture", "config", "dataset",
                                   "image_shape", "num_classes", "iteration", "path", "sha256", "created"]
    row = cat.get("tiny@20")
    assert row == cat.get(2) == cat.get("2") == cat.get(np.int64(2))
    assert row["path"] == "runs/tiny/G_20.pt"  # relative to the zoo folder
    assert row["sha256"] == sha256_file(tmp_path / "runs/tiny/G_20.pt")
    assert (row["kind"], row["iteration"], row["dataset"], row["num_classes"]) == ("native", 20, "toy", 2)
    assert "tiny@10" in cat and 1 in cat and "tiny@99" not in cat and 7 not in cat
    assert cat.names() == ["tiny@10", "tiny@20"]
    assert Catalog(tmp_path, create=False).list().equals(table)  # persisted


def test_add_fills_fields_from_the_checkpoint(tiny, tmp_path):
    path = tmp_path / "runs" / "r" / "G_5.pt"
    torch.manual_seed(0)
    save_generator(path, architecture=tiny.name, config=CFG, state_dict=tiny.G(CFG).state_dict(),
                   iteration=5)
    cat = Catalog(tmp_path)
    new = cat.add(run="r", path="runs/r/G_5.pt")
    row = cat.get(new)
    assert (row["name"], row["architecture"], row["iteration"], row["image_shape"], row["num_classes"]) == \
        ("r@5", tiny.name, 5, (28, 28), 2)
    assert row["config"] == CFG


def test_add_bad_rows(tiny, tmp_path):
    _train_like(tiny, tmp_path)
    cat = Catalog(tmp_path)
    f = tmp_path / "runs/tiny/G_10.pt"
    with pytest.raises(ValueError, match="'tiny@10' is already in the catalog \\(id 1\\)"):
        cat.add(run="tiny", iteration=10, path=f)
    with pytest.raises(ValueError, match="unknown catalog field"):
        cat.add(run="x", path=f, colour="red")
    with pytest.raises(ValueError, match="kind must be one of"):
        cat.add(run="x", path=f, kind="onnx")
    with pytest.raises(ValueError, match="does not match the file"):
        cat.add(run="x", path=f, sha256="ab" * 32)
    with pytest.raises(FileNotFoundError, match="G_999.pt"):
        cat.add(run="x", path=tmp_path / "G_999.pt")
    with pytest.raises(ValueError, match="needs path"):
        cat.add(run="x")
    assert len(cat) == 2


def test_unknown_names_list_the_known(tiny, tmp_path):
    cat = Catalog(tmp_path)
    with pytest.raises(ValueError, match="catalog is empty"):
        cat.get("x")
    _train_like(tiny, tmp_path)
    with pytest.raises(KeyError) as info:
        cat.get("dcgan@1")
    assert "tiny@10, tiny@20" in str(info.value) and "'dcgan@1'" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(GeneratorNotFoundError):
        cat.load(42)
    with pytest.raises(ValueError, match="id \\(int\\) or name"):
        cat.get(1.5)


def test_load_verifies_file_and_hash(tiny, tmp_path):
    _train_like(tiny, tmp_path)
    cat = Catalog(tmp_path)
    g = cat.load("tiny@10", device="cpu")
    assert isinstance(g, TorchGenerator) and g.image_shape == (28, 28)
    torch.manual_seed(10)
    direct = TorchGenerator(tiny.G(CFG), latent_dim=8, num_classes=2, image_shape=(28, 28), device="cpu")
    assert g.sample(10, seed=1).tobytes() == direct.sample(10, seed=1).tobytes()
    # a replaced file (still a valid checkpoint) is refused, naming the row and the fix
    f20 = tmp_path / "runs/tiny/G_20.pt"
    f20.write_bytes((tmp_path / "runs/tiny/G_10.pt").read_bytes())
    with pytest.raises(ValueError, match="'tiny@20' \\(id 2\\).*changed.*zoo remove"):
        cat.load("tiny@20", device="cpu")
    (tmp_path / "runs/tiny/G_10.pt").unlink()
    with pytest.raises(FileNotFoundError, match="'tiny@10' \\(id 1\\).*missing"):
        cat.load(1, device="cpu")


def test_remove(tiny, tmp_path):
    _train_like(tiny, tmp_path)
    cat = Catalog(tmp_path)
    row = cat.remove("tiny@10")
    assert row["id"] == 1 and len(cat) == 1 and (tmp_path / "runs/tiny/G_10.pt").is_file()
    cat.remove(2, delete_file=True)
    assert len(cat) == 0 and not (tmp_path / "runs/tiny/G_20.pt").exists()
    with pytest.raises(KeyError):
        cat.remove("tiny@10")
    # ids are never reused
    assert _train_like(tiny, tmp_path, run="again", iterations=(1,)) == [3]


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no zoo catalog.*zoo train"):
        Catalog(tmp_path / "empty", create=False)
    assert not (tmp_path / "empty").exists()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a SQLite catalog"):
        Catalog(junk)
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "catalog.sqlite") as con:
        con.execute("CREATE TABLE x (a)")
    with pytest.raises(ValueError, match="no generators table"):
        Catalog(other, create=False)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        Catalog(afile)


def test_register_torchscript_round_trip(tiny, tmp_path):
    torch.manual_seed(0)
    module = tiny.G(CFG)
    src = tmp_path / "outside" / "ext gen.pt"
    src.parent.mkdir()
    torch.jit.save(torch.jit.script(module), str(src))
    zoo_dir = tmp_path / "zoo"
    cat = Catalog(zoo_dir)
    new = cat.register_torchscript(src, name="ext", latent_dim=8, num_classes=2, image_shape=(28, 28),
                                   dataset="toy")
    row = cat.get(new)
    assert row["kind"] == "torchscript" and row["path"].startswith("foreign/")
    assert (zoo_dir / row["path"]).read_bytes() == src.read_bytes()
    g = cat.load("ext", device="cpu")
    assert isinstance(g, TorchScriptGenerator) and isinstance(g, Generator)
    direct = TorchGenerator(module, latent_dim=8, num_classes=2, image_shape=(28, 28), device="cpu")
    assert g.sample(6, seed=2).tobytes() == direct.sample(6, seed=2).tobytes()
    src.unlink()  # the copy is independent of the original
    assert cat.load("ext", device="cpu").sample(2).shape == (2, 28, 28)
    # without copying, the original path is recorded
    torch.jit.save(torch.jit.script(module), str(src))
    cat.register_torchscript(src, name="ext2", latent_dim=8, num_classes=2, image_shape=(28, 28), copy=False)
    assert cat.file_path("ext2") == src.resolve()
    with pytest.raises(ValueError, match="already in the catalog"):
        cat.register_torchscript(src, name="ext", latent_dim=8, num_classes=2, image_shape=(28, 28))
    # a wrong shape is refused before anything is registered or copied
    with pytest.raises(ValueError, match="expected \\(2, 3, 28, 28\\)"):
        cat.register_torchscript(src, name="bad", latent_dim=8, num_classes=2, image_shape=(28, 28, 3))
    assert "bad" not in cat and len(list((zoo_dir / "foreign").iterdir())) == 1


CALLABLE_SRC = textwrap.dedent('''
    import numpy as np

    class Stripes:
        num_classes = 2
        image_shape = (8, 8)

        def __init__(self, width=1):
            self.width = width

        def sample(self, n, labels=None, seed=0):
            x = np.zeros((n, 8, 8), np.uint8)
            x[:, :, : self.width] = 255
            x[:, 0, 0] = labels
            return x

    def make(width=1):
        return Stripes(width)
''')


def test_register_callable_round_trip_and_changed_module(tmp_path, monkeypatch):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    module_file = src_dir / "catalog_test_foreign.py"
    module_file.write_text(CALLABLE_SRC)
    monkeypatch.syspath_prepend(str(src_dir))
    cat = Catalog(tmp_path / "zoo")
    new = cat.register_callable("catalog_test_foreign:make", name="stripes", num_classes=2,
                                image_shape=(8, 8), width=3)
    row = cat.get(new)
    assert (row["kind"], row["path"], row["config"]) == ("callable", "catalog_test_foreign:make",
                                                        {"kwargs": {"width": 3}})
    # the hash covers the module source and the arguments: the same factory with other arguments
    # is another generator (its features must not come from the cache of this one)
    assert row["sha256"] != sha256_file(module_file)
    wide = cat.get(cat.register_callable("catalog_test_foreign:make", name="wide", num_classes=2,
                                         image_shape=(8, 8), width=4))
    assert wide["sha256"] not in (row["sha256"], sha256_file(module_file))
    g = cat.load("stripes")
    x = g.sample(5, labels=[0, 1, 1, 0, 1])
    assert x.dtype == np.uint8 and np.all(x[:, 1:, :3] == 255) and np.all(x[:, 1:, 3:] == 0)
    assert list(x[:, 0, 0]) == [0, 1, 1, 0, 1]
    with pytest.raises(ValueError, match="JSON"):
        cat.register_callable("catalog_test_foreign:make", name="s2", num_classes=2, image_shape=(8, 8),
                              width=object())
    with pytest.raises(ValueError, match="image_shape"):
        cat.register_callable("catalog_test_foreign:make", name="s3", num_classes=2, image_shape=(9, 9))
    module_file.write_text(CALLABLE_SRC + "\n# edited\n")
    with pytest.raises(ValueError, match="'stripes'.*module source.*changed"):
        cat.load("stripes")
    assert len(cat) == 2  # stripes and wide; the refused registrations left nothing


def _writer(zoo_dir: str, worker: int, count: int) -> None:
    from pathlib import Path

    cat = Catalog(zoo_dir)
    for i in range(count):
        f = Path(zoo_dir) / f"w{worker}_{i}.bin"
        f.write_bytes(f"{worker}-{i}".encode())
        cat.add(run=f"w{worker}", iteration=i, kind="torchscript", architecture="torchscript",
                config={"latent_dim": 1}, image_shape=(4, 4), num_classes=1, path=f)


def test_parallel_writers(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    table = Catalog(tmp_path).list()
    assert len(table) == 60 and table["id"].is_unique and table["name"].is_unique
    assert sorted(table["name"]) == sorted(f"w{w}@{i}" for w in range(4) for i in range(15))


def test_real_family_through_the_catalog(tmp_path):
    from zoo.registry import create_generator, resolve_config

    cfg = resolve_config("dcgan", {"num_classes": 2, "image_size": 28, "channels": 1})
    torch.manual_seed(0)
    module = create_generator("dcgan", cfg)
    path = tmp_path / "runs" / "dcgan" / "G_3.pt"
    save_generator(path, architecture="dcgan", config=cfg, state_dict=module.state_dict(), iteration=3)
    cat = Catalog(tmp_path)
    cat.add(run="dcgan", path=path, dataset="pneumoniamnist")
    x = cat.load("dcgan@3", device="cpu").sample(4, seed=0)
    assert x.shape == (4, 28, 28) and x.dtype == np.uint8


# --------------------------------------------------------------------------- read-only zoos, damage


def _state(zoo_dir):
    """Bytes and mtime of the catalog file: what a read must never change."""
    p = zoo_dir / "catalog.sqlite"
    return p.read_bytes(), p.stat().st_mtime_ns


def _read_everything(cat):
    return (len(cat), cat.names(), cat.list()["name"].tolist(), cat.get("tiny@10")["iteration"],
            "tiny@20" in cat, cat.load("tiny@20", device="cpu").sample(3, seed=1).tobytes())


def test_a_read_only_zoo_is_read_without_writing(tiny, tmp_path, monkeypatch):
    import zoo.catalog as catalog_mod

    _train_like(tiny, tmp_path)
    before = _state(tmp_path)
    expected = _read_everything(Catalog(tmp_path, create=False))
    assert _state(tmp_path) == before  # create=False: read-only connections
    # the folder is not writable (a read-only mount; root ignores chmod, so the check is patched)
    monkeypatch.setattr(catalog_mod, "catalog_writable", lambda zoo_dir: False)
    cat = Catalog(tmp_path)
    assert cat.read_only and not cat.writable
    assert _read_everything(cat) == expected
    assert _state(tmp_path) == before
    with pytest.raises(PermissionError, match=r"zoo folder .* is read-only; copy it to a writable folder"):
        _train_like(tiny, tmp_path, run="more", iterations=(5,))
    with pytest.raises(PermissionError, match="read-only"):
        cat.remove("tiny@10")
    assert _state(tmp_path) == before and len(cat) == 2


def test_catalog_writable_follows_access(tmp_path, monkeypatch):
    import os

    from zoo.catalog import catalog_writable

    assert catalog_writable(tmp_path / "new" / "deeper")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert not catalog_writable(tmp_path)


def _ro_bind_mount(src, dst):
    """A real read-only bind mount of ``src`` at ``dst`` (needs root and mount rights), or skip."""
    import subprocess

    dst.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(dst)],
                             capture_output=True).returncode == 0:
        return lambda: subprocess.run(["umount", str(dst)], check=True)
    if ok:
        subprocess.run(["umount", str(dst)])
    pytest.skip("cannot make a read-only bind mount here (needs root and mount rights)")


def test_a_zoo_on_a_read_only_mount(tiny, tmp_path):
    _train_like(tiny, tmp_path / "zoo")
    expected = _read_everything(Catalog(tmp_path / "zoo"))
    for side in (tmp_path / "zoo").glob("catalog.sqlite-*"):  # a cleanly closed catalog has none
        side.unlink()
    umount = _ro_bind_mount(tmp_path / "zoo", tmp_path / "ro")
    try:
        cat = Catalog(tmp_path / "ro")
        assert cat.read_only
        assert _read_everything(cat) == expected
        with pytest.raises(PermissionError, match="read-only"):
            cat.remove("tiny@10")
        with pytest.raises(PermissionError, match=r"cannot write .*G_5\.pt': read-only file system"):
            _train_like(tiny, tmp_path / "ro", run="more", iterations=(5,))
    finally:
        umount()


def test_a_corrupted_catalog_names_the_file(tiny, tmp_path):
    _train_like(tiny, tmp_path / "zoo")
    path = tmp_path / "zoo" / "catalog.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x00garbage" * 64 + data[612:])  # the header and schema page broken
    with pytest.raises(ValueError, match=r"catalog\.sqlite' is not a SQLite catalog or is corrupted "
                                         r"\(.*\); restore it from a backup"):
        Catalog(tmp_path / "zoo").list()
    path.write_bytes(b"")  # an empty file: an empty catalog (a creation that never wrote)
    assert len(Catalog(tmp_path / "zoo", create=False)) == 0


def test_a_failed_registration_leaves_no_catalog_behind(tiny, tmp_path):
    class NoLabels(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.tanh(z[:, :4].reshape(-1, 1, 2, 2))

    src = tmp_path / "g.pt"
    torch.jit.save(torch.jit.script(NoLabels()), str(src))
    zoo_dir = tmp_path / "new-zoo"
    cat = Catalog(zoo_dir)
    assert not zoo_dir.exists() and len(cat) == 0 and cat.list().empty
    with pytest.raises(ValueError, match=r"forward takes \(z\), but a generator's forward must take "
                                         r"\(z, labels\)"):
        cat.register_torchscript(src, name="x", latent_dim=8, num_classes=2, image_shape=(2, 2))
    with pytest.raises(ValueError, match="must be a non-empty string"):
        cat.add(path=src, kind="torchscript", run="", architecture="a", config={}, image_shape=(2, 2),
                num_classes=2)
    assert not zoo_dir.exists()
    # a copy made for a registration that then fails is removed with the folders it needed
    torch.manual_seed(0)
    good = tmp_path / "good.pt"
    torch.jit.save(torch.jit.script(tiny.G(CFG)), str(good))
    cat.register_torchscript(good, name="ok", latent_dim=8, num_classes=2, image_shape=(28, 28))
    assert cat.names() == ["ok"]
