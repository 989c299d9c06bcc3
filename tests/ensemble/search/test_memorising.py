"""EnsembleSearch(exclude_memorising=True) and the CLI's --exclude-memorising (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ensemble.cli import main
from ensemble.scoring.tables import ScoreTables
from ensemble.search import EnsembleSearch


@pytest.fixture(scope="module")
def audited():
    """Tables of 6 generators with a memorisation audit; "copy" is made of training features."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((900, 16)).astype(np.float32)
    train, val, rest = x[:400], x[400:550], x[550:]
    fakes = {f"g{i}": (rest[i * 50:(i + 1) * 50] * (1 + 0.1 * i)).astype(np.float32) for i in range(5)}
    fakes["copy"] = train[rng.integers(0, 400, 60)]  # a memorising member with top fidelity
    return ScoreTables.from_features(train, fakes, k=5, holdout=val, progress=False)


def test_flagged_members_left_out(audited):
    assert audited.flagged == ["copy"]
    plain = EnsembleSearch(algorithm="exhaustive", seed=0).fit(audited)
    assert any("copy" in m for m in plain.front_["members"]) and plain.excluded_ == []
    s = EnsembleSearch(algorithm="exhaustive", seed=0, exclude_memorising=True).fit(audited)
    assert s.excluded_ == ["copy"] and "copy" not in s.tables_names_
    assert not any("copy" in m for m in s.front_["members"])
    # the same front as a search over the tables without the flagged member
    ref = EnsembleSearch(algorithm="exhaustive", seed=0).fit(audited.subset([f"g{i}" for i in range(5)]))
    np.testing.assert_array_equal(s.front_objectives(), ref.front_objectives())
    g = s.select("max-fidelity")
    assert g.meta["excluded_memorising"] == ["copy"]
    assert sorted(g.meta["memorisation"]) == sorted(g.members)
    assert all(not row["flagged"] for row in g.meta["memorisation"].values())


def test_exclusion_needs_an_audit():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((50, 4)).astype(np.float32)
    t = ScoreTables.from_features(real, {"a": real[:20] + 1, "b": real[20:40] - 1}, progress=False)
    with pytest.raises(ValueError, match="memorisation audit"):
        EnsembleSearch(exclude_memorising=True).fit(t)
    assert "memorisation" not in EnsembleSearch(algorithm="exhaustive").fit(t).select().meta


def test_exclusion_leaving_fewer_than_two(audited):
    two = audited.subset(["g0", "copy"])
    with pytest.raises(ValueError, match="fewer than 2 are left"):
        EnsembleSearch(exclude_memorising=True).fit(two)


def test_cli_exclude_memorising(audited, tmp_path, capsys):
    path = audited.save(tmp_path / "tables.npz")
    assert main(["search", "--tables", str(path), "--out", str(tmp_path / "s"), "--algorithm",
                 "exhaustive", "--exclude-memorising"]) == 0
    assert "left out 1 generator(s) the memorisation audit flags: copy" in capsys.readouterr().out
    sel = json.loads((tmp_path / "s" / "selected.json").read_text())
    assert "copy" not in sel["members"] and sel["meta"]["excluded_memorising"] == ["copy"]
