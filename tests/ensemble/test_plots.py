"""Pareto-front and hypervolume figures."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from ensemble.plots import plot_front, plot_history
from ensemble.scoring.tables import ScoreTables
from ensemble.search import EnsembleSearch

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def searches():
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 4.0, size=(5, 16))
    real = centers[rng.integers(0, 5, 200)] + rng.normal(size=(200, 16))
    fakes = {}
    for g in range(8):
        cl = rng.choice(5, size=int(rng.integers(1, 5)), replace=False)
        fakes[f"g{g}"] = centers[rng.choice(cl, 120)] + rng.normal(0, rng.uniform(0.6, 1.3), (120, 16))
    tables = ScoreTables.from_features(real, fakes, progress=False)
    return {
        "nsga2": EnsembleSearch(pop_size=30, n_gen=15, seed=0).fit(tables),
        "random": EnsembleSearch("random", pop_size=30, n_gen=15, seed=0).fit(tables),
    }


def test_plot_front_marks_g_star(searches, tmp_path):
    s = searches["nsga2"]
    g = s.select("knee")
    fig = plot_front(s, g, path=tmp_path / "pareto.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "pareto.png").read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Inter-d (redundancy, ↓)" and ax.get_ylabel() == "Intra-d (fidelity, ↑)"
    texts = [t.get_text() for t in ax.texts]
    assert any(f"|E|={g.size}" in t and "knee" in t for t in texts)
    labels = ax.get_legend_handles_labels()[1]
    assert "G*" in labels and any(lbl.startswith("Pareto front") for lbl in labels)
    # the front's step line passes through every front point
    line = ax.lines[0]
    xy = set(zip(np.round(line.get_xdata(), 12), np.round(line.get_ydata(), 12), strict=True))
    for x, y in zip(s.front_["inter_d"], s.front_["intra_d"], strict=True):
        assert (round(x, 12), round(y, 12)) in xy
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_front_without_selection_and_subsampling(searches):
    fig = plot_front(searches["random"], max_points=50)
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == 50
    assert "G*" not in ax.get_legend_handles_labels()[1]


def test_plot_history(searches, tmp_path):
    fig = plot_history(searches["nsga2"], path=tmp_path / "hv.png")
    assert (tmp_path / "hv.png").read_bytes()[:8] == PNG
    ys = fig.axes[0].lines[0].get_ydata()
    assert len(ys) == 15 and np.all(np.diff(ys) >= -1e-12)
    fig = plot_history(searches, x="n_evals")
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_xlabel() == "evaluations"
    with pytest.raises(ValueError, match="x must be"):
        plot_history(searches["nsga2"], x="time")
    with pytest.raises(ValueError, match="not fitted"):
        plot_front(EnsembleSearch())
