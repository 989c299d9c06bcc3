"""The downstream protocol: in memory (compare, summarize) and journaled (resumable)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.downstream.arms import EQUAL_SAMPLES_ARM, Arm
from ensemble.downstream.metrics import METRICS
from ensemble.downstream.protocol import (
    JOURNAL_COLUMNS,
    Journal,
    add_equal_samples_arm,
    best_single,
    compare,
    compare_groups,
    group_values,
    plan_runs,
    run_journaled,
    run_protocol,
    summarize,
    summarize_groups,
    train_arm,
)
from ensemble.downstream.sources import SampleStore, TrainingSource


def test_compare_and_summarize(pneumonia_small, pneumonia_val):
    real = pneumonia_small.subset(128, seed=2)
    val = pneumonia_val.subset(64, seed=0)
    rng = np.random.default_rng(0)
    fake = {f"g{i}": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8) for i in range(3)}
    lab = np.tile([0, 1], 32)

    def arm(names):
        return TrainingSource(np.concatenate([fake[n] for n in names]), np.tile(lab, len(names)),
                              groups=np.repeat(np.arange(len(names)), 64), samples_per_epoch=128)

    arms = {"real": TrainingSource.from_dataset(real), "G*": arm(["g0", "g1"]),
            "single:g0": arm(["g0"]), "single:g1": arm(["g1"]), "single:g2": arm(["g2"]),
            "random-ensemble-0": arm(["g1", "g2"])}
    df = compare(arms, val, val, seeds=(0, 1), epochs=1, device="cpu", progress=False)
    assert list(df.columns[:2]) == ["arm", "seed"] and set(METRICS) <= set(df.columns)
    assert len(df) == 12 and df.groupby("arm").size().eq(2).all()
    s = summarize(df)
    assert {"arm", "n_runs", "g_mean_mean", "g_mean_std", "aggregate", "note"} <= set(s.columns)
    rows = s.set_index("arm")
    assert {"single (mean)", "single (best)", "random-ensemble (mean)"} <= set(rows.index)
    singles = rows.loc[["single:g0", "single:g1", "single:g2"], "g_mean_mean"]
    assert rows.loc["single (mean)", "g_mean_mean"] == pytest.approx(singles.mean())
    # "single (best)" is chosen on the validation split, never on test (issue 13)
    assert {f"val_{m}" for m in METRICS} <= set(df.columns)
    val_means = df[df.arm.str.startswith("single:")].groupby("arm")["val_g_mean"].mean()
    best = val_means.idxmax()  # ties: the first name, as best_single_by_validation
    assert best_single(df) == best.removeprefix("single:")
    assert rows.loc["single (best)", "g_mean_mean"] == pytest.approx(singles[best])
    assert rows.loc["single (best)", "note"].startswith(best)
    assert "validation" in rows.loc["single (best)", "note"]
    # a table without validation columns gets no "single (best)" row rather than a test-chosen one
    no_val = summarize(df.drop(columns=[c for c in df.columns if c.startswith("val_")]))
    assert "single (best)" not in set(no_val["arm"])
    g = df[df.arm == "G*"]["accuracy"]
    assert rows.loc["G*", "accuracy_mean"] == pytest.approx(g.mean())
    assert rows.loc["G*", "accuracy_std"] == pytest.approx(g.std())
    # run_protocol accepts a plain (images, labels) tuple
    one = run_protocol((real.images, real.labels), val, val, seeds=(3,), epochs=1, device="cpu",
                       progress=False)
    assert isinstance(one, pd.DataFrame) and one["seed"].tolist() == [3]



def _row(arm_id, seed, settings, cols=JOURNAL_COLUMNS):
    r = {c: 0.5 for c in cols}
    r.update(arm_id=arm_id, arm="a, b", kind="single", members="x@1", n_members=1, seed=seed,
             settings=settings, ok=1)
    return ",".join(f'"{r[c]}"' if c == "arm" else str(r[c]) for c in cols)


def test_journal_skips_torn_lines_and_other_settings(tmp_path):
    path = tmp_path / "downstream.csv"
    text = "\n".join([",".join(JOURNAL_COLUMNS), _row("0123", 0, "abc123"), _row("0123", 1, "other"),
                      _row("1e5", 0, "abc123"), _row("0123", 2, "abc123")[:40]])
    path.write_text(text)  # the last line was cut off mid-write
    journal = Journal(path, "abc123")
    rows = journal.load()
    assert set(rows) == {("0123", 0), ("1e5", 0)}  # ids stay strings; other settings and torn rows dropped
    assert rows[("0123", 0)]["arm"] == "a, b"
    new = {c: 0.25 for c in JOURNAL_COLUMNS}
    new.update(arm_id="77", arm="b", kind="single", members="y@1", n_members=1, seed=0,
               settings="abc123", ok=1)
    journal.append([new])  # ends the torn line first, then appends
    assert set(journal.load()) == {("0123", 0), ("1e5", 0), ("77", 0)}
    assert Journal(tmp_path / "none.csv", "abc123").load() == {}


def test_plan_runs_is_seed_major_and_skips_done_and_duplicate_arms():
    a = Arm("G* (x)", "gstar", ("p", "q"))
    same = Arm("G* (y)", "gstar", ("q", "p"))
    s = Arm("single: p", "single", ("p",))
    real = Arm("real", "real")
    todo = plan_runs([real, a, same, s], range(2), done={(a.id, 1)})
    assert [(arm.label, seed) for arm, seed in todo] == [("real", 0), ("G* (x)", 0), ("single: p", 0),
                                                         ("real", 1), ("single: p", 1)]


def test_group_summaries_average_arms_per_seed_on_complete_seeds():
    rows = {}
    for arm, vals in {"a": [0.6, 0.7, 0.8], "b": [0.4, 0.5, None], "c": [0.9, 0.9, 0.9]}.items():
        for seed, v in enumerate(vals):
            if v is not None:
                rows[(arm, seed)] = {f"{p}_{m}": v for p in ("val", "test") for m in METRICS}
    seeds, vals = group_values(rows, ["a", "b"], "test_g_mean", range(3))
    assert seeds.tolist() == [0, 1] and vals == pytest.approx([0.5, 0.6])
    table = summarize_groups(rows, {"a": (["a"], "one"), "ab": (["a", "b"], "two"), "none": ([], "")},
                             range(3))
    assert table["arm"].tolist() == ["a", "ab"] and table["n_seeds"].tolist() == [3, 2]
    assert list(table.columns[:3]) == ["arm", "note", "n_seeds"] and "val_g_mean" in table
    ab = table.set_index("arm").loc["ab"]
    assert ab["g_mean_mean"] == pytest.approx(0.55) and ab["g_mean_std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert ab["spread"] == "0.177 (0.450-0.700)"  # std, min-max of the arms' own means (a 0.7, b 0.45)
    tests = compare_groups(rows, {"c": (["c"], ""), "a": (["a"], ""), "b": (["b"], "")},
                           [("c", "a"), ("c", "b"), ("c", "missing")], range(3), n_boot=200,
                           seed_of=lambda g, b, m: 0)
    assert tests[["G*", "baseline"]].values.tolist() == [["c", "a"], ["c", "b"]]
    assert tests["n"].tolist() == [3, 2] and tests["diff"].tolist() == pytest.approx([0.2, 0.45])
    assert {"lo", "hi", "p_t", "p_w", "d_accuracy", "p_roc_auc", "p_holm"} <= set(tests.columns)
    assert np.all(tests["p_holm"] >= tests["p_t"])


@pytest.fixture
def small_dataset(tmp_path, pneumonia_small, pneumonia_val, pneumonia_test):
    """A small file in MedMNIST layout: real images, fewer of them."""
    path = tmp_path / "pneumoniamnist_small.npz"
    parts = {"train": pneumonia_small.subset(96, seed=0), "val": pneumonia_val.subset(48, seed=0),
             "test": pneumonia_test.subset(48, seed=0)}
    np.savez(path, **{f"{k}_images": v.images for k, v in parts.items()},
             **{f"{k}_labels": v.labels[:, None] for k, v in parts.items()})
    return str(path)


def test_journaled_protocol_resumes_and_gives_the_same_table(tmp_path, toy_catalog, small_dataset):
    store = SampleStore(tmp_path / "samples")
    store.ensure(toy_catalog, ["toy0@0", "toy1@0", "toy2@0"], n_per_class=16, seed=0, device="cpu")
    arms = [Arm("real", "real"), Arm("G*", "gstar", ("toy0@0", "toy1@0")),
            Arm("G* again", "gstar", ("toy1@0", "toy0@0")), Arm("single: toy2@0", "single", ("toy2@0",))]
    journal = Journal(tmp_path / "downstream.csv", "settings-1")

    def tasks(todo):
        return [dict(arm_id=arm.id, arm=arm.label, kind=arm.kind, members=list(arm.members), seed=seed,
                     settings="settings-1", samples_dir=str(store.directory), dataset=small_dataset,
                     data_root=None, model="small-cnn", epochs=1, patience=1, lr_patience=1,
                     samples_per_epoch=64, device="cpu", threads=1, quiet=True) for arm, seed in todo]

    groups = {a.label: ([a.id], a.kind) for a in arms}
    seen = []
    assert run_journaled(tasks(plan_runs(arms, range(2))), journal, on_row=seen.append) == 6
    assert len(seen) == 6 and set(seen[0]) == set(JOURNAL_COLUMNS)
    first = summarize_groups(journal.load(), groups, range(2))
    assert first["n_seeds"].tolist() == [2, 2, 2, 2]
    # a rerun has nothing left to do and gives the same table
    assert plan_runs(arms, range(2), journal.load()) == []
    # a run killed during its last training: that line is lost, the rerun redoes only it
    lines = journal.path.read_text().splitlines(keepends=True)
    journal.path.write_text("".join(lines[:-1]) + lines[-1][:30])
    todo = plan_runs(arms, range(2), journal.load())
    assert len(todo) == 1
    assert run_journaled(tasks(todo), journal) == 1
    again = summarize_groups(journal.load(), groups, range(2))
    pd.testing.assert_frame_equal(first, again)
    # one row of train_arm: the journal's columns, validation and test metrics, the seed
    row = train_arm(tasks([(arms[3], 5)])[0])
    assert row["seed"] == 5 and row["members"] == "toy2@0" and 0 <= row["test_g_mean"] <= 1
    assert np.isnan(row["threshold"]) and row["test_g_mean_05"] == row["test_g_mean"]
    # a validation-chosen threshold: the main metrics use it, the g-mean at 0.5 stands beside them
    task = dict(tasks([(arms[3], 5)])[0], threshold="val", class_weight=[0.7, 0.3])
    tuned = train_arm(task)
    assert 0 < tuned["threshold"] < 1 and 0 <= tuned["test_g_mean_05"] <= 1
    assert tuned["val_g_mean"] >= tuned["val_g_mean_05"] - 1e-12  # the threshold maximises val g-mean


def test_protocol_options_and_equal_samples_arm(toy_catalog, pneumonia_small, pneumonia_val):
    from ensemble.search.result import Ensemble

    real = pneumonia_small.subset(96, seed=3)
    val = pneumonia_val.subset(64, seed=1)
    arms = {"real": TrainingSource.from_dataset(real)}
    for s in range(3):
        x = toy_catalog.load(f"toy{s}@0").sample(32, labels=np.tile([0, 1], 16), seed=s)
        arms[f"single:toy{s}@0"] = TrainingSource(x, np.tile([0, 1], 16), groups=np.zeros(32, int))
    kw = dict(seeds=(0,), epochs=1, batch_size=32, device="cpu", progress=False)
    with pytest.raises(ValueError, match="real_labels"):
        run_protocol(arms["single:toy0@0"], val, val, class_weight="real", **kw)
    with pytest.raises(ValueError, match="threshold"):
        run_protocol(arms["real"], val, val, threshold="test", **kw)
    df = compare(arms, val, val, class_weight="real", threshold="val", **kw)
    assert df["threshold"].between(0, 1).all()
    assert df.set_index("arm")["steps"].to_dict() == {"real": 3, **{f"single:toy{s}@0": 1 for s in range(3)}}
    # the threshold is chosen on validation: validation g-mean at least that of arg-max
    plain = compare(arms, val, val, class_weight="real", **kw)
    assert plain["threshold"].isna().all()
    assert (df["val_g_mean"].to_numpy() >= plain["val_g_mean"].to_numpy() - 1e-12).all()
    ens = Ensemble(["toy0@0", "toy2@0"])
    out = add_equal_samples_arm(df, toy_catalog, ens, val, val, n_per_class=8, seed=0,
                                samples_per_epoch=64, class_weight="real", real_labels=real.labels,
                                threshold="val", **kw)
    assert out.iloc[: len(df)].equals(df) and out["arm"].iloc[-1] == EQUAL_SAMPLES_ARM
    assert len(out) == len(df) + 1
    assert add_equal_samples_arm(df[df.arm == "real"], toy_catalog, ens, val, val, n_per_class=8,
                                 seed=0, **kw).equals(df[df.arm == "real"])
