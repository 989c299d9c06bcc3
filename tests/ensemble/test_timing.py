"""Stage timing: wall and CPU time and peak memory per stage, kept across resumes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ensemble.timing import PeakMemory, StageTimer


def test_stages_add_up_across_invocations_and_cached_stages_add_nothing(tmp_path):
    path = tmp_path / "stages.json"
    said = []
    timer = StageTimer(path, echo=said.append, idle_workers=False)
    with timer.stage("work") as st:
        st.note = "busy"
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    first = dict(timer.data["work"])
    assert first["invocations"] == 1 and first["wall_s"] >= 0.04 and first["cpu_s"] >= 0.04
    assert first["note"] == "busy" and first["last_cached"] is False and first["peak_rss_mb"] > 0
    assert first["peak_rss_tree_mb"] >= first["peak_rss_mb"]
    assert said[0] == "stage work ..." and said[1].startswith("stage work done in")
    # a resumed run reads the totals back; a cached stage adds nothing
    again = StageTimer(path, echo=said.append, idle_workers=False)
    with again.stage("work") as st:
        st.cached = True
        time.sleep(0.02)
    assert again.data["work"]["wall_s"] == first["wall_s"] and again.data["work"]["last_cached"] is True
    assert st.cached and st.wall_s >= 0.02  # the invocation's own measurement, cached or not
    assert said[-1].startswith("stage work cached")
    with again.stage("work"):
        pass
    assert again.data["work"]["invocations"] == 2 and again.data["work"]["wall_s"] > first["wall_s"]
    # replace: keep only the latest measurement
    with again.stage("work", replace=True):
        pass
    assert again.data["work"]["invocations"] == 1
    assert json.loads(path.read_text()) == again.data
    assert again.total_wall() == pytest.approx(again.data["work"]["wall_s"])


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(every=0.01) as before:
        pass
    with PeakMemory(every=0.01) as peak:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        time.sleep(0.05)
        del block
    assert peak.own >= before.own + 32 * 2**20 and peak.total >= peak.own


def test_timer_without_a_path_keeps_data_in_memory(tmp_path):
    timer = StageTimer(idle_workers=False)
    with timer.stage("a"):
        pass
    assert set(timer.data) == {"a"} and not list(tmp_path.iterdir())
