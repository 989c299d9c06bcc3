"""Markdown tables and number formats of reports."""

from __future__ import annotations

import pandas as pd

from ensemble.report import changed_settings, fmt_number, fmt_p, fmt_seconds, markdown_table


def test_markdown_table_plain_and_with_a_float_format():
    df = pd.DataFrame({"arm": ["real", "G*"], "n": [5, 4], "g": [0.81234, float("nan")]})
    assert markdown_table(df) == ("| arm | n | g |\n|---|---|---|\n| real | 5 | 0.81234 |\n"
                                  "| G* | 4 | nan |")
    assert markdown_table(df, floatfmt=".2f").splitlines()[2:] == ["| real | 5 | 0.81 |", "| G* | 4 |  |"]
    assert markdown_table(df.iloc[:0]) == "| arm | n | g |\n|---|---|---|"


def test_number_formats():
    assert fmt_number(0.12345) == "0.123" and fmt_number(2, 1) == "2.0"
    assert fmt_number(None) == fmt_number(float("nan")) == fmt_number(float("inf")) == "n/a"
    assert fmt_p(0.0123) == "0.012" and fmt_p(0.00012) == "1.2e-04" and fmt_p(float("nan")) == "n/a"
    assert [fmt_seconds(s) for s in (42, 300, 7200, 3 * 86400)] == ["42 s", "5.0 min", "2.0 h", "3.0 days"]
    assert fmt_seconds(float("nan")) == "n/a"


def test_changed_settings_in_first_seen_order_by_value():
    old = {"a": 1, "b": (1, 2), "c": {"x": 1, "y": 2}, "d": 5}
    new = {"b": [1, 2], "a": 2, "c": {"y": 2, "x": 1}, "e": None, "f": 3}
    assert changed_settings(old, new) == ["a", "d", "f"]
    assert changed_settings(old, new, skip=("a", "f")) == ["d"]
