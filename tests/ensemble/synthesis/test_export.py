"""export_dataset: readable layout, byte-identical files, atomic writes, refusal to overwrite."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import ensemble.synthesis.formats as formats_mod
from ensemble.search.result import Ensemble
from ensemble.seeds import export_seed
from ensemble.synthesis.export import export_dataset
from ensemble.synthesis.formats import class_folder_names, list_export_formats
from ensemble.synthesis.sample import sample_ensemble

ENS = Ensemble(["toy0@0", "toy2@0"], intra_d=0.75, inter_d=0.25, rule="max-intra",
               meta={"backbone": "resnet18", "weights": "random", "k": 5, "dataset": "pneumoniamnist"})


def _sample(cat, seed=0, n=6, **kw):
    return sample_ensemble(ENS, cat, n_per_class=n, seed=seed, device="cpu", **kw)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_layout_readable_by_imagefolder_numpy_and_loader(toy_catalog, tmp_path):
    from torchvision.datasets import ImageFolder

    from ensemble.data import load_dataset

    s = _sample(toy_catalog)
    out = export_dataset(s, tmp_path / "synth")
    files = _tree(out)
    assert {"manifest.csv", "meta.json", "pneumoniamnist_synthetic.npz"} <= set(files)
    assert sum(f.endswith(".png") for f in files) == 12
    assert len(list((out / "train" / "normal").glob("*.png"))) == 6
    assert len(list((out / "train" / "pneumonia").glob("*.png"))) == 6

    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(s)
    assert {"filename", "label", "label_name", "generator", "iteration", "seed", "index"} <= set(rows[0])
    r0 = rows[0]
    assert r0["filename"] == (f"train/{r0['label_name']}/{s.provenance['generator'][0].replace('@', '_')}"
                              f"_0_{int(s.provenance['index'][0]):05d}.png")

    folder = ImageFolder(str(out / "train"))
    assert folder.classes == ["normal", "pneumonia"] and len(folder) == 12
    by_file = {Path(p).relative_to(out).as_posix(): t for p, t in folder.samples}
    for i, row in enumerate(rows):
        assert by_file[row["filename"]] == int(row["label"]) == s.labels[i]
        img = np.asarray(folder.loader(str(out / row["filename"])).convert("L"))
        np.testing.assert_array_equal(img, s.images[i])

    with np.load(out / "pneumoniamnist_synthetic.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["train_images", "train_labels"]
        assert z["train_images"].dtype == np.uint8 and z["train_images"].shape == (12, 28, 28)
        assert z["train_labels"].shape == (12, 1) and z["train_labels"].dtype == np.uint8
        np.testing.assert_array_equal(z["train_images"], s.images)
        np.testing.assert_array_equal(z["train_labels"][:, 0], s.labels)
    ds = load_dataset(out / "pneumoniamnist_synthetic.npz", split="train")
    assert ds.class_names == ["normal", "pneumonia"] and len(ds) == 12

    meta = json.loads((out / "meta.json").read_text())
    assert meta["ensemble"]["members"] == ["toy0@0", "toy2@0"]
    assert meta["ensemble"]["intra_d"] == 0.75 and meta["ensemble"]["rule"] == "max-intra"
    assert meta["backbone"] == "resnet18" and meta["k"] == 5 and meta["seed"] == 0
    assert meta["class_counts"] == [6, 6] and meta["member_counts"] == {"toy0@0": [3, 3], "toy2@0": [3, 3]}
    assert meta["version"] and meta["created"]
    from zoo.io import sha256_file

    assert meta["files"]["manifest.csv"] == sha256_file(out / "manifest.csv")


def test_export_loads_in_hugging_face_datasets(toy_catalog, tmp_path, monkeypatch):
    """``datasets``' imagefolder builder reads the tree with its metadata.csv: images and labels."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    s = _sample(toy_catalog)
    out = export_dataset(s, tmp_path / "synth")
    hf = datasets.load_dataset("imagefolder", data_dir=str(out), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert len(hf) == len(s)
    with open(out / "manifest.csv", newline="") as f:
        by_file = {r["filename"]: int(r["npz_index"]) for r in csv.DictReader(f)}
    with open(out / "train" / "metadata.csv", newline="") as f:
        names = ["train/" + r["file_name"] for r in csv.DictReader(f)]
    assert sorted(names) == sorted(by_file)
    got = sorted((int(r["label"]), r["name"], int(r["index"]), np.asarray(r["image"].convert("L")).tobytes())
                 for r in hf)
    want = sorted((int(s.labels[i]), s.provenance["name"].iat[i], int(s.provenance["index"].iat[i]),
                   s.images[i].tobytes()) for i in range(len(s)))
    assert got == want
    meta = json.loads((out / "meta.json").read_text())
    from zoo.io import sha256_file

    assert meta["files"]["train/metadata.csv"] == sha256_file(out / "train" / "metadata.csv")


def test_same_seed_same_bytes(toy_catalog, tmp_path):
    a = export_dataset(_sample(toy_catalog, seed=5), tmp_path / "a")
    b = export_dataset(_sample(toy_catalog, seed=5), tmp_path / "b")
    c = export_dataset(_sample(toy_catalog, seed=6), tmp_path / "c", formats=("npz",))
    ta, tb = _tree(a), _tree(b)
    assert ta.keys() == tb.keys()
    for rel in ta:
        if rel != "meta.json":
            assert ta[rel] == tb[rel], rel
    ma, mb = json.loads(ta["meta.json"]), json.loads(tb["meta.json"])
    ma.pop("created"), mb.pop("created")
    assert ma == mb
    tc = _tree(c)
    assert not any(k.endswith(".png") for k in tc)
    assert tc["pneumoniamnist_synthetic.npz"] != ta["pneumoniamnist_synthetic.npz"]


def test_failure_part_way_leaves_nothing(toy_catalog, tmp_path, monkeypatch):
    s = _sample(toy_catalog)
    real_save = formats_mod.save_png
    calls = []

    def failing(array, path):
        calls.append(path)
        if len(calls) > 4:
            raise OSError("disk full (injected)")
        real_save(array, path)

    monkeypatch.setattr(formats_mod, "save_png", failing)
    with pytest.raises(OSError, match="injected"):
        export_dataset(s, tmp_path / "out")
    assert len(calls) == 5
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path, "out") == []

    # The same failure while replacing an existing dataset leaves the old one untouched.
    monkeypatch.setattr(formats_mod, "save_png", real_save)
    old = export_dataset(s, tmp_path / "keep", formats=("npz",))
    before = _tree(old)
    calls.clear()
    monkeypatch.setattr(formats_mod, "save_png", failing)
    with pytest.raises(OSError):
        export_dataset(s, old, overwrite=True)
    assert _tree(old) == before and _leftovers(tmp_path, "keep") == []

    with pytest.raises(ValueError, match="known: npz, png"):
        export_dataset(s, tmp_path / "bad", formats=("npz", "tiff"))
    assert not (tmp_path / "bad").exists() and _leftovers(tmp_path, "bad") == []
    assert list_export_formats() == ["npz", "png"]


