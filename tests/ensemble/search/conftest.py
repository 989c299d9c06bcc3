"""Shared toy score tables for the search tests: 13 generators over a Gaussian mixture."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.scoring.tables import ScoreTables
from ensemble.search import EnsembleSearch


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


@pytest.fixture(scope="session")
def toy():
    """(real features, {name: fake features}, ScoreTables with k=5)."""
    real, fakes = make_features()
    tables = ScoreTables.from_features(real, fakes, k=5, progress=False, meta={"backbone": "toy"})
    return real, fakes, tables


@pytest.fixture(scope="session")
def exact(toy):
    """The exhaustive search of the toy tables: the exact front."""
    return EnsembleSearch("exhaustive").fit(toy[2])
