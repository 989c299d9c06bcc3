"""Selection rules: the registry, each rule's choice and ties, parameter checks."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from ensemble.search import (
    RULES,
    check_rule_params,
    get_rule,
    list_rules,
    register_rule,
    rule_needs_context,
)
from ensemble.search.rules import parse_weights


def _front(rows):
    df = pd.DataFrame(rows, columns=["intra_d", "inter_d", "size"])
    df["members"] = [[f"m{i}_{j}" for j in range(n)] for i, n in enumerate(df["size"])]
    return df.sort_values(["intra_d", "inter_d", "size"], ascending=[False, True, True]).reset_index(drop=True)


def test_rule_registry():
    assert set(list_rules()) >= {"max-fidelity", "knee", "asf", "smallest-within"}
    with pytest.raises(ValueError, match="unknown selection rule 'best'; known: .*max-fidelity"):
        get_rule("best")
    with pytest.raises(ValueError, match="already registered"):
        register_rule("knee", lambda front: (0, ""))


def test_a_registered_rule_is_used_by_name():
    @register_rule("fewest-members")
    def fewest(front):
        return int(front["size"].to_numpy().argmin()), ""

    try:
        assert get_rule("fewest-members") is fewest
        f = _front([(0.9, 0.5, 6), (0.5, 0.1, 2)])
        assert f.loc[get_rule("fewest-members")(f)[0], "size"] == 2
    finally:
        RULES.remove("fewest-members")
    assert "fewest-members" not in list_rules()


def test_check_rule_params():
    check_rule_params("asf", {"weights": (0.5, 0.5)})
    check_rule_params("smallest-within", {})
    with pytest.raises(ValueError, match="bad parameters .* for rule 'max-fidelity'"):
        check_rule_params("max-fidelity", {"tol": 0.1})


def test_every_rule_works_with_its_defaults():
    f = _front([(1.0, 1.0, 9), (0.9, 0.2, 5), (0.5, 0.1, 3), (0.0, 0.0, 2)])
    for name in list_rules():
        if rule_needs_context(name):  # needs data beyond the front (tests/ensemble/search/test_validated.py)
            with pytest.raises(ValueError, match="needs context"):
                get_rule(name)(f)
            continue
        row, note = get_rule(name)(f)
        assert 0 <= row < len(f) and isinstance(note, str)
    with pytest.raises(ValueError, match="empty"):
        get_rule("max-fidelity")(f.iloc[:0])


def test_max_fidelity_ties():
    f = _front([(0.9, 0.5, 6), (0.9, 0.3, 7), (0.9, 0.3, 4), (0.5, 0.1, 2)])
    i, note = get_rule("max-fidelity")(f)
    assert (f.loc[i, "inter_d"], f.loc[i, "size"]) == (0.3, 4) and note == ""


def test_knee_and_its_fallbacks(caplog):
    knee = get_rule("knee")
    f = _front([(1.0, 1.0, 9), (0.9, 0.2, 5), (0.5, 0.1, 3), (0.0, 0.0, 2)])
    i, note = knee(f)
    assert f.loc[i, "intra_d"] == 0.9 and note == ""
    with caplog.at_level(logging.WARNING, logger="ensemble.search"):
        i, note = knee(_front([(1.0, 1.0, 9), (0.2, 0.1, 3)]))
    assert i == 0 and "fell back to max-fidelity" in note and "fell back" in caplog.text
    concave = _front([(1.0, 1.0, 9), (0.5, 0.9, 5), (0.0, 0.0, 2)])
    i, note = knee(concave)
    assert concave.loc[i, "intra_d"] == 1.0 and "no front point" in note


def test_asf_weights_move_the_choice():
    asf = get_rule("asf")
    f = _front([(1.0, 1.0, 9), (0.8, 0.4, 6), (0.5, 0.2, 4), (0.1, 0.0, 2)])
    hi_fid, _ = asf(f, weights=(0.95, 0.05))
    lo_red, _ = asf(f, weights=(0.05, 0.95))
    mid, _ = asf(f, weights="0.5,0.5")
    assert f.loc[hi_fid, "intra_d"] > f.loc[mid, "intra_d"] >= f.loc[lo_red, "intra_d"]
    assert f.loc[lo_red, "inter_d"] <= 0.2
    for bad in [(1, 0), (1, 2, 3), "a,b", (-1, 1)]:
        with pytest.raises(ValueError, match="weights"):
            asf(f, weights=bad)


def test_parse_weights():
    assert parse_weights("3, 1") == (0.75, 0.25)
    assert parse_weights((1, 1)) == (0.5, 0.5)
    with pytest.raises(ValueError, match="two positive numbers"):
        parse_weights((1, float("inf")))


def test_smallest_within():
    rule = get_rule("smallest-within")
    f = _front([(1.0, 0.9, 9), (0.995, 0.5, 5), (0.995, 0.4, 5), (0.97, 0.2, 3), (0.5, 0.1, 2)])
    i, _ = rule(f)
    assert (f.loc[i, "size"], f.loc[i, "inter_d"]) == (5, 0.4)
    i, _ = rule(f, tol=0.05)
    assert f.loc[i, "size"] == 3
    i, _ = rule(f, tol=0.0)
    assert f.loc[i, "size"] == 9
    with pytest.raises(ValueError, match="tol"):
        rule(f, tol=1.5)
