"""Fast checks of the PneumoniaMNIST study script: configuration, statistics, resumable results.

The end-to-end run is ``run_study.py --smoke`` (minutes); these tests cover the parts that decide
what the report says, in a second or two.
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
    spec = importlib.util.spec_from_file_location("run_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_study"] = mod  # dataclasses look their module up here
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("run_study", None)


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


def test_paired_test_detects_a_shift_and_not_noise(study):
    rng = np.random.default_rng(0)
    b = rng.normal(0.6, 0.05, size=8)
    up = study.paired_test(b + 0.1 + rng.normal(0, 0.005, 8), b, n_boot=2000, seed=1)
    assert up["n"] == 8 and up["diff"] == pytest.approx(0.1, abs=0.01)
    assert up["lo"] > 0 and up["p_t"] < 0.001 and up["p_w"] < 0.05
    assert study.verdict(up) == "beat"
    noise = study.paired_test(b + rng.normal(0, 0.05, 8), b, n_boot=2000, seed=1)
    assert noise["lo"] < 0 < noise["hi"] and study.verdict(noise).startswith("did not beat")
    same = study.paired_test(b, b, n_boot=100, seed=0)
    assert same["diff"] == 0 and same["p_t"] == 1.0 and study.verdict(same) == "tied with"
    down = study.paired_test(b - 0.2, b, n_boot=500, seed=0)
    assert study.verdict(down) == "lost to"


def test_holm_is_monotone_and_bounded(study):
    adj = study.holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adj[0] == pytest.approx(0.04) and adj[2] == pytest.approx(0.09)
    assert adj[1] == pytest.approx(0.09) and adj[4] == pytest.approx(0.5) and np.isnan(adj[3])


def test_downstream_rows_survive_a_torn_line_and_other_settings(study, tmp_path):
    cfg = study.make_config(study.parse_args(["--smoke"]))
    s = study.Study(cfg, tmp_path / "out", tmp_path / "report", None, "cmd")
    s.settings = "abc123"
    cols = study.CSV_COLUMNS

    def row(arm_id, seed, settings):
        r = {c: 0.5 for c in cols}
        r.update(arm_id=arm_id, arm="a, b", kind="single", members="x@1", n_members=1, seed=seed,
                 settings=settings, ok=1)
        return ",".join(f'"{r[c]}"' if c == "arm" else str(r[c]) for c in cols)

    text = "\n".join([",".join(cols), row("0123", 0, "abc123"), row("0123", 1, "other"),
                      row("1e5", 0, "abc123"), row("0123", 2, "abc123")[:40]])
    (s.out / "downstream.csv").write_text(text)  # the last line was cut off mid-write
    rows = s.load_rows()
    assert set(rows) == {("0123", 0), ("1e5", 0)}  # ids stay strings; other settings and torn rows dropped
    assert rows[("0123", 0)]["arm"] == "a, b"


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
