"""Figures of a search: the Pareto front with G*, and hypervolume over generations.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot global state, no
display needed) and written as PNG atomically. Each function returns the Figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from zoo.io import atomic_write

__all__ = ["plot_front", "plot_pareto", "plot_history", "save_figure"]

X_LABEL = "Inter-d (redundancy, ↓)"
Y_LABEL = "Intra-d (fidelity, ↑)"


def _new_figure(figsize=(6.4, 4.8)) -> Figure:
    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG atomically (nothing half-written on failure)."""
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi))


def plot_front(search, selected=None, path: str | os.PathLike | None = None, *, ax=None,
               max_points: int = 50_000, title: str | None = None, seed: int = 0) -> Figure:
    """Every evaluated ensemble (faint), the Pareto front (bold steps), and G* (star) of a fitted
    :class:`~ensemble.search.EnsembleSearch`; see :func:`plot_pareto` for saved results."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(search, "front_", msg="this EnsembleSearch is not fitted yet; call .fit(tables) first")
    return plot_pareto(search.front_, search.evaluated_, selected, path, ax=ax, max_points=max_points,
                       title=title or f"{search.algorithm}: {len(search.tables_names_)} generators, "
                                      f"{search.n_evals_:,} evaluations", seed=seed)


def plot_pareto(front: pd.DataFrame, evaluated: pd.DataFrame | None = None, selected=None,
                path: str | os.PathLike | None = None, *, ax=None, max_points: int = 50_000,
                title: str | None = None, seed: int = 0) -> Figure:
    """The front (``front.csv`` as :func:`ensemble.search.load_front` reads it), the evaluated
    ensembles (``evaluated.csv``, optional, faint) and G* (an :class:`~ensemble.search.Ensemble`).

    x = Inter-d (lower is better), y = Intra-d (higher is better). At most ``max_points``
    evaluated points are drawn (a seeded random subset) to keep files small.
    """
    if ax is None:
        fig = _new_figure()
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ev = evaluated if evaluated is not None else front.iloc[:0]
    if len(ev):
        idx = np.arange(len(ev))
        if len(ev) > max_points:
            idx = np.sort(np.random.default_rng(seed).choice(len(ev), max_points, replace=False))
        ax.scatter(ev["inter_d"].to_numpy()[idx], ev["intra_d"].to_numpy()[idx], s=4, c="0.6",
                   alpha=0.25, linewidths=0, rasterized=True,
                   label=f"evaluated ({len(ev):,})")
    front = front.sort_values(["inter_d", "intra_d"])
    x, y = front["inter_d"].to_numpy(float), front["intra_d"].to_numpy(float)
    ax.step(x, y, where="post", color="C0", lw=1.8, zorder=3)
    ax.scatter(x, y, s=18, color="C0", zorder=4, label=f"Pareto front ({len(front)})")
    if selected is not None:
        ax.scatter([selected.inter_d], [selected.intra_d], marker="*", s=260, color="C3",
                   edgecolors="k", linewidths=0.6, zorder=5, label="G*")
        ax.annotate(f"G* ({selected.rule}, |E|={selected.size})", (selected.inter_d, selected.intra_d),
                    xytext=(8, -14), textcoords="offset points", fontsize=9, color="C3", zorder=6)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title(title or f"Pareto front ({len(front)} ensembles)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_history(search, path: str | os.PathLike | None = None, *, x: str = "n_gen", ax=None,
                 title: str | None = None) -> Figure:
    """Hypervolume of the front found so far, per generation (``x="n_gen"``) or evaluation count.

    ``search`` may be one fitted search or a mapping ``{label: search}`` to compare algorithms on
    the same tables (they share the fixed reference point, so the curves compare).
    """
    if x not in ("n_gen", "n_evals"):
        raise ValueError(f"x must be 'n_gen' or 'n_evals', got {x!r}")
    runs = dict(search) if isinstance(search, Mapping) else {search.algorithm: search}
    if not runs:
        raise ValueError("plot_history needs at least one fitted search")
    if ax is None:
        fig = _new_figure()
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    from sklearn.utils.validation import check_is_fitted

    for label, s in runs.items():
        check_is_fitted(s, "history_", msg=f"search {label!r} is not fitted yet; call .fit(tables) first")
        h = s.history_
        ax.plot(h[x], h["hypervolume"], lw=1.6, label=f"{label} (final {h['hypervolume'].iloc[-1]:.4f})")
    ax.set_xlabel("generation" if x == "n_gen" else "evaluations")
    ax.set_ylabel("hypervolume (normalised, fixed reference)")
    ax.set_title(title or "Hypervolume of the front found so far")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig
