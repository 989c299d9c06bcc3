"""Degenerate members: generators whose samples collapsed or that cover almost no real point.

A generator that always returns the same (say black) image has k-NN radii of 0 among its own
samples, so its d with every other generator is 0 and Inter-d reads it as perfectly
non-redundant (issue 13). Such members are flagged when the tables are built, shown in every
summary, named in a warning, and left out of the search by default
(``EnsembleSearch(keep_degenerate=False)``).

A generator is flagged, with the first reason that applies, when

- ``collapsed``: at least :data:`MAX_ZERO_RADIUS_FRACTION` of its samples have a k-NN radius of 0
  among its own samples (k or more exact duplicates of the same feature vector), or at least
  :data:`MAX_DUPLICATE_FRACTION` of its samples duplicate another sample exactly;
- ``near-constant``: the spread of its features (root mean squared distance to their mean) is below
  :data:`MIN_SPREAD_RATIO` times the spread of the real features (near-constant images);
- ``no coverage``: it covers fewer than :data:`MIN_COVERAGE` of the real points.

All three are read off the features and the coverage the tables already hold; no extra pass over
distances is needed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "degenerate_reason",
    "feature_spread",
    "MAX_ZERO_RADIUS_FRACTION",
    "MAX_DUPLICATE_FRACTION",
    "MIN_SPREAD_RATIO",
    "MIN_COVERAGE",
]

#: Flag a generator when this fraction of its samples or more have a k-NN radius of 0.
MAX_ZERO_RADIUS_FRACTION = 0.5
#: Flag a generator when this fraction of its samples or more duplicate another sample exactly.
MAX_DUPLICATE_FRACTION = 0.5
#: Flag a generator whose feature spread is below this fraction of the real features' spread.
MIN_SPREAD_RATIO = 0.01
#: Flag a generator that covers fewer than this fraction of the real points.
MIN_COVERAGE = 0.01


def feature_spread(x: np.ndarray) -> float:
    """Root mean squared distance of the rows of ``x`` to their mean (0 for identical rows)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))


def degenerate_reason(fake: np.ndarray, *, k: int, coverage: float, real_spread: float) -> str:
    """Why the generator with features ``fake`` (M, D) is degenerate, or ``""`` when it is not.

    ``coverage`` is its coverage of the real points; ``real_spread`` is
    :func:`feature_spread` of the real features.
    """
    fake = np.ascontiguousarray(fake)
    m = len(fake)
    _, inverse, counts = np.unique(fake, axis=0, return_inverse=True, return_counts=True)
    group = counts[np.asarray(inverse).reshape(-1)]
    zero_radius = float((group >= k + 1).mean())  # k other samples at distance 0
    duplicate = float((group >= 2).mean())
    if zero_radius >= MAX_ZERO_RADIUS_FRACTION or duplicate >= MAX_DUPLICATE_FRACTION:
        return (f"collapsed: {duplicate:.0%} of its {m} samples are exact duplicates, {zero_radius:.0%} "
                f"have a k-NN radius of 0")
    spread = feature_spread(fake)
    if real_spread > 0 and spread < MIN_SPREAD_RATIO * real_spread:
        return f"near-constant: feature spread {spread:.3g} is {spread / real_spread:.2%} of the real one"
    if coverage < MIN_COVERAGE:
        return f"no coverage: covers {coverage:.2%} of the real points"
    return ""
