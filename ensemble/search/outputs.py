"""The one writer and reader of a search's files: ``front.csv``, ``evaluated.csv``,
``history.csv`` and ``selected.json``.

The stage command (``gan-ensemble search``), the pipeline (``quickstart``), the studies and the
notebooks all write through :func:`save_search_outputs` and read through :func:`load_front`,
:func:`load_evaluated`, :func:`load_history` and :func:`load_selected`, so a run's files read
the same whoever made them.

Formats (CSV with a header row, written atomically by ``pandas.DataFrame.to_csv``; floats are
written as their shortest round-trip repr and pandas' default parser reads them back exactly; a
test checks it):

- ``front.csv``: columns ``members, size, intra_d, inter_d``, one row per ensemble on the Pareto
  front in ``EnsembleSearch.front_`` order (Intra-d descending, then Inter-d ascending, then size
  ascending). ``members`` is a JSON list of generator names, e.g. ``["dcgan@1000", "wgan@500"]``:
  a list survives names with spaces or commas, which a separator-joined string would not. A
  search on other objectives than ``intra-d, inter-d`` adds one column per objective after
  these (``class_intra_d``, ``coverage_overlap``, ...; ``inter_d`` is then NaN without a pair table).
- ``evaluated.csv``: columns ``n_gen, size``, one per objective, and ``intra_d, inter_d``, every
  ensemble evaluated (in range).
- ``history.csv``: columns ``n_gen, n_evals, hypervolume, front_size``, one row per generation.
- ``selected.json``: G*, see :class:`~ensemble.search.result.Ensemble` (its ``save``/``load``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ensemble.search.result import Ensemble
from zoo.io import atomic_write

__all__ = [
    "FRONT_FILE",
    "EVALUATED_FILE",
    "HISTORY_FILE",
    "SELECTED_FILE",
    "FRONT_COLUMNS",
    "EVALUATED_COLUMNS",
    "HISTORY_COLUMNS",
    "save_search_outputs",
    "load_front",
    "load_evaluated",
    "load_history",
    "load_selected",
]

FRONT_FILE = "front.csv"
EVALUATED_FILE = "evaluated.csv"
HISTORY_FILE = "history.csv"
SELECTED_FILE = "selected.json"
FRONT_COLUMNS = ("members", "size", "intra_d", "inter_d")
EVALUATED_COLUMNS = ("n_gen", "size", "intra_d", "inter_d")
HISTORY_COLUMNS = ("n_gen", "n_evals", "hypervolume", "front_size")


def save_search_outputs(search, out_dir: str | os.PathLike, selected: Ensemble | None = None, *,
                        plots: bool = True, evaluated: bool = True) -> dict[str, Path]:
    """Write a fitted search's ``front.csv``, ``history.csv``, ``evaluated.csv`` and ``selected.json``.

    Args:
        search: a fitted :class:`~ensemble.search.EnsembleSearch`.
        out_dir: the folder (created if missing).
        selected: G* to write as ``selected.json`` (None: not written).
        plots: also draw ``pareto.png`` and ``hypervolume.png`` there.
        evaluated: also write ``evaluated.csv`` (every evaluated ensemble; large for long runs).

    Returns:
        ``{"front": path, "history": path, ...}`` for every file written.

    Raises:
        ValueError: the search is not fitted.
    """
    check_is_fitted(search, "front_", msg="this EnsembleSearch is not fitted yet; call .fit(tables) first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    extra = [c for c in search.front_.columns if c not in FRONT_COLUMNS]  # other objectives' columns
    front = search.front_.loc[:, [*FRONT_COLUMNS, *extra]].copy()
    front["members"] = [json.dumps(list(m)) for m in front["members"]]
    paths["front"] = atomic_write(out / FRONT_FILE, lambda p: front.to_csv(p, index=False))
    paths["history"] = atomic_write(out / HISTORY_FILE, lambda p: search.history_.to_csv(p, index=False))
    if evaluated:
        paths["evaluated"] = atomic_write(out / EVALUATED_FILE,
                                          lambda p: search.evaluated_.to_csv(p, index=False))
    if selected is not None:
        paths["selected"] = selected.save(out / SELECTED_FILE)
    if plots:
        from ensemble.plots import plot_front, plot_history

        plot_front(search, selected, path=out / "pareto.png")
        plot_history(search, path=out / "hypervolume.png")
        paths["pareto"] = out / "pareto.png"
        paths["hypervolume"] = out / "hypervolume.png"
    return paths


def _read_csv(path: str | os.PathLike, what: str, columns: tuple[str, ...]) -> pd.DataFrame:
    p = Path(path)
    if p.is_dir():
        p = p / what
    if not p.is_file():
        raise FileNotFoundError(f"{what} file {str(p)!r} not found; run `gan-ensemble search` first")
    df = pd.read_csv(p)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{p} lacks the column(s) {missing}; is it a {what} from `gan-ensemble search`?")
    return df


def load_front(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``front.csv`` (or the one in folder ``path``) written by :func:`save_search_outputs`.

    ``members`` come back as lists of names; the other columns as written.

    Raises:
        FileNotFoundError: no such file. ValueError: a column is missing, or ``members`` is not
            a JSON list (a front written before the one format, with names joined by spaces:
            rerun the search stage).
    """
    df = _read_csv(path, FRONT_FILE, FRONT_COLUMNS)
    members = []
    for i, m in enumerate(df["members"]):
        try:
            v = json.loads(m)
        except (TypeError, json.JSONDecodeError):
            v = None
        if not isinstance(v, list):
            raise ValueError(f"{path}: row {i} has members {m!r}, not a JSON list of names; "
                             "this front was not written by save_search_outputs: rerun the search")
        members.append([str(x) for x in v])
    df["members"] = members
    return df


def load_evaluated(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ``evaluated.csv`` (or the one in folder ``path``): every ensemble evaluated."""
    return _read_csv(path, EVALUATED_FILE, EVALUATED_COLUMNS)


def load_history(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``history.csv`` (or the one in folder ``path``): hypervolume per generation."""
    return _read_csv(path, HISTORY_FILE, HISTORY_COLUMNS)


def load_selected(path: str | os.PathLike) -> Ensemble:
    """Read a ``selected.json`` (or the one in folder ``path``) as an :class:`Ensemble`."""
    p = Path(path)
    return Ensemble.load(p / SELECTED_FILE if p.is_dir() else p)