def test_existing_target_refused_unless_overwrite(toy_catalog, tmp_path):
    s = _sample(toy_catalog, n=2)
    target = export_dataset(s, tmp_path / "ds", formats="npz")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_dataset(s, target)
    before = _tree(target)
    export_dataset(_sample(toy_catalog, n=3), target, overwrite=True)  # an earlier export: replaced
    assert _tree(target) != before and (target / "train").is_dir()
    export_dataset(s, target, overwrite=True, formats="npz")  # png tree of the last one: ours too
    assert not (target / "train").exists() and _leftovers(tmp_path, "ds") == []


@pytest.mark.parametrize("case", ["user files", "zoo", "foreign meta", "extra file in export"])
def test_overwrite_never_deletes_what_export_did_not_write(toy_catalog, tmp_path, case):
    s = _sample(toy_catalog, n=2)
    target = tmp_path / "ds"
    if case == "user files":
        target.mkdir()
        (target / "precious.txt").write_text("keep me")
    elif case == "zoo":
        target = toy_catalog.zoo_dir
    elif case == "foreign meta":
        target.mkdir()
        (target / "meta.json").write_text(json.dumps({"format": "someone-else/1"}))
    else:
        export_dataset(s, target, formats="npz")
        (target / "notes.md").write_text("my notes")
    before = _tree(target)
    with pytest.raises(FileExistsError, match="not replaced|not a dataset written") as err:
        export_dataset(s, target, overwrite=True)
    assert str(target) in str(err.value) and "--out" in str(err.value)
    assert _tree(target) == before


