"""The one writer and reader of a search's files: exact round trips, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensemble.search import (
    Ensemble,
    EnsembleSearch,
    load_evaluated,
    load_front,
    load_history,
    load_selected,
    save_search_outputs,
)


@pytest.fixture(scope="module")
def fitted(toy):
    return EnsembleSearch(pop_size=30, n_gen=10, seed=7).fit(toy[2])


def test_front_round_trips_exactly(fitted, tmp_path):
    sel = fitted.select("knee")
    paths = save_search_outputs(fitted, tmp_path, selected=sel, plots=False)
    assert set(paths) == {"front", "history", "evaluated", "selected"}
    front = load_front(paths["front"])
    assert front["members"].tolist() == fitted.front_["members"].tolist()
    assert front["size"].tolist() == fitted.front_["size"].tolist()
    for col in ("intra_d", "inter_d"):  # full precision: the same floats
        np.testing.assert_array_equal(front[col].to_numpy(), fitted.front_[col].to_numpy())
    pd.testing.assert_frame_equal(front, fitted.front_, check_dtype=False)
    raw = pd.read_csv(paths["front"])
    assert list(raw.columns) == ["members", "size", "intra_d", "inter_d"]
    assert json.loads(raw["members"].iloc[0]) == fitted.front_["members"].iloc[0]
    pd.testing.assert_frame_equal(load_evaluated(tmp_path), fitted.evaluated_)
    pd.testing.assert_frame_equal(load_history(tmp_path / "history.csv"), fitted.history_)
    back = load_selected(tmp_path)
    assert back == sel and back.members in front["members"].tolist()
    assert load_selected(tmp_path / "selected.json") == sel


def test_names_with_spaces_and_commas_survive(tmp_path):
    fitted = EnsembleSearch()
    fitted.front_ = pd.DataFrame({"members": [["a b@1", "c,d@2"], ["e\"f"]], "size": [2, 1],
                                  "intra_d": [0.9, 0.1 + 0.2], "inter_d": [0.3, 0.0]})
    fitted.history_ = pd.DataFrame({"n_gen": [1], "n_evals": [2], "hypervolume": [0.5], "front_size": [2]})
    save_search_outputs(fitted, tmp_path, plots=False, evaluated=False)
    front = load_front(tmp_path / "front.csv")
    assert front["members"].tolist() == [["a b@1", "c,d@2"], ["e\"f"]]
    assert front["intra_d"].iloc[1] == 0.1 + 0.2
    assert not (tmp_path / "evaluated.csv").exists() and not (tmp_path / "selected.json").exists()


def test_plots_are_written_when_asked(fitted, tmp_path):
    paths = save_search_outputs(fitted, tmp_path, fitted.select(), evaluated=False)
    assert paths["pareto"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["hypervolume"].is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save_search_outputs(EnsembleSearch(), tmp_path)
    with pytest.raises(FileNotFoundError, match="gan-ensemble search"):
        load_front(tmp_path / "front.csv")
    pd.DataFrame({"members": ["a@1 b@2"], "size": [2], "intra_d": [0.5], "inter_d": [0.1]}).to_csv(
        tmp_path / "front.csv", index=False)  # the old space-joined format
    with pytest.raises(ValueError, match="not a JSON list .* rerun the search"):
        load_front(tmp_path)
    pd.DataFrame({"n_gen": [1]}).to_csv(tmp_path / "evaluated.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['size'"):
        load_evaluated(tmp_path)
    with pytest.raises(FileNotFoundError, match="selected"):
        load_selected(tmp_path)
    Ensemble(["a"]).save(tmp_path / "selected.json")
    assert load_selected(tmp_path).members == ["a"]
