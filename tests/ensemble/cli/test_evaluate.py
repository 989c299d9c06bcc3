"""``gan-ensemble evaluate``: arms from a selection, train per arm and seed, files and summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.downstream import METRICS
from ensemble.search.result import Ensemble

TOYS = Path(__file__).resolve().parents[1]  # tests/ensemble: _synth_toys.py, a callable generator


def test_cli_evaluate(tmp_path, monkeypatch, pneumonia_small, data_root, capsys):
    import argparse

    from ensemble.cli import evaluate as evaluate_cli
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(TOYS))
    cat = Catalog(tmp_path / "zoo")
    for s in range(3):
        cat.register_callable("_synth_toys:make_toy", name=f"toy{s}@0", num_classes=2,
                              image_shape=(28, 28), dataset="pneumoniamnist", style=s)
    sel = Ensemble(["toy0@0", "toy1@0"], rule="max-intra").save(tmp_path / "selected.json")
    # A small file in MedMNIST layout stands in for the real splits (real images, fewer of them).
    small = tmp_path / "pneumoniamnist_small.npz"
    from ensemble.data import load_medmnist

    val, test = (load_medmnist("pneumoniamnist", split=s, root=data_root, download=False)
                 for s in ("val", "test"))
    parts = {"train": pneumonia_small.subset(96, seed=0), "val": val.subset(48, seed=0),
             "test": test.subset(48, seed=0)}
    np.savez(small, **{f"{k}_images": v.images for k, v in parts.items()},
             **{f"{k}_labels": v.labels[:, None] for k, v in parts.items()})
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "eval"
    args = parser.parse_args(["evaluate", "--zoo", str(cat.zoo_dir), "--selected", str(sel),
                              "--dataset", str(small), "--seeds", "0,1", "--epochs", "1",
                              "--min-steps", "0", "--warmup-steps", "0",
                              "--n-per-class", "8", "--n-random", "1", "--device", "cpu",
                              "--out", str(out)])
    assert isinstance(args.func(args), dict)  # the command's result (printed by main with --json)
    df = pd.read_csv(out / "comparison.csv")
    assert set(df["arm"]) == {"real", "G*", "single:toy0@0", "single:toy1@0", "single:toy2@0",
                              "naive (all pooled)", "random-ensemble-0", "best single, equal samples"}
    assert len(df) == 16 and set(METRICS) <= set(df.columns)
    assert df["threshold"].notna().all()  # --threshold val by default (a binary task)
    s = pd.read_csv(out / "summary.csv")
    assert {"single (mean)", "single (best)"} <= set(s["arm"])
    assert (out / "downstream.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "G*" in text and "roc_auc" in text  # AUC beside g-mean