def test_next_export_cleans_what_a_killed_one_left(toy_catalog, tmp_path):
    import os

    from zoo.io import HOST

    s = _sample(toy_catalog, n=2)
    dead = tmp_path / ".ds.tmp-deadbeef"
    dead.mkdir()
    (dead / ".gan-ensemble-owner").write_text(f"{HOST} 999999999\n")
    (dead / "manifest.csv").write_text("half")
    unowned = tmp_path / ".ds.old-cafecafe"  # killed before it recorded its owner
    unowned.mkdir()
    alive = tmp_path / ".ds.tmp-0badf00d"  # a run still going (this process)
    alive.mkdir()
    (alive / ".gan-ensemble-owner").write_text(f"{HOST} {os.getpid()}\n")
    other = tmp_path / ".other.tmp-deadbeef"  # another target's: not ours to judge
    other.mkdir()
    export_dataset(s, tmp_path / "ds", formats="npz")
    assert not dead.exists() and not unowned.exists()
    assert alive.exists() and other.exists()
    assert not (tmp_path / "ds" / ".gan-ensemble-owner").exists()


def test_class_folders_keep_label_order(toy_catalog, tmp_path):
    from torchvision.datasets import ImageFolder

    assert class_folder_names(["normal", "pneumonia"]) == ["normal", "pneumonia"]
    assert class_folder_names(["zeta", "alpha"]) == ["0_zeta", "1_alpha"]
    assert class_folder_names(["normal, benign", "x/y"]) == ["normal_benign", "x_y"]
    s = _sample(toy_catalog, n=3, class_names=["zeta", "alpha"])
    out = export_dataset(s, tmp_path / "z", flag="custom")
    assert (out / "custom_synthetic.npz").is_file()
    folder = ImageFolder(str(out / "train"))
    assert folder.classes == ["0_zeta", "1_alpha"]
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_file = {Path(p).relative_to(out).as_posix(): t for p, t in folder.samples}
    assert [by_file[r["filename"]] for r in rows] == s.labels.tolist()
    assert rows[0]["label_name"] in {"zeta", "alpha"}


def _cli(argv):
    import argparse

    from ensemble.cli import export as export_cli

    parser = argparse.ArgumentParser()
    export_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result = args.func(args)  # a command returns a dict of what it wrote (main prints it with --json)
    return 0 if isinstance(result, dict) else result


def test_cli_export(toy_catalog, tmp_path, capsys):
    sel = ENS.save(tmp_path / "selected.json")
    zoo = str(toy_catalog.zoo_dir)
    out = tmp_path / "export"
    assert _cli(["export", "--zoo", zoo, "--selected", str(sel), "--n-per-class", "4",
                 "--seed", "1", "--out", str(out), "--device", "cpu"]) == 0
    assert "wrote 8 images from 2 generators" in capsys.readouterr().out
    assert len(list(out.rglob("*.png"))) == 8 and (out / "pneumoniamnist_synthetic.npz").is_file()
    with pytest.raises(FileExistsError):
        _cli(["export", "--zoo", zoo, "--selected", str(sel), "--n-per-class", "4", "--out", str(out)])
    # Without --n-per-class the real training size sets it: 4,708 PneumoniaMNIST images / 2 classes.
    assert _cli(["export", "--zoo", zoo, "--selected", str(sel), "--formats", "npz", "--overwrite",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert "using 2354" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["class_counts"] == [2354, 2354] and meta["root_seed"] == 0
    assert meta["seed"] == export_seed(0)  # the same stage seed as quickstart's export
    assert not list(out.rglob("*.png"))
