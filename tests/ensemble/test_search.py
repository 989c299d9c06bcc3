"""Ensemble search: NSGA-II vs the exact front, rules, other algorithms, bad input, the CLI."""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd
import pytest

from ensemble.scoring.knn import d_score, density_coverage
from ensemble.scoring.tables import ScoreTables
from ensemble.search import (
    EnsembleSearch,
    get_rule,
    hypervolume,
    igd,
    list_algorithms,
    list_rules,
    load_front,
    nondominated,
    register_rule,
)
from ensemble.selected import Ensemble


def make_features(P: int = 13, n_real: int = 400, dim: int = 32, n_clusters: int = 8, seed: int = 0):
    """Real = Gaussian mixture; each generator covers some clusters with its own spread and shift;
    about a third collapse onto a few modes. Gives fronts of 8-9 ensembles of 2-5 members."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4.0, size=(n_clusters, dim))
    weights = rng.dirichlet(np.full(n_clusters, 3.0))
    real = centers[rng.choice(n_clusters, size=n_real, p=weights)] + rng.normal(0, 1.0, (n_real, dim))
    fakes = {}
    for g in range(P):
        n = int(rng.integers(150, 301))
        clusters = rng.choice(n_clusters, size=int(rng.integers(1, n_clusters)), replace=False)
        spread = rng.uniform(0.5, 1.4)
        shift = rng.normal(0, rng.uniform(0.0, 0.6), size=dim)
        x = centers[rng.choice(clusters, size=n)] + shift + rng.normal(0, spread, (n, dim))
        if rng.random() < 0.3:  # mode collapse
            modes = x[rng.choice(n, size=5, replace=False)]
            x = modes[rng.integers(0, 5, size=n)] + rng.normal(0, 0.2, (n, dim))
        fakes[f"G{g:02d}"] = x.astype(np.float32)
    return real.astype(np.float32), fakes


@pytest.fixture(scope="module")
def toy():
    real, fakes = make_features()
    tables = ScoreTables.from_features(real, fakes, k=5, progress=False, meta={"backbone": "toy"})
    return real, fakes, tables


@pytest.fixture(scope="module")
def exact(toy):
    return EnsembleSearch("exhaustive").fit(toy[2])


# ---------------------------------------------------------------------------- the exact front
def test_exhaustive_front_is_exact_and_matches_pooled_features(toy, exact):
    real, fakes, tables = toy
    P = tables.n_generators
    assert exact.n_evals_ == 2**P - 1 - P  # every subset with at least 2 members
    assert len(exact.evaluated_) == exact.n_evals_
    front = exact.front_
    assert len(front) >= 5, "toy front should be non-trivial"
    assert front["intra_d"].is_monotonic_decreasing
    # brute force: no evaluated ensemble dominates a front point, every other one is dominated
    ev = exact.evaluated_[["intra_d", "inter_d"]].to_numpy()
    fr = front[["intra_d", "inter_d"]].to_numpy()
    for a in fr:
        dom = (ev[:, 0] >= a[0]) & (ev[:, 1] <= a[1]) & ((ev[:, 0] > a[0]) | (ev[:, 1] < a[1]))
        assert not dom.any()
    on_front = nondominated(np.column_stack([-ev[:, 0], ev[:, 1]]))
    assert on_front.sum() == len(front)
    # objectives of front members, recomputed the reference way from pooled features
    for _, row in front.iloc[[0, len(front) // 2, -1]].iterrows():
        pooled = np.concatenate([fakes[m] for m in row["members"]])
        dc = density_coverage(real=real, fake=pooled, k=5, precision_recall=False)
        assert row["intra_d"] == pytest.approx(dc["d"], rel=1e-9)
        pairs = [(a, b) for i, a in enumerate(row["members"]) for b in row["members"][i + 1:]]
        ds = []
        for a, b in pairs:
            ab = density_coverage(real=fakes[a], fake=fakes[b], k=5, precision_recall=False)["d"]
            ba = density_coverage(real=fakes[b], fake=fakes[a], k=5, precision_recall=False)["d"]
            ds.append(0.5 * (ab + ba))
        assert row["inter_d"] == pytest.approx(np.mean(ds), rel=1e-9, abs=1e-12)


def test_nsga2_finds_the_exact_front_for_most_seeds(toy, exact):
    reference = exact.front_objectives()
    hits = 0
    for seed in range(5):
        s = EnsembleSearch(seed=seed).fit(toy[2])
        assert s.n_evals_ <= 100 * 200
        found = s.front_objectives()
        if igd(found, reference) < 1e-9 and igd(reference, found) < 1e-9:
            hits += 1
        assert s.hypervolume_ <= exact.hypervolume_ + 1e-12
    assert hits >= 4, f"NSGA-II matched the exact front for only {hits} of 5 seeds"


def test_same_seed_same_front_and_history(toy):
    kw = dict(pop_size=40, n_gen=30)
    a = EnsembleSearch(seed=3, **kw).fit(toy[2])
    b = EnsembleSearch(seed=3, **kw).fit(toy[2])
    pd.testing.assert_frame_equal(a.front_, b.front_)
    pd.testing.assert_frame_equal(a.history_, b.history_)
    pd.testing.assert_frame_equal(a.evaluated_, b.evaluated_)
    c = EnsembleSearch(seed=4, **kw).fit(toy[2])
    assert not a.evaluated_.equals(c.evaluated_)


def test_history_and_learned_state(toy):
    s = EnsembleSearch(pop_size=30, n_gen=25, crossover="hux", seed=1).fit(toy[2])
    h = s.history_
    assert list(h.columns[:3]) == ["n_gen", "n_evals", "hypervolume"]
    assert len(h) == 25 and h["n_gen"].tolist() == list(range(1, 26))
    assert h["n_evals"].is_monotonic_increasing and h["n_evals"].iloc[-1] == s.n_evals_
    assert np.all(np.diff(h["hypervolume"]) >= -1e-12)  # archive front never loses volume
    assert h["hypervolume"].iloc[-1] == pytest.approx(s.hypervolume_)
    assert 0 < s.hypervolume_ <= 1
    assert s.hv_ref_["normalised_ref"] == [1.0, 1.0] and s.hv_ref_["inter_d"] > 0
    assert s.result_ is not None and s.result_.F.shape[1] == 2
    assert s.tables_names_ == toy[2].names
    assert set(s.front_.columns) >= {"members", "size", "intra_d", "inter_d"}
    assert all(len(m) == n for m, n in zip(s.front_["members"], s.front_["size"], strict=True))


# ---------------------------------------------------------------------------- other algorithms
def test_algorithms_registry_and_random_greedy(toy, exact):
    assert set(list_algorithms()) >= {"nsga2", "random", "exhaustive", "greedy"}
    reference = exact.front_objectives()
    r = EnsembleSearch("random", pop_size=50, n_gen=20, seed=0).fit(toy[2])
    assert r.result_ is None and r.n_evals_ == 1000 and len(r.history_) == 20
    r2 = EnsembleSearch("random", pop_size=50, n_gen=20, seed=0, n_evals=333).fit(toy[2])
    assert r2.n_evals_ == 333
    g = EnsembleSearch("greedy").fit(toy[2])
    for s in (r, g):
        assert s.hypervolume_ <= exact.hypervolume_ + 1e-12
        assert igd(s.front_objectives(), reference) >= 0
        F = s.front_objectives()
        assert nondominated(np.column_stack([-F[:, 0], F[:, 1]])).all()
    assert g.front_["members"].map(len).min() >= 2


@pytest.mark.parametrize("algorithm", ["nsga2", "random", "exhaustive", "greedy"])
def test_size_bounds_are_respected(toy, algorithm):
    s = EnsembleSearch(algorithm, pop_size=30, n_gen=10, min_size=3, max_size=5, seed=0).fit(toy[2])
    assert s.evaluated_["size"].between(3, 5).all()
    assert s.front_["size"].between(3, 5).all()


def test_exhaustive_refuses_large_pools():
    rng = np.random.default_rng(0)
    fakes = {f"g{i}": rng.normal(size=(8, 4)).astype(np.float32) for i in range(21)}
    tables = ScoreTables.from_features(rng.normal(size=(30, 4)).astype(np.float32), fakes, progress=False)
    with pytest.raises(ValueError, match="P <= 20"):
        EnsembleSearch("exhaustive").fit(tables)


# ---------------------------------------------------------------------------- rules
def _front(rows):
    df = pd.DataFrame(rows, columns=["intra_d", "inter_d", "size"])
    df["members"] = [[f"m{i}_{j}" for j in range(n)] for i, n in enumerate(df["size"])]
    return df.sort_values(["intra_d", "inter_d", "size"], ascending=[False, True, True]).reset_index(drop=True)


def test_rule_registry():
    assert set(list_rules()) >= {"max-fidelity", "knee", "asf", "smallest-within"}
    with pytest.raises(ValueError, match="known rules: .*max-fidelity"):
        get_rule("best")
    with pytest.raises(ValueError, match="already registered"):
        register_rule("knee", lambda front: (0, ""))


def test_max_fidelity_ties():
    f = _front([(0.9, 0.5, 6), (0.9, 0.3, 7), (0.9, 0.3, 4), (0.5, 0.1, 2)])
    i, note = get_rule("max-fidelity")(f)
    assert (f.loc[i, "inter_d"], f.loc[i, "size"]) == (0.3, 4) and note == ""


def test_knee_and_its_fallbacks(caplog):
    knee = get_rule("knee")
    f = _front([(1.0, 1.0, 9), (0.9, 0.2, 5), (0.5, 0.1, 3), (0.0, 0.0, 2)])
    i, note = knee(f)
    assert f.loc[i, "intra_d"] == 0.9 and note == ""
    with caplog.at_level(logging.WARNING, logger="ensemble.search"):
        i, note = knee(_front([(1.0, 1.0, 9), (0.2, 0.1, 3)]))
    assert i == 0 and "fell back to max-fidelity" in note and "fell back" in caplog.text
    concave = _front([(1.0, 1.0, 9), (0.5, 0.9, 5), (0.0, 0.0, 2)])
    i, note = knee(concave)
    assert concave.loc[i, "intra_d"] == 1.0 and "no front point" in note


def test_asf_weights_move_the_choice():
    asf = get_rule("asf")
    f = _front([(1.0, 1.0, 9), (0.8, 0.4, 6), (0.5, 0.2, 4), (0.1, 0.0, 2)])
    hi_fid, _ = asf(f, weights=(0.95, 0.05))
    lo_red, _ = asf(f, weights=(0.05, 0.95))
    mid, _ = asf(f, weights="0.5,0.5")
    assert f.loc[hi_fid, "intra_d"] > f.loc[mid, "intra_d"] >= f.loc[lo_red, "intra_d"]
    assert f.loc[lo_red, "inter_d"] <= 0.2
    for bad in [(1, 0), (1, 2, 3), "a,b", (-1, 1)]:
        with pytest.raises(ValueError, match="weights"):
            asf(f, weights=bad)


def test_smallest_within():
    rule = get_rule("smallest-within")
    f = _front([(1.0, 0.9, 9), (0.995, 0.5, 5), (0.995, 0.4, 5), (0.97, 0.2, 3), (0.5, 0.1, 2)])
    i, _ = rule(f)
    assert (f.loc[i, "size"], f.loc[i, "inter_d"]) == (5, 0.4)
    i, _ = rule(f, tol=0.05)
    assert f.loc[i, "size"] == 3
    i, _ = rule(f, tol=0.0)
    assert f.loc[i, "size"] == 9
    with pytest.raises(ValueError, match="tol"):
        rule(f, tol=1.5)


def test_select_returns_an_ensemble_with_meta(toy, exact, tmp_path):
    e = exact.select()
    assert isinstance(e, Ensemble) and e.rule == "max-fidelity"
    assert e.members == exact.front_["members"].iloc[0]
    assert e.intra_d == exact.front_["intra_d"].max()
    assert e.meta["tables"]["backbone"] == "toy" and e.meta["algorithm"] == "exhaustive"
    assert e.meta["seed"] == 0 and e.meta["n_generators"] == toy[2].n_generators
    mask = toy[2].mask_of(e.members)
    assert toy[2].intra_d(mask) == pytest.approx(e.intra_d)
    back = Ensemble.load(e.save(tmp_path / "selected.json"))
    assert back.members == e.members and back.meta["front_size"] == len(exact.front_)
    w = exact.select("asf", weights=(0.3, 0.7))
    assert w.rule_params == {"weights": [0.3, 0.7]}
    with pytest.raises(ValueError, match="bad parameters"):
        exact.select("max-fidelity", tol=0.1)
    with pytest.raises(ValueError, match="unknown selection rule"):
        exact.select("nope")
    with pytest.raises(ValueError, match="not fitted"):
        EnsembleSearch().select()


# ---------------------------------------------------------------------------- helpers
def test_hypervolume_igd_nondominated():
    assert hypervolume(np.array([[0.5, 0.5]]), [1, 1]) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.5, 0.5], [0.25, 0.75], [2.0, 0.0]]), [1, 1]) == pytest.approx(0.3125)
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0
    R = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert igd(R, R) == 0.0
    assert igd(R[:1], R) == pytest.approx(np.sqrt(2) / 2)
    F = np.array([[1.0, 1.0], [0.0, 2.0], [1.0, 1.0], [2.0, 2.0], [np.nan, 0.0], [1.0, 3.0]])
    assert nondominated(F).tolist() == [True, True, True, False, False, False]


# ---------------------------------------------------------------------------- bad input
def test_bad_input(toy):
    tables = toy[2]
    with pytest.raises(ValueError, match="unknown search algorithm .*known algorithms: .*nsga2"):
        EnsembleSearch("annealing").fit(tables)
    with pytest.raises(ValueError, match="at least 2"):
        EnsembleSearch().fit(tables.subset(tables.names[:1]))
    with pytest.raises(ValueError, match="min_size=14 exceeds"):
        EnsembleSearch(min_size=14).fit(tables)
    with pytest.raises(ValueError, match="below min_size"):
        EnsembleSearch(min_size=4, max_size=3).fit(tables)
    with pytest.raises(ValueError, match="min_size must be an integer >= 1"):
        EnsembleSearch(min_size=0).fit(tables)
    with pytest.raises(ValueError, match="crossover"):
        EnsembleSearch(crossover="uniform").fit(tables)
    with pytest.raises(ValueError, match="mutation_prob"):
        EnsembleSearch(mutation_prob=2.0).fit(tables)
    with pytest.raises(ValueError, match="ScoreTables"):
        EnsembleSearch().fit(np.zeros((3, 3)))
    broken = tables.subset(tables.names)
    broken.d[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        EnsembleSearch().fit(broken)


# ---------------------------------------------------------------------------- CLI
def _cli(argv):
    from ensemble.cli import search as cli_search

    parser = argparse.ArgumentParser(prog="gan-ensemble")
    cli_search.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_search_writes_outputs(toy, tmp_path, capsys):
    path = toy[2].save(tmp_path / "tables.npz")
    out = tmp_path / "search"
    rc = _cli(["search", "--tables", str(path), "--out", str(out), "--pop-size", "40", "--n-gen", "30",
               "--rule", "asf", "--weights", "0.7,0.3", "--seed", "2"])
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
    assert sel["meta"]["seed"] == 2 and sel["meta"]["pop_size"] == 40
    assert len(pd.read_csv(out / "history.csv")) == 30
    assert not list(out.glob(".*.tmp"))


def test_cli_search_errors(toy, tmp_path, capsys):
    from ensemble.cli import main

    path = toy[2].save(tmp_path / "tables.npz")
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "o"), "--rule", "nope"])
    assert rc == 2 and "unknown selection rule 'nope'" in capsys.readouterr().err
    rc = main(["search", "--tables", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "o"), "--min-size", "99"])
    assert rc == 2 and "min_size=99" in capsys.readouterr().err
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "o"), "--weights", "0.5,0.5"])
    assert rc == 2 and "bad parameters" in capsys.readouterr().err
    assert not (tmp_path / "o" / "selected.json").exists()


def test_d_score_consistency(toy):
    tables = toy[2]
    mask = np.zeros(tables.n_generators, bool)
    mask[[0, 3, 5]] = True
    dens, cov = tables.density_coverage(mask)
    assert tables.intra_d(mask) == pytest.approx(d_score(dens, cov))
