"""EnsembleSearch: the scikit-learn contract, determinism, learned state, selection, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from ensemble.scoring.knn import d_score
from ensemble.search import Ensemble, EnsembleSearch, igd


# ---------------------------------------------------------------------------- sklearn contract
def test_clone_get_params_set_params():
    s = EnsembleSearch(seed=3)
    c = clone(s)
    assert c is not s and c.get_params() == s.get_params() and c.seed == 3
    params = EnsembleSearch().get_params(deep=True)
    assert params == {"algorithm": "nsga2", "pop_size": 100, "n_gen": 200, "seed": 0, "min_size": 2,
                      "max_size": None, "crossover": "two-point", "mutation_prob": None,
                      "init_density": None, "n_evals": None, "lambdas": None, "progress": False,
                      "objectives": ("intra-d", "inter-d"), "keep_degenerate": False,
                      "exclude_memorising": False}
    assert s.set_params(pop_size=40, crossover="hux") is s
    assert (s.pop_size, s.crossover) == (40, "hux")
    with pytest.raises(ValueError, match="Invalid parameter"):
        s.set_params(population=3)


def test_constructor_only_stores_and_fit_validates(toy):
    s = EnsembleSearch(min_size=0, crossover="uniform", algorithm="annealing")  # no error yet
    assert s.min_size == 0 and not hasattr(s, "front_")
    with pytest.raises(ValueError):
        s.fit(toy[2])
    assert not hasattr(s, "front_")


def test_fit_returns_self_and_clone_forgets_learned_state(toy):
    s = EnsembleSearch(pop_size=20, n_gen=5, seed=1)
    assert s.fit(toy[2]) is s
    learned = {k for k in vars(s) if k.endswith("_")}
    assert learned == {"front_", "history_", "evaluated_", "result_", "hv_ref_", "tables_names_",
                       "tables_meta_", "n_evals_", "max_size_", "objectives_", "excluded_",
                       "degenerate_excluded_", "memorising_excluded_", "memorisation_"}
    c = clone(s)
    assert not any(k.endswith("_") for k in vars(c))
    pd.testing.assert_frame_equal(c.fit(toy[2]).front_, s.front_)


# ---------------------------------------------------------------------------- determinism
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


# ---------------------------------------------------------------------------- select
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


# ---------------------------------------------------------------------------- bad input
def test_bad_input(toy):
    tables = toy[2]
    with pytest.raises(ValueError, match="unknown search algorithm .*known: .*nsga2"):
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


def test_d_score_consistency(toy):
    tables = toy[2]
    mask = np.zeros(tables.n_generators, bool)
    mask[[0, 3, 5]] = True
    dens, cov = tables.density_coverage(mask)
    assert tables.intra_d(mask) == pytest.approx(d_score(dens, cov))
