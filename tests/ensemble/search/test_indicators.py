"""Indicators: hypervolume (pymoo's), non-domination and IGD (ours, checked against pymoo's)."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.indicators.igd import IGD

from ensemble.search import hv_reference, hypervolume, igd, nondominated, normalised_objectives


def test_hypervolume_igd_nondominated():
    assert hypervolume(np.array([[0.5, 0.5]]), [1, 1]) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.5, 0.5], [0.25, 0.75], [2.0, 0.0]]), [1, 1]) == pytest.approx(0.3125)
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0
    R = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert igd(R, R) == 0.0
    assert igd(R[:1], R) == pytest.approx(np.sqrt(2) / 2)
    F = np.array([[1.0, 1.0], [0.0, 2.0], [1.0, 1.0], [2.0, 2.0], [np.nan, 0.0], [1.0, 3.0]])
    assert nondominated(F).tolist() == [True, True, True, False, False, False]


def test_hypervolume_is_pymoos_on_points_inside_the_reference():
    rng = np.random.default_rng(0)
    F = rng.random((200, 2))
    assert hypervolume(F, (1.0, 1.0)) == HV(ref_point=np.array([1.0, 1.0]))(F)
    assert hypervolume(np.array([[np.nan, 0.1], [1.5, 0.2]]), (1.0, 1.0)) == 0.0


def _brute_force_nondominated(F):
    le = (F[:, None, :] <= F[None, :, :]).all(-1)
    lt = (F[:, None, :] < F[None, :, :]).any(-1)
    dominated = (le & lt).any(0)  # some row j dominates row i
    return ~dominated & np.isfinite(F).all(1)


def test_nondominated_is_the_definition():
    rng = np.random.default_rng(1)
    for n in (1, 7, 300):
        F = rng.integers(0, 12, size=(n, 2)).astype(float)  # many ties and duplicates
        np.testing.assert_array_equal(nondominated(F), _brute_force_nondominated(F))
    F = rng.random((200, 2))
    F[[3, 50]] = np.nan
    F[7, 1] = -np.inf
    F[8, 0] = -1.0  # dominates only if inf rows were counted
    expected = _brute_force_nondominated(np.where(np.isfinite(F), F, np.nan))
    np.testing.assert_array_equal(nondominated(F), expected)
    assert not nondominated(F)[[3, 7, 50]].any() and nondominated(F)[8]
    assert not nondominated(np.full((3, 2), np.nan)).any()
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        nondominated(np.zeros((3, 3)))


def test_igd_is_pymoos_where_ranges_are_non_zero_and_finite_where_not():
    rng = np.random.default_rng(2)
    R, A = rng.random((40, 2)), rng.random((25, 2))
    lo, hi = R.min(0), R.max(0)
    theirs = IGD(R, norm_by_dist=True, ideal=lo, nadir=hi)(A)
    assert igd(A, R) == pytest.approx(theirs, rel=1e-12)
    flat = np.column_stack([R[:, 0], np.full(len(R), 0.5)])  # one objective without range
    assert np.isfinite(igd(A, flat))
    assert igd(np.empty((0, 2)), R) == np.inf
    with pytest.raises(ValueError, match="non-empty reference"):
        igd(A, np.empty((0, 2)))


def test_hv_reference_bounds_every_evaluated_ensemble(toy, exact):
    ref = hv_reference(toy[2])
    assert ref == exact.hv_ref_ and ref["normalised_ref"] == [1.0, 1.0]
    ev = exact.evaluated_  # every ensemble of 2+ members
    Z = normalised_objectives(ev["intra_d"], ev["inter_d"], ref)
    assert (Z >= 0).all() and (Z <= 1).all()
    assert ev["inter_d"].max() < ref["inter_d"] and ref["intra_d"] == 0.0
