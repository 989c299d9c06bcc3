"""Paired statistics: bootstrap CI, t-test, Wilcoxon, Holm against a published example."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ensemble.downstream.statistics import holm, paired_test, verdict


def test_paired_test_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    b = rng.normal(0.6, 0.05, size=8)
    up = paired_test(b + 0.1 + rng.normal(0, 0.005, 8), b, n_boot=2000, seed=1)
    assert up["n"] == 8 and up["diff"] == pytest.approx(0.1, abs=0.01)
    assert up["lo"] > 0 and up["p_t"] < 0.001 and up["p_w"] < 0.05
    assert verdict(up) == "beat"
    noise = paired_test(b + rng.normal(0, 0.05, 8), b, n_boot=2000, seed=1)
    assert noise["lo"] < 0 < noise["hi"] and verdict(noise).startswith("did not beat")
    same = paired_test(b, b, n_boot=100, seed=0)
    assert same["diff"] == 0 and same["p_t"] == 1.0 and verdict(same) == "tied with"
    down = paired_test(b - 0.2, b, n_boot=500, seed=0)
    assert verdict(down) == "lost to"
    one = paired_test([0.5], [0.4], n_boot=100, seed=0)
    assert one["n"] == 1 and one["diff"] == pytest.approx(0.1) and np.isnan(one["lo"])
    with pytest.raises(ValueError, match="one length"):
        paired_test([1, 2], [1, 2, 3], n_boot=10, seed=0)


def test_paired_test_uses_scipy_for_every_number():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.7, 0.05, 6), rng.normal(0.65, 0.05, 6)
    t = paired_test(a, b, n_boot=3000, seed=9)
    assert t["p_t"] == stats.ttest_rel(a, b).pvalue
    assert t["p_w"] == stats.wilcoxon(a - b).pvalue
    # the percentile bootstrap of the mean per-seed difference, resampling seeds with the seeded rng
    boot = (a - b)[np.random.default_rng(9).integers(0, 6, size=(3000, 6))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert t["lo"] == pytest.approx(lo, abs=1e-12) and t["hi"] == pytest.approx(hi, abs=1e-12)


def test_holm_matches_the_wikipedia_worked_example():
    # Wikipedia, "Holm–Bonferroni method", Example: four hypotheses with p = 0.01, 0.04, 0.03,
    # 0.005 at alpha = 0.05. Holm rejects H4 (0.005 < 0.05/4) and H1 (0.01 < 0.05/3), then stops at
    # H3 (0.03 > 0.05/2): H1 and H4 are rejected, H2 and H3 are not.
    p = [0.01, 0.04, 0.03, 0.005]
    adj = holm(p)
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [a < 0.05 for a in adj] == [True, False, False, True]


def test_holm_follows_its_definition_and_keeps_nan():
    adj = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adj[0] == pytest.approx(0.04) and adj[2] == pytest.approx(0.09)
    assert adj[1] == pytest.approx(0.09) and adj[4] == pytest.approx(0.5) and np.isnan(adj[3])
    rng = np.random.default_rng(2)
    p = rng.random(12) ** 3
    adj = np.array(holm(p))
    order = np.argsort(p)
    m = len(p)
    want = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    np.testing.assert_allclose(adj[order], want)
    assert np.all(adj >= p) and np.all(adj <= 1)
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])


def test_detectable_difference_has_the_stated_power_in_a_simulation():
    from scipy import stats

    from ensemble.downstream.statistics import detectable_difference, paired_t_power

    n, sd = 10, 0.03
    delta = detectable_difference(n, sd=sd)
    assert abs(paired_t_power(delta / sd, n) - 0.8) < 1e-6
    rng = np.random.default_rng(0)
    diffs = rng.normal(delta, sd, size=(40_000, n))
    p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert abs(float(np.mean(p < 0.05)) - 0.8) < 0.01  # the t-test really detects it 80% of the time
    # more seeds, a smaller detectable difference; a stricter level, a larger one
    assert detectable_difference(20, sd=sd) < delta < detectable_difference(n, sd=sd, alpha=0.05 / 6)
    assert np.isnan(detectable_difference(1, sd=sd))
    with pytest.raises(ValueError, match="power"):
        detectable_difference(10, power=1.5)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_paired_t_power_matches_the_noncentral_t_and_stays_finite_in_its_tails(n):
    from ensemble.downstream.statistics import detectable_difference, paired_t_power

    df, crit = n - 1, stats.t.ppf(0.975, n - 1)
    for effect in (0.0, 0.2, 0.5, 1.0):
        nc = effect * np.sqrt(n)
        ref = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        assert np.isfinite(ref)  # nct is fine this close to the centre
        assert paired_t_power(effect, n) == pytest.approx(ref, abs=1e-6)
    # far tails (nct can return NaN there on some builds): power rises to 1, never NaN
    powers = [paired_t_power(e, n) for e in (4.0, 8.0, 16.0, 64.0)]
    assert np.all(np.isfinite(powers)) and np.all(np.diff(powers) >= -1e-12) and powers[-1] > 0.99
    assert np.isfinite(detectable_difference(n, 0.05))


def test_verdict_is_decided_by_the_named_p_value():
    row = {"diff": 0.05, "lo": 0.01, "hi": 0.09, "p_t": 0.01, "p_holm": 0.06}
    assert verdict(row) == "beat"
    assert verdict(row, p="p_holm") == "did not beat (higher, n.s.)"
    assert verdict({**row, "diff": -0.05, "lo": -0.09, "hi": -0.01}, p="p_holm") == "did not beat (lower, n.s.)"
    assert verdict({**row, "p_holm": 0.03}, p="p_holm") == "beat"
