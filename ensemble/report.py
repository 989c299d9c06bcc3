"""Markdown helpers for run and study reports: tables and the number formats they use.

Reports (a study's ``REPORT.md``) are plain text built from data frames; these helpers give every
report the same table syntax and the same way of writing missing values, p-values and durations.
:func:`changed_settings` names the settings in which two runs differ (a report lists a run's
departures from a reference protocol; a resumable run refuses a folder made with other settings).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

__all__ = ["markdown_table", "fmt_number", "fmt_p", "fmt_seconds", "changed_settings"]


def markdown_table(df: pd.DataFrame, floatfmt: str | None = None) -> str:
    """``df`` as a GitHub-flavoured markdown table (header, rule, one line per row, no index).

    Cells are ``str(value)``; with ``floatfmt`` (e.g. ``".4f"``), float cells are formatted with
    it and NaN cells are left empty.

    >>> print(markdown_table(pd.DataFrame({"arm": ["real"], "n": [5]})))
    | arm | n |
    |---|---|
    | real | 5 |
    """
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        if floatfmt is None:
            cells = [str(v) for v in row]
        else:
            cells = ["" if isinstance(v, (float, np.floating)) and np.isnan(v)
                     else format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)
                     for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt_number(v: float | None, nd: int = 3) -> str:
    """``v`` with ``nd`` decimals; ``"n/a"`` for None, NaN and infinities."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}"


def fmt_p(p: float | None) -> str:
    """A p-value: three decimals, or scientific notation below 0.001; ``"n/a"`` when undefined."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_seconds(sec: float) -> str:
    """A duration in the unit that reads best: ``"42 s"``, ``"3.5 min"``, ``"2.0 h"``, ``"4.1 days"``."""
    if not math.isfinite(sec):
        return "n/a"
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 7200:
        return f"{sec / 60:.1f} min"
    if sec < 3 * 86400:
        return f"{sec / 3600:.1f} h"
    return f"{sec / 86400:.1f} days"


def changed_settings(old: Mapping, new: Mapping, *, skip: Collection[str] = ()) -> list[str]:
    """Keys (outside ``skip``) whose values differ between two settings dicts, in first-seen order.

    Values compare by their JSON text (sorted keys), so tuples equal lists and nested dicts
    compare by content; a key missing on one side differs unless the other side holds None.
    """
    keys = list(old) + [k for k in new if k not in old]
    return [k for k in keys if k not in skip
            and json.dumps(old.get(k), sort_keys=True, default=str)
            != json.dumps(new.get(k), sort_keys=True, default=str)]
