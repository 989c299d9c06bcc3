"""Paired statistics for downstream comparisons: arms are paired by training seed.

Two arms trained with the same seed share the initialisation and the draw stream, so their test
metrics are compared seed by seed (differences ``a - b``):

- :func:`paired_test`: mean difference, a percentile bootstrap 95% CI of it
  (``scipy.stats.bootstrap`` over the per-seed differences), the paired t-test
  (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``);
- :func:`holm`: Holm's (1979) step-down adjustment of a family of p-values. ``statsmodels`` (whose
  ``multipletests(method="holm")`` is the maintained implementation) is not a dependency, so it is
  written once here and tested against the worked example in Wikipedia's "Holm–Bonferroni method"
  article and against the definition;
- :func:`detectable_difference`: the smallest true mean difference a paired t-test at ``n`` seeds
  detects with a given power (the noncentral t distribution of ``scipy.stats.nct``), so a report
  can say how large an effect a study could have seen;
- :func:`verdict`: the words a report uses for one comparison.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["ALPHA", "paired_test", "holm", "detectable_difference", "paired_t_power", "verdict"]

#: Significance level of :func:`verdict` (two-sided).
ALPHA = 0.05


def paired_test(a: Sequence[float], b: Sequence[float], n_boot: int, seed: int) -> dict:
    """Paired comparison of ``a - b`` over seeds.

    Returns ``n``, ``diff`` (mean difference), ``lo`` / ``hi`` (percentile bootstrap 95% CI of the
    mean difference, ``n_boot`` resamples of the seeds drawn by ``numpy.random.default_rng(seed)``),
    ``p_t`` (paired t-test), ``p_w`` (two-sided Wilcoxon signed-rank, zero differences dropped),
    ``sd`` (standard deviation of the differences) and ``mde`` (the difference the t-test would
    detect with 80% power at this ``n`` and ``sd``, :func:`detectable_difference`).
    With fewer than 2 pairs only ``n`` and ``diff`` are defined (the rest NaN). Constant
    differences give ``p_t`` = 1 when they are 0, else 0 (the t statistic is infinite); all-zero
    differences give ``p_w`` = 1.
    """
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be two 1-d arrays of one length, got {a.shape} and {b.shape}")
    d = a - b
    n = len(d)
    out = {"n": n, "diff": float(d.mean()) if n else float("nan"), "lo": float("nan"),
           "hi": float("nan"), "p_t": float("nan"), "p_w": float("nan"), "sd": float("nan"),
           "mde": float("nan")}
    if n < 2:
        return out
    out["sd"] = float(d.std(ddof=1))
    out["mde"] = detectable_difference(n, out["sd"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a constant sample warns, the CI is exact
        ci = stats.bootstrap((d,), np.mean, n_resamples=int(n_boot), method="percentile",
                             confidence_level=0.95, vectorized=True,
                             random_state=np.random.default_rng(seed)).confidence_interval
    out["lo"], out["hi"] = float(ci.low), float(ci.high)
    if np.allclose(d, d[0]):
        out["p_t"] = 1.0 if d[0] == 0 else 0.0
    else:
        out["p_t"] = float(stats.ttest_rel(a, b).pvalue)
    if np.all(d == 0):
        out["p_w"] = 1.0
    else:
        with np.errstate(all="ignore"):
            out["p_w"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN stays NaN and is not counted).

    Sort the m finite p-values ascending, p(1) <= ... <= p(m); the adjusted value of p(i) is
    ``max_{j <= i} min(1, (m - j + 1) p(j))`` (Holm 1979, "A simple sequentially rejective multiple
    test procedure", Scand. J. Statist. 6:65-70). Rejecting where the adjusted value is below
    alpha is Holm's procedure at family-wise level alpha. Same values as statsmodels'
    ``multipletests(p, method="holm")[1]``.
    """
    p = np.asarray(pvalues, float)
    if p.ndim != 1:
        raise ValueError(f"holm expects a 1-d list of p-values, got shape {p.shape}")
    ok = np.flatnonzero(np.isfinite(p))
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    adj = np.full(len(p), np.nan)
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        adj[j] = running
    return adj.tolist()


def paired_t_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n`` pairs when the true mean
    difference is ``effect`` standard deviations of the differences (Cohen's d_z).

    The statistic is T = (Z + nc) / sqrt(V / df) with nc = effect * sqrt(n), Z standard normal and
    V chi-squared with df = n - 1 degrees of freedom, so the power is the expectation over V of
    Phi(nc - c s) + Phi(-nc - c s), s = sqrt(V / df), c the critical t. The expectation is taken
    over the quantiles of V by 400-point Gauss-Legendre quadrature (agrees with
    ``scipy.stats.nct`` to 1e-7 where that is finite) rather than read from ``scipy.stats.nct``,
    whose tails return NaN for large non-centralities on some builds (df = 1, nc > 10).
    """
    from scipy import stats

    if n < 2:
        return float("nan")
    df = n - 1
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    nc = abs(float(effect)) * math.sqrt(n)
    u, w = _gauss_legendre_01()
    s = crit * np.sqrt(stats.chi2.ppf(u, df) / df)
    value = float(np.dot(w, stats.norm.cdf(nc - s) + stats.norm.cdf(-nc - s)))
    return min(1.0, max(0.0, value))


@functools.cache
def _gauss_legendre_01(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on (0, 1), computed on first use."""
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1) / 2, w / 2


def detectable_difference(n: int, sd: float = 1.0, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest true mean difference that a two-sided paired t-test at level ``alpha`` with
    ``n`` pairs detects with probability ``power``, for differences of standard deviation ``sd``.

    With ``sd`` = 1 this is the detectable effect size d_z (n = 10, alpha = 0.05, power = 0.8:
    0.996; a simulation of the t-test checks it in the tests). Pass a Holm or
    Bonferroni level as ``alpha`` for the worst case of a corrected family. NaN for n < 2 or a
    non-finite ``sd``.
    """
    from scipy.optimize import brentq

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    hi = 1.0
    while paired_t_power(hi, n, alpha) < power:
        hi *= 2
    dz = brentq(lambda e: paired_t_power(e, n, alpha) - power, 0.0, hi, xtol=1e-10)
    return float(dz * sd)


def verdict(t: Mapping[str, float], alpha: float = ALPHA, p: str = "p_t") -> str:
    """``beat`` / ``lost to`` only when the bootstrap CI excludes 0 *and* the paired t-test has
    p < ``alpha``; else ``tied with`` (no difference) or ``did not beat (higher|lower, n.s.)``.

    ``t`` is a :func:`paired_test` result (``diff``, ``lo``, ``hi``, ``p_t``); ``p`` names the
    p-value that decides (``"p_holm"`` for the Holm-adjusted one of a family of comparisons).
    """
    if not math.isfinite(t["diff"]):
        return "n/a"
    sig = math.isfinite(t[p]) and t[p] < alpha
    if sig and math.isfinite(t["lo"]) and t["lo"] > 0:
        return "beat"
    if sig and math.isfinite(t["hi"]) and t["hi"] < 0:
        return "lost to"
    if t["diff"] == 0:
        return "tied with"
    return "did not beat (higher, n.s.)" if t["diff"] > 0 else "did not beat (lower, n.s.)"
