"""The archive of evaluations: what it records, its front, its history, batch independence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.search import Archive, hv_reference


def _masks(P, rows):
    X = np.zeros((len(rows), P), bool)
    for i, r in enumerate(rows):
        X[i, list(r)] = True
    return X


def test_evaluate_records_only_in_range_masks(toy):
    tables = toy[2]
    P = tables.n_generators
    a = Archive(tables, min_size=2, max_size=3, hv_ref=hv_reference(tables))
    X = _masks(P, [(0,), (0, 1), (2, 3, 4), (0, 1, 2, 3)])
    F = a.evaluate(X, gen=1)
    assert a.n_evals == 4
    assert np.isinf(F[[0, 3]]).all() and np.isfinite(F[[1, 2]]).all()
    assert F[1, 0] == pytest.approx(-tables.intra_d(X[1:2])[0])
    assert F[2, 1] == pytest.approx(tables.inter_d(X[2:3])[0])
    packed, obj, size, gen = a.evaluated()
    assert size.tolist() == [2, 3] and gen.tolist() == [1, 1] and obj.shape == (2, 2)
    assert (np.unpackbits(packed, axis=1, count=P).astype(bool) == X[1:3]).all()
    with pytest.raises(ValueError, match=f"shape \\(n, {P}\\)"):
        a.evaluate(np.zeros((2, P + 1), bool), gen=1)


def test_objectives_of_any_size_are_not_recorded(toy):
    tables = toy[2]
    P = tables.n_generators
    a = Archive(tables, 2, P, hv_reference(tables))
    X = _masks(P, [(4,), (1, 5)])
    intra, inter = a.objectives(X)
    assert inter[0] == 0.0 and a.n_evals == 0 and len(a.evaluated()[1]) == 0
    F = a.evaluate(X[1:], 1)
    assert (-F[0, 0], F[0, 1]) == (intra[1], inter[1])


def test_front_is_distinct_nondominated_and_sorted(toy):
    tables = toy[2]
    P = tables.n_generators
    a = Archive(tables, 2, P, hv_reference(tables))
    rng = np.random.default_rng(0)
    X = rng.random((300, P)) < 0.3
    a.evaluate(X, 1)
    a.evaluate(X[:50], 2)  # re-evaluations do not repeat on the front
    a.end_generation(2)
    front = a.front(tables.names)
    assert list(front.columns) == ["members", "size", "intra_d", "inter_d"]
    assert not front["members"].map(tuple).duplicated().any()
    assert front["intra_d"].is_monotonic_decreasing and front["inter_d"].is_monotonic_decreasing
    _, obj, _, _ = a.evaluated()
    for intra, inter in front[["intra_d", "inter_d"]].to_numpy():
        assert not ((obj[:, 0] > intra) & (obj[:, 1] <= inter)).any()
    assert a.history == [{"n_gen": 2, "n_evals": 350, "hypervolume": a.history[0]["hypervolume"],
                          "front_size": a.history[0]["front_size"]}]
    assert 0 < a.history[0]["hypervolume"] <= 1


def test_batch_size_changes_nothing_but_rounding(toy):
    tables = toy[2]
    P = tables.n_generators
    X = np.random.default_rng(1).random((700, P)) < 0.4
    runs = []
    for batch in (None, 7):
        a = Archive(tables, 2, P, hv_reference(tables))
        if batch is not None:
            a.batch = batch
        F = a.evaluate(X, 1)
        a.end_generation(1)
        runs.append((F, a.front(tables.names), a.history))
    # the same values up to the last bits of the batched matrix products
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1], rtol=1e-12, atol=0)
    assert runs[0][2][0]["hypervolume"] == pytest.approx(runs[1][2][0]["hypervolume"], rel=1e-12)


def test_empty_archive(toy):
    tables = toy[2]
    a = Archive(tables, 2, 3, hv_reference(tables))
    assert len(a.front(tables.names)) == 0
    packed, obj, size, gen = a.evaluated()
    assert packed.shape == (0, 2) and obj.shape == (0, 2) and len(size) == len(gen) == 0
