"""The selected-ensemble record (selected.json)."""

import json

import pytest

from ensemble.search import Ensemble


def test_round_trip(tmp_path):
    e = Ensemble(["a@1", "b@2"], intra_d=0.8, inter_d=0.3, rule="knee", note="fell back", meta={"k": 5})
    path = e.save(tmp_path / "selected.json")
    back = Ensemble.load(path)
    assert back == e and back.size == 2
    assert json.loads(path.read_text())["members"] == ["a@1", "b@2"]
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
    with pytest.raises(ValueError, match="repeat"):
        Ensemble(["a", "a"])
    with pytest.raises(FileNotFoundError, match="gan-ensemble search"):
        Ensemble.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        Ensemble.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="no 'members'"):
        Ensemble.load(tmp_path / "other.json")
