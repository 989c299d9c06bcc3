"""Fast checks of the PneumoniaMNIST study script: configuration, arms, report settings.

The end-to-end run is ``run_study.py --smoke`` (minutes); these tests cover the parts that decide
what the report says, in a second or two. The machinery the study calls (paired statistics, Holm,
the journaled downstream protocol) is tested in ``tests/ensemble/downstream/``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "pneumoniamnist" / "run_study.py"


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, str(SCRIPT.parent))  # study_report.py, as when the script runs
    spec = importlib.util.spec_from_file_location("run_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_study"] = mod  # dataclasses look their module up here
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("run_study", None)
        sys.modules.pop("study_report", None)
        sys.path.remove(str(SCRIPT.parent))


def test_default_config_meets_the_issue(study):
    cfg = study.make_config(study.parse_args([]))
    families = [r["arch"] for r in cfg.runs]
    assert len(cfg.runs) * len(cfg.snapshots()) >= 60 and cfg.iterations > 1000 and len(cfg.snapshots()) == 5
    for fam in ("acgan", "sngan", "cgan"):
        assert families.count(fam) >= 3
    assert sum(r["arch"] == "dcgan" and r.get("diffaug") for r in cfg.runs) >= 3
    assert set(cfg.weights) == {"random", "in-domain"} and cfg.k == 5
    assert cfg.seeds >= 10 and cfg.n_random >= 5
    assert set(study.RULES) == {"max-fidelity", "knee", "validated"}
    assert study.OBJECTIVE_SETS["published"] == ("intra-d", "inter-d")
    assert study.OBJECTIVE_SETS["class-aware"] == ("class-intra-d", "coverage-overlap")


def test_smoke_config_is_small_and_overridable(study):
    cfg = study.make_config(study.parse_args(["--smoke", "--seeds", "3"]))
    assert cfg.smoke and cfg.seeds == 3 and len(cfg.runs) <= 3 and cfg.snapshots() == [15, 30]
    with pytest.raises(ValueError, match="seeds"):
        study.make_config(study.parse_args(["--seeds", "0"]))


def test_unknown_settings_are_named(study, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"iteratons": 10}))
    with pytest.raises(ValueError, match="iteratons"):
        study.make_config(study.parse_args(["--config", str(bad)]))


def test_smoke_may_not_overwrite_the_study_report(study, capsys):
    assert study.main(["--smoke", "--report-dir", str(study.HERE)]) == 2
    assert "must not overwrite" in capsys.readouterr().err


def _study(study, tmp_path, *argv):
    cfg = study.make_config(study.parse_args(["--smoke", *argv]))
    return study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")


def test_out_folder_refuses_other_settings_but_allows_more_seeds(study, tmp_path):
    _study(study, tmp_path).check_config()
    saved = json.loads((tmp_path / "out" / "study_config.json").read_text())
    assert saved["iterations"] == 30
    _study(study, tmp_path, "--seeds", "4", "--jobs", "1").check_config()  # resumable settings
    bad = tmp_path / "more.json"
    bad.write_text(json.dumps({"iterations": 40}))
    with pytest.raises(ValueError, match="iterations"):
        _study(study, tmp_path, "--config", str(bad)).check_config()


def test_report_names_every_setting_that_departs_from_the_defaults(study, tmp_path):
    def line(argv):
        cfg = study.make_config(study.parse_args(argv))
        return study.Report(study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")).settings()[2]

    assert "the script's defaults" in line([])
    assert line(["--jobs", "1", "--device", "cpu"]) == line([])  # execution settings change no result
    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"iterations": 1000, "patience": 4}))
    text = line(["--config", str(budget), "--n-singles", "8"])
    assert "`iterations` = 1000 (script default: 1200)" in text and "`patience` = 4 (script default: 2)" in text
    assert "jobs" not in text
    cfg = study.make_config(study.parse_args([]))
    lines = study.Report(study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")).settings()
    assert [x for x in lines if x.startswith("- design change: ")] == [
        f"- design change: {x}" for x in study.DESIGN_CHANGES]


def test_each_seed_samples_the_generators_anew(study, tmp_path):
    s = _study(study, tmp_path)
    assert s.store(0).directory != s.store(1).directory != s.store(1, times=3).directory
    assert len({s.sample_seed(i) for i in range(10)}) == 10


def test_study_arms_follow_the_design(study, tmp_path):
    from ensemble.search.result import Ensemble

    s = _study(study, tmp_path, "--n-singles", "2")
    s.names = [f"g{i}@1" for i in range(6)]

    class Tables:
        def __init__(self, best: int) -> None:
            self.names, self.d = s.names, np.eye(6)[best]

    s.tables = {"random": Tables(5), "in-domain": Tables(4)}
    s.gstars = {("published", "max-fidelity", "random"): Ensemble(["g0@1", "g1@1"], rule="max-fidelity"),
                ("published", "knee", "random"): Ensemble(["g0@1", "g2@1", "g3@1"], rule="knee"),
                ("class-aware", "knee", "random"): Ensemble(["g0@1", "g1@1"], rule="knee")}
    s.distinct = {}
    for key, e in s.gstars.items():
        s.distinct.setdefault(tuple(e.members), []).append(key)
    s.choose_arms()
    kinds = [a.kind for a in s.arms]
    assert kinds[:5] == ["real", "gstar", "gstar", "gstar", "naive"] and s.arms[4].members == tuple(s.names)
    assert s.arms[1].id == s.arms[3].id  # one set of trainings for two labels of the same members
    assert s.sizes == [2, 3] and all(len(v) == s.cfg.n_random for v in s.random_labels.values())
    randoms = [a for a in s.arms if a.kind == "random"]
    assert all(frozenset(a.members) not in {frozenset(m) for m in s.distinct} for a in randoms)
    assert len({a.id for a in randoms}) == len(randoms)
    # a seeded sample of 2 singles, plus the best generator by score d per backbone (chosen without test)
    assert len(s.singles_sample) == 2 and {"g5@1", "g4@1"} <= set(s.singles)
    first = [a.id for a in s.arms]
    s.choose_arms()
    assert [a.id for a in s.arms] == first and len(s.settings) == 16
