"""``gan-ensemble search``: outputs through save_search_outputs, the pipeline's seed, errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from ensemble.scoring.tables import ScoreTables
from ensemble.search import EnsembleSearch, load_front, load_selected
from ensemble.seeds import search_seed


@pytest.fixture(scope="module")
def tables_path(tmp_path_factory):
    """Score tables of 8 Gaussian generators around a 4-cluster real set."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3.0, size=(4, 8))
    real = (centers[rng.integers(0, 4, 200)] + rng.normal(size=(200, 8))).astype(np.float32)
    fakes = {}
    for g in range(8):
        cl = rng.choice(4, size=int(rng.integers(1, 4)), replace=False)
        n = int(rng.integers(60, 120))
        fakes[f"G{g}"] = (centers[rng.choice(cl, n)] + rng.uniform(0.5, 1.5) * rng.normal(size=(n, 8))
                          ).astype(np.float32)
    tables = ScoreTables.from_features(real, fakes, k=5, progress=False, meta={"backbone": "toy"})
    return tables.save(tmp_path_factory.mktemp("tables") / "tables.npz")


def _cli(argv):
    from ensemble.cli import search as cli_search

    parser = argparse.ArgumentParser(prog="gan-ensemble")
    cli_search.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result = args.func(args)  # a command returns a dict of what it wrote (main prints it with --json)
    return 0 if isinstance(result, dict) else result


def test_cli_search_writes_outputs(tables_path, tmp_path, capsys):
    out = tmp_path / "search"
    rc = _cli(["search", "--tables", str(tables_path), "--out", str(out), "--pop-size", "40",
               "--n-gen", "30", "--rule", "asf", "--weights", "0.7,0.3", "--seed", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "front:" in printed and "G* (asf)" in printed
    for name in ("front.csv", "selected.json", "pareto.png", "history.csv", "evaluated.csv", "hypervolume.png"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    front = load_front(out / "front.csv")
    sel = json.loads((out / "selected.json").read_text())
    assert sel["rule"] == "asf" and sel["rule_params"] == {"weights": [0.7, 0.3]}
    assert sel["members"] in front["members"].tolist()
    assert sel["meta"]["seed"] == search_seed(2) and sel["meta"]["root_seed"] == 2
    assert sel["meta"]["pop_size"] == 40
    assert len(pd.read_csv(out / "history.csv")) == 30
    assert not list(out.glob(".*.tmp"))


def test_cli_search_uses_the_pipelines_search_seed(tables_path, tmp_path):
    """--seed is the root seed: the front is the one quickstart's search stage finds."""
    assert _cli(["search", "--tables", str(tables_path), "--out", str(tmp_path), "--pop-size", "20",
                 "--n-gen", "8", "--seed", "5", "--no-evaluated"]) == 0
    expected = EnsembleSearch(pop_size=20, n_gen=8, seed=search_seed(5)).fit(ScoreTables.load(tables_path))
    pd.testing.assert_frame_equal(load_front(tmp_path), expected.front_, check_dtype=False)
    assert load_selected(tmp_path).members == expected.select().members
    assert not (tmp_path / "evaluated.csv").exists()


def test_cli_search_errors(tables_path, tmp_path, capsys):
    from ensemble.cli import main

    path = tables_path
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "o"), "--rule", "nope"])
    assert rc == 2 and "unknown selection rule 'nope'" in capsys.readouterr().err
    rc = main(["search", "--tables", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "o"), "--min-size", "99"])
    assert rc == 2 and "min_size=99" in capsys.readouterr().err
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "o"), "--weights", "0.5,0.5"])
    assert rc == 2 and "bad parameters" in capsys.readouterr().err
    assert not (tmp_path / "o" / "selected.json").exists()
