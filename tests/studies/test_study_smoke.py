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
    assert len(cfg.runs) >= 8 and cfg.snapshots() == [300, 600, 900, 1200, 1500]
    assert set(cfg.weights) == {"random", "in-domain"} and cfg.k == 5
    assert cfg.n_samples is None  # as many samples per generator as real training images
    assert cfg.seeds >= 5 and cfg.n_random >= 5
    assert not any(r["arch"] == "wgan-gp" for r in cfg.runs)
    with_gp = study.make_config(study.parse_args(["--with-wgan-gp"]))
    assert with_gp.runs[-1] == {"arch": "wgan-gp"} and len(with_gp.runs) == len(cfg.runs) + 1
    progan = dict(cfg.run_specs())["progan"]
    assert progan["stage_iters"] == cfg.iterations // 5


def test_smoke_config_is_small_and_overridable(study):
    cfg = study.make_config(study.parse_args(["--smoke", "--seeds", "3"]))
    assert cfg.smoke and cfg.seeds == 3 and len(cfg.runs) <= 3 and cfg.snapshots() == [15, 30]
    with pytest.raises(ValueError, match="epochs"):
        study.make_config(study.parse_args(["--epochs", "0"]))


def test_smoke_may_not_overwrite_the_study_report(study, capsys):
    assert study.main(["--smoke", "--report-dir", str(study.HERE)]) == 2
    assert "must not overwrite" in capsys.readouterr().err


def test_out_folder_refuses_other_settings_but_allows_more_seeds(study, tmp_path):
    def make(*argv):
        cfg = study.make_config(study.parse_args(["--smoke", *argv]))
        return study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")

    make().check_config()
    saved = json.loads((tmp_path / "out" / "study_config.json").read_text())
    assert saved["iterations"] == 30
    make("--seeds", "4", "--jobs", "1").check_config()  # resumable settings
    with pytest.raises(ValueError, match="iterations"):
        make("--iterations", "40").check_config()


def test_report_names_every_setting_that_departs_from_the_full_protocol(study, tmp_path):
    def line(argv):
        cfg = study.make_config(study.parse_args(argv))
        s = study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")
        return study.Report(s).deviations()

    assert line([]) == "- settings: the script's full protocol (no overrides)"
    assert line(["--jobs", "1", "--device", "cpu"]) == line([])  # execution settings change no result
    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"iterations": 1000, "patience": 4}))
    text = line(["--config", str(budget), "--n-singles", "8"])
    assert "`iterations` = 1000 (full protocol: 1500)" in text and "`patience` = 4 (full protocol: 6)" in text
    assert "`n_singles` = 8 (full protocol: null)" in text and "jobs" not in text


def test_study_arms_follow_the_design(study, tmp_path):
    from ensemble.search.result import Ensemble

    cfg = study.make_config(study.parse_args(["--smoke", "--n-singles", "2"]))
    s = study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")
    s.names = [f"g{i}@1" for i in range(6)]
    s.n_pc = 10

    class Tables:
        def __init__(self, best: int) -> None:
            self.names, self.d = s.names, np.eye(6)[best]

    s.tables = {"random": Tables(5), "in-domain": Tables(5)}
    s.gstars = {("max-fidelity", "random"): Ensemble(["g0@1", "g1@1"], rule="max-fidelity"),
                ("knee", "random"): Ensemble(["g0@1", "g2@1", "g3@1"], rule="knee")}
    s.choose_arms()
    kinds = [a.kind for a in s.arms]
    assert kinds[:4] == ["real", "gstar", "gstar", "naive"] and s.arms[3].members == tuple(s.names)
    assert sorted(s.random_labels) == [2, 3] and all(len(v) == cfg.n_random for v in s.random_labels.values())
    gstar_sets = {frozenset(e.members) for e in s.gstars.values()}
    randoms = [a for a in s.arms if a.kind == "random"]
    assert all(frozenset(a.members) not in gstar_sets for a in randoms)
    assert len({a.id for a in randoms}) == len(randoms)
    # a seeded sample of 2 singles, plus the best generator by score d (chosen without test)
    assert len(s.singles_sample) == 2 and "g5@1" in s.singles
    assert [a.label for a in s.arms if a.kind == "single"] == [f"single: {n}" for n in s.singles]
    first = [a.id for a in s.arms]
    s.choose_arms()
    assert [a.id for a in s.arms] == first and len(s.settings) == 16
