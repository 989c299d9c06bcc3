"""A zoo brought from outside, imported in one ``zoo import``, goes through score -> search ->
export -> evaluate on real PneumoniaMNIST (tiny sizes): trained members, a sample folder, an npz
sample set and a TorchScript generator side by side."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from ensemble.cli import main
from zoo.catalog import MANIFEST_COLUMNS, Catalog

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]  # torch.jit notices


def test_imported_zoo_through_every_stage(pneumonia, data_root, tmp_path, capsys, torchscript_generator):
    held = tmp_path / "held"
    # Members trained elsewhere (two snapshots of a tiny run).
    assert main(["zoo", "train", "--dataset", "pneumoniamnist", "--data-root", str(data_root),
                 "--subset", "64", "--families", "dcgan", "--iterations", "2", "--snapshots", "1,2",
                 "--batch-size", "16", "--device", "cpu", "--out", str(held / "trained")]) == 0
    trained = Catalog(held / "trained")
    # A sample folder (StudioGAN layout, PNG) and an npz sample set: 40 images per class each.
    real = pneumonia.subset(80, seed=1)
    for i, (img, label) in enumerate(zip(real.images, real.labels, strict=True)):
        (held / "folder" / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(held / "folder" / str(int(label)) / f"{i}.png")
    np.savez(held / "flipped.npz", images=real.images[:, :, ::-1], labels=real.labels)
    torchscript_generator(held / "g.pt", size=28, hidden=8)

    rows = [{"name": r["name"], "run": "dc", "kind": "native", "dataset": "pneumoniamnist",
             "path": f"trained/{r['path']}"} for _, r in trained.list().iterrows()]
    rows += [
        {"name": "folder", "run": "memorised", "iteration": "1", "kind": "samples", "path": "folder",
         "dataset": "pneumoniamnist"},
        {"name": "flipped", "run": "memorised", "iteration": "2", "kind": "samples",
         "path": "flipped.npz", "dataset": "pneumoniamnist"},
        {"name": "ts", "kind": "torchscript", "path": "g.pt", "latent_dim": "8", "num_classes": "2",
         "image_shape": "28x28", "dataset": "pneumoniamnist"},
    ]
    with open(held / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    zoo_dir = tmp_path / "zoo"
    assert main(["zoo", "import", str(zoo_dir), str(held / "manifest.csv")]) == 0
    assert sorted(Catalog(zoo_dir).list()["kind"]) == ["native", "native", "samples", "samples",
                                                        "torchscript"]

    tables = tmp_path / "tables.npz"
    assert main(["score", "--zoo", str(zoo_dir), "--dataset", "pneumoniamnist", "--data-root",
                 str(data_root), "--backbone", "test_resnet", "--subset", "64", "--n-samples", "32",
                 "--label-epochs", "0", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
                 "--out", str(tables)]) == 0
    assert "5 generators scored" in capsys.readouterr().out
    assert main(["search", "--tables", str(tables), "--out", str(tmp_path / "search"), "--pop-size", "8",
                 "--n-gen", "3"]) == 0
    selected = tmp_path / "search" / "selected.json"
    members = json.loads(selected.read_text())["members"]
    assert members and set(members) <= set(Catalog(zoo_dir).names())
    assert main(["export", "--zoo", str(zoo_dir), "--selected", str(selected), "--n-per-class", "10",
                 "--device", "cpu", "--out", str(tmp_path / "export")]) == 0
    assert len(list((tmp_path / "export" / "train").rglob("*.png"))) == 20
    assert main(["evaluate", "--zoo", str(zoo_dir), "--selected", str(selected), "--data-root",
                 str(data_root), "--seeds", "0", "--epochs", "1", "--min-steps", "0", "--warmup-steps", "0",
                 "--n-per-class", "10", "--n-random", "1",
                 "--no-singles", "--device", "cpu", "--out", str(tmp_path / "evaluate")]) == 0
    assert any((tmp_path / "evaluate").iterdir())
