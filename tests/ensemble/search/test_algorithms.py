"""Search algorithms: the registry, the exact front, random and greedy, size bounds."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.scoring.knn import density_coverage
from ensemble.scoring.tables import ScoreTables
from ensemble.search import (
    ALGORITHMS,
    EnsembleSearch,
    get_algorithm,
    igd,
    list_algorithms,
    nondominated,
    register_algorithm,
)


def test_algorithm_registry():
    assert set(list_algorithms()) >= {"nsga2", "random", "exhaustive", "greedy"}
    with pytest.raises(ValueError, match="unknown search algorithm 'annealing'; known: .*nsga2"):
        get_algorithm("annealing")
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm("nsga2", lambda search, archive, seed: None)
    with pytest.raises(ValueError, match="callable"):
        register_algorithm("not-callable", 3)


def test_a_registered_algorithm_runs_through_the_estimator(toy):
    def pairs_only(search, archive, seed):
        P = archive.P
        X = np.zeros((P - 1, P), bool)
        X[np.arange(P - 1), np.arange(P - 1)] = True
        X[np.arange(P - 1), np.arange(1, P)] = True
        archive.evaluate(X, 1)
        archive.end_generation(1)
        return "done"

    register_algorithm("neighbour-pairs", pairs_only)
    try:
        s = EnsembleSearch("neighbour-pairs").fit(toy[2])
    finally:
        ALGORITHMS.remove("neighbour-pairs")
    assert s.result_ == "done" and s.n_evals_ == toy[2].n_generators - 1
    assert (s.front_["size"] == 2).all() and len(s.history_) == 1
    assert "neighbour-pairs" not in list_algorithms()


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


def test_random_and_greedy(toy, exact):
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
    with pytest.raises(ValueError, match="lambdas"):
        EnsembleSearch("greedy", lambdas=(-1.0,)).fit(toy[2])


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
