"""Figures of a downstream comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.downstream.metrics import METRICS
from ensemble.downstream.plots import plot_comparison, plot_metric_panels
from ensemble.downstream.protocol import summarize

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def summary():
    rng = np.random.default_rng(0)
    arms = ["real", "G*", "single:g0", "single:g1", "random-ensemble-0"]
    df = pd.DataFrame([{"arm": a, "seed": s, **{m: rng.random() for m in METRICS}}
                       for a in arms for s in range(3)])
    return summarize(df)


def test_plot_comparison_writes_a_png_and_names_unknown_metrics(tmp_path, summary):
    png = plot_comparison(summary, tmp_path / "downstream.png")
    assert png.read_bytes()[:8] == PNG
    assert plot_comparison(summary, tmp_path / "two.png", arms=["real", "G*"]).exists()
    with pytest.raises(ValueError, match="known"):
        plot_comparison(summary, tmp_path / "x.png", metric="nope")


def test_plot_metric_panels_one_panel_per_metric(tmp_path, summary):
    png = plot_metric_panels(summary, tmp_path / "panels.png", ["g_mean", "roc_auc"],
                             names={"g_mean": "g-mean"}, title="t", colors=["C0"] * len(summary))
    assert png.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="nope"):
        plot_metric_panels(summary, tmp_path / "x.png", ["nope"])
