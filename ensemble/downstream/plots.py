"""Figures of a downstream comparison, built on ``matplotlib.figure.Figure`` with the Agg canvas
(no pyplot global state, no display needed) and written as PNG atomically.

:func:`plot_comparison` draws one metric of :func:`~ensemble.downstream.protocol.summarize`;
:func:`plot_metric_panels` draws several metrics side by side, one panel each, from a summary
with ``<metric>_mean`` / ``<metric>_std`` columns (e.g.
:func:`~ensemble.downstream.protocol.summarize_groups`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.downstream.arms import arm_kind
from zoo.io import atomic_write

__all__ = ["plot_comparison", "plot_metric_panels"]


def plot_comparison(summary: pd.DataFrame, path: str | os.PathLike, metric: str = "g_mean",
                    arms: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Horizontal bars of ``<metric>_mean`` with ``<metric>_std`` error bars, one per arm (PNG).

    By default the individual ``single:*`` and ``random-ensemble-<i>`` rows are left out when their
    aggregate rows are there. Written atomically without pyplot (no global backend change).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    col = f"{metric}_mean"
    if col not in summary.columns:
        known = [c[:-5] for c in summary.columns if c.endswith("_mean")]
        raise ValueError(f"metric {metric!r} is not in the summary; known: {', '.join(known)}")
    if arms is None:
        present = set(summary["arm"])
        keep = []
        for a in summary["arm"]:
            kind = arm_kind(a)
            if kind == "single" and "single (mean)" in present:
                continue
            if kind == "random" and "random-ensemble (mean)" in present:
                continue
            keep.append(a)
        arms = keep
    table = summary.set_index("arm").loc[list(arms)]
    means = table[col].to_numpy(dtype=float)
    stds = np.nan_to_num(table[f"{metric}_std"].to_numpy(dtype=float)) if f"{metric}_std" in table else None
    colors = ["#d62728" if a == "G*" else "#2ca02c" if a == "real" else
              "#7f7f7f" if arm_kind(a) != "arm" or "(" in a else "#1f77b4" for a in table.index]
    fig = Figure(figsize=(7, 0.45 * len(table) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(table))[::-1]
    ax.barh(y, means, xerr=stds, color=colors, capsize=3)
    ax.set_yticks(y, labels=list(table.index))
    ax.set_xlabel(f"{metric} on the real test set (mean ± std over seeds)")
    ax.set_xlim(0, max(1.0, float(np.nanmax(means + (stds if stds is not None else 0))) * 1.05))
    for yi, m in zip(y, means, strict=True):
        ax.text(0.01, yi, f"{m:.3f}", va="center", ha="left", fontsize=8, color="white")
    ax.set_title(title or "Train on synthetic, test on real")
    fig.tight_layout()
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120,
                                                   metadata={"Software": None}))


def plot_metric_panels(summary: pd.DataFrame, path: str | os.PathLike, metrics: Sequence[str], *,
                       names: Mapping[str, str] | None = None, title: str = "",
                       colors: Sequence[str] | None = None) -> Path:
    """One horizontal-bar panel per metric (mean ± std, x from 0 to 1), arms as rows, shared y.

    ``names`` gives each metric's panel title (default: the metric); ``colors`` one bar colour
    per row (default grey). Written atomically as PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = [m for m in metrics if f"{m}_mean" not in summary.columns]
    if missing:
        raise ValueError(f"metrics {missing} are not in the summary (no <metric>_mean column)")
    names = dict(names or {})
    fig = Figure(figsize=(13, 0.42 * len(summary) + 1.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), sharey=True))
    y = np.arange(len(summary))[::-1]
    colors = list(colors) if colors is not None else ["#7f7f7f"] * len(summary)
    for ax, m in zip(axes, metrics, strict=True):
        mean = summary[f"{m}_mean"].to_numpy(float)
        std = np.nan_to_num(summary[f"{m}_std"].to_numpy(float))
        ax.barh(y, mean, xerr=std, color=colors, capsize=3)
        for yi, v, e in zip(y, mean, std, strict=True):
            if math.isfinite(v):
                x = min(v + e + 0.02, 0.86)
                ax.text(x, yi, f"{v:.3f}", va="center", ha="left", fontsize=7, color="black",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8})
        ax.set_xlim(0, 1)
        ax.set_title(names.get(m, m))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels=list(summary["arm"]), fontsize=8)
    if title:
        fig.suptitle(title)
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
