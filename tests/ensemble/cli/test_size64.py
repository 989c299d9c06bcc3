"""``--size 64`` reads MedMNIST+ ``{flag}_64.npz`` in every command that reads real data.

Only the 28-px PneumoniaMNIST file exists offline: this test makes ``pneumoniamnist_64.npz`` by
resizing it (bilinear, PIL), so the real MedMNIST+ path is what runs. The generators are 64-px
toy callables (tests/ensemble/_synth_toys.py), so score, search, export and evaluate all run at 64.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ensemble.cli import main

pytestmark = pytest.mark.slow

TOYS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root64(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("data64")
    with np.load(data_root / "pneumoniamnist.npz") as z:
        arrays = {k: z[k] for k in z.files}
    # a smaller, shuffled train split keeps the test quick (the file's train split is sorted by class)
    keep = np.random.default_rng(0).permutation(len(arrays["train_images"]))[:600]
    arrays["train_images"], arrays["train_labels"] = arrays["train_images"][keep], arrays["train_labels"][keep]
    for k in [k for k in arrays if k.endswith("_images")]:
        arrays[k] = np.stack([np.asarray(Image.fromarray(im).resize((64, 64), Image.BILINEAR))
                              for im in arrays[k]])
    np.savez(root / "pneumoniamnist_64.npz", **arrays)
    return root


def test_stage_commands_at_64_px(root64, tmp_path, monkeypatch, capsys):
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(TOYS))
    cat = Catalog(tmp_path / "zoo")
    for s in range(3):
        cat.register_callable("_synth_toys:make_toy", name=f"toy{s}@0", num_classes=2, image_shape=(64, 64),
                              dataset="pneumoniamnist", style=s, size=64)
    data = ["--dataset", "pneumoniamnist", "--data-root", str(root64), "--size", "64"]

    def run(argv):
        assert main([*map(str, argv), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    r = run(["score", "--zoo", cat.zoo_dir, *data, "--n-samples", "80", "--subset", "300",
             "--label-epochs", "0", "--device", "cpu", "--out", tmp_path / "t.npz"])
    assert r["n_real"] == 300 and r["n_generators"] == 3
    run(["search", "--tables", tmp_path / "t.npz", "--out", tmp_path / "s", "--pop-size", "8", "--n-gen", "3"])
    sel = tmp_path / "s" / "selected.json"
    r = run(["export", "--zoo", cat.zoo_dir, "--selected", sel, "--n-per-class", "4", "--device", "cpu",
             "--out", tmp_path / "x"])
    with np.load(tmp_path / "x" / "pneumoniamnist_synthetic.npz") as z:
        assert z["train_images"].shape == (8, 64, 64)
    r = run(["evaluate", "--zoo", cat.zoo_dir, "--selected", sel, *data, "--seeds", "0", "--epochs", "1", "--min-steps", "0", "--warmup-steps", "0",
             "--n-per-class", "10", "--n-random", "1", "--no-singles", "--device", "cpu",
             "--out", tmp_path / "e"])
    assert {row["arm"] for row in r["summary"]} >= {"real", "G*"}
    # the 28-px file at --size 64 is refused, naming the size
    assert main(["score", "--zoo", str(cat.zoo_dir), "--dataset", "pneumoniamnist", "--data-root",
                 str(root64), "--size", "128", "--device", "cpu", "--out", str(tmp_path / "u.npz")]) == 2
    assert "pneumoniamnist_128.npz" in capsys.readouterr().err
