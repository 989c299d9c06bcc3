"""The ``validated`` rule: candidates along the front, a stratified split of the real validation
split, a brief training per candidate, every candidate's score in selected.json, never the test
split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.search import (
    EnsembleSearch,
    ValidationContext,
    rule_needs_context,
    split_halves,
    validation_candidates,
    validation_cost,
)
from ensemble.search.rules import knee, max_fidelity

TOYS = Path(__file__).resolve().parents[1]  # tests/ensemble: _synth_toys.py, a callable generator


def _front(n: int) -> pd.DataFrame:
    intra = np.linspace(0.9, 0.3, n)
    inter = np.linspace(0.8, 0.1, n) ** 2  # convex: a clear knee
    return pd.DataFrame({"members": [[f"g{i}", f"g{i + 1}"] for i in range(n)], "size": 2,
                         "intra_d": intra, "inter_d": inter})


@pytest.mark.parametrize("n,k", [(20, 8), (9, 8), (5, 8), (30, 3), (12, 2)])
def test_candidates_spread_with_max_fidelity_and_knee(n, k):
    front = _front(n)
    rows = validation_candidates(front, k)
    assert rows == sorted(set(rows)) and len(rows) == min(n, k)
    assert max_fidelity(front)[0] in rows and knee(front)[0] in rows
    if n > k > 2:  # spread: both ends of the front, no gap over twice an even spacing's
        assert rows[0] == 0 and rows[-1] == n - 1
        assert max(np.diff(rows)) <= 2 * math.ceil((n - 1) / (k - 1))
    with pytest.raises(ValueError, match="at least 2"):
        validation_candidates(front, 1)


def test_split_halves_is_seeded_and_stratified():
    y = np.array([0] * 30 + [1] * 71)
    a, b = split_halves(y, 5)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == len(y)
    assert (y[a] == 0).sum() == 15 and (y[a] == 1).sum() == 35
    a2, b2 = split_halves(y, 5)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert not np.array_equal(a, split_halves(y, 6)[0])


@pytest.fixture
def toy_setup(tmp_path, monkeypatch):
    """Six toy generators g0..g5 (real callables), score tables over them, and toy real splits."""
    from ensemble.scoring.tables import ScoreTables
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(TOYS))
    from _synth_toys import make_toy

    cat = Catalog(tmp_path / "zoo")
    for s in range(6):
        cat.register_callable("_synth_toys:make_toy", name=f"g{s}", num_classes=2, image_shape=(28, 28),
                              dataset="pneumoniamnist", style=s)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 8)).astype(np.float32)
    fakes = {f"g{i}": (rng.normal(size=(60, 8)) * (0.6 + 0.2 * i) + 0.3 * i).astype(np.float32)
             for i in range(6)}
    tables = ScoreTables.from_features(real, fakes, k=5, progress=False)
    ref = make_toy(style=2)
    ty = np.tile([0, 1], 40)
    vy = np.tile([0, 1, 1], 30)
    train = (ref.sample(len(ty), labels=ty, seed=1), ty)
    val = (ref.sample(len(vy), labels=vy, seed=2), vy)
    return cat, tables, train, val


def test_validated_rule_records_every_candidate(toy_setup):
    cat, tables, train, val = toy_setup
    search = EnsembleSearch(algorithm="exhaustive", seed=0, progress=False).fit(tables)
    ctx = ValidationContext(cat, train, val, steps=4, warmup_steps=2, samples_per_epoch=64,
                            n_per_class=8, device="cpu", seed=3)
    assert rule_needs_context("validated") and not rule_needs_context("knee")
    cost = validation_cost(search.front_, ctx, k=4)
    assert cost["candidates"] == min(4, len(search.front_)) and cost["steps"] == 4 * cost["candidates"]
    e = search.select("validated", context=ctx, k=4)
    info = e.meta["rule_info"]
    assert e.rule == "validated" and e.rule_params == {"k": 4}  # the context is data, not a setting
    rows = [c["row"] for c in info["candidates"]]
    assert rows == validation_candidates(search.front_, 4)
    scores = [c["score"] for c in info["candidates"]]
    chosen = info["candidates"][int(np.argmax(scores))]
    assert info["chosen_row"] == chosen["row"] and e.members == chosen["members"]
    assert all(c["steps"] >= 4 and c["val_roc_auc"] == c["score"] for c in info["candidates"])
    assert info["n_val_stop"] + info["n_val_score"] == len(val[1])
    json.dumps(e.to_dict())  # selected.json can hold it
    again = search.select("validated", context=ctx, k=4)  # seeded: the same scores
    assert [c["score"] for c in again.meta["rule_info"]["candidates"]] == scores


def test_validated_rule_without_context_says_what_it_needs(toy_setup):
    _, tables, _, _ = toy_setup
    search = EnsembleSearch(algorithm="exhaustive", seed=0, progress=False).fit(tables)
    with pytest.raises(ValueError, match="needs context=ValidationContext.*--zoo"):
        search.select("validated")


def test_cli_search_validated_never_reads_the_test_split(tmp_path, toy_setup, data_root, capsys):
    """End to end on real validation images, with a data file that has no test split at all."""
    import argparse

    from ensemble.cli import search as search_cli
    from ensemble.data import load_medmnist
    from ensemble.search.result import Ensemble

    cat, tables, _, _ = toy_setup
    tables.save(tmp_path / "tables.npz")
    parts = {s: load_medmnist("pneumoniamnist", split=s, root=data_root, download=False).subset(n, seed=0)
             for s, n in (("train", 200), ("val", 120))}
    no_test = tmp_path / "data"
    no_test.mkdir()
    np.savez(no_test / "pneumoniamnist.npz", **{f"{k}_images": v.images for k, v in parts.items()},
             **{f"{k}_labels": v.labels[:, None] for k, v in parts.items()})
    with np.load(no_test / "pneumoniamnist.npz") as z:
        assert "test_images" not in z.files
    parser = argparse.ArgumentParser()
    search_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "search"
    base = ["search", "--tables", str(tmp_path / "tables.npz"), "--out", str(out), "--algorithm",
            "exhaustive", "--rule", "validated"]
    args = parser.parse_args(base)
    with pytest.raises(ValueError, match="--zoo"):
        args.func(args)
    args = parser.parse_args(base + ["--zoo", str(cat.zoo_dir), "--data-root", str(no_test), "--k", "3",
                                     "--val-steps", "4", "--val-warmup-steps", "2", "--n-per-class", "8",
                                     "--device", "cpu"])
    assert isinstance(args.func(args), dict)  # the command's result (printed by main with --json)
    text = capsys.readouterr().out
    assert text.index("validated: 3 candidates") < text.index("G* (validated)")  # the cost first
    sel = Ensemble.load(out / "selected.json")
    assert sel.rule == "validated" and len(sel.meta["rule_info"]["candidates"]) == 3
    assert sel.meta["rule_info"]["n_val_stop"] + sel.meta["rule_info"]["n_val_score"] == 120
