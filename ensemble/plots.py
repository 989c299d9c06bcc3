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
                                      f"{search.n_evals_:,} evaluations", seed=seed,
                       objectives=list(getattr(search, "objectives_", None) or []) or None)


def plot_pareto(front: pd.DataFrame, evaluated: pd.DataFrame | None = None, selected=None,
                path: str | os.PathLike | None = None, *, ax=None, max_points: int = 50_000,
                title: str | None = None, seed: int = 0, objectives=None) -> Figure:
    """The front (``front.csv`` as :func:`ensemble.search.load_front` reads it), the evaluated
    ensembles (``evaluated.csv``, optional, faint) and G* (an :class:`~ensemble.search.Ensemble`).

    x = Inter-d (lower is better), y = Intra-d (higher is better); with other objectives, x = the
    second and y = the first. At most ``max_points`` evaluated points are drawn (a seeded random
    subset) to keep files small. ``objectives``: the search's objective names (default: those
    ``selected`` records, else Intra-d / Inter-d).
    """
    from ensemble.search.objectives import DEFAULT_OBJECTIVES, get_objective

    if objectives is None:
        named = dict(getattr(selected, "objectives", None) or {})
        objectives = list(named) if len(named) >= 2 else DEFAULT_OBJECTIVES
    names = list(objectives)
    ycol, xcol, x_label, y_label = "intra_d", "inter_d", X_LABEL, Y_LABEL
    if tuple(names[:2]) != tuple(DEFAULT_OBJECTIVES):
        oy, ox = get_objective(names[0]), get_objective(names[1])
        ycol, xcol = oy.column, ox.column
        y_label = f"{oy.name} ({'↑' if oy.maximise else '↓'})"
        x_label = f"{ox.name} ({'↑' if ox.maximise else '↓'})"
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
        ax.scatter(ev[xcol].to_numpy()[idx], ev[ycol].to_numpy()[idx], s=4, c="0.6",
                   alpha=0.25, linewidths=0, rasterized=True,
                   label=f"evaluated ({len(ev):,})")
    front = front.sort_values([xcol, ycol])
    x, y = front[xcol].to_numpy(float), front[ycol].to_numpy(float)
    ax.step(x, y, where="post", color="C0", lw=1.8, zorder=3)
    ax.scatter(x, y, s=18, color="C0", zorder=4, label=f"Pareto front ({len(front)})")
    if selected is not None:
        sx = selected.objectives.get(names[1], selected.inter_d) if xcol != "inter_d" else selected.inter_d
        sy = selected.objectives.get(names[0], selected.intra_d) if ycol != "intra_d" else selected.intra_d
        ax.scatter([sx], [sy], marker="*", s=260, color="C3",
                   edgecolors="k", linewidths=0.6, zorder=5, label="G*")
        ax.annotate(f"G* ({selected.rule}, |E|={selected.size})", (sx, sy),
                    xytext=(8, -14), textcoords="offset points", fontsize=9, color="C3", zorder=6)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
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
