"""End to end on real PneumoniaMNIST: zoo → scores → search → G* → dataset → downstream → report.

Tiny sizes (seconds of training), but every real stage runs; the notebooks test reuses this run.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ensemble.cli import main
from ensemble.pipeline import make_config, run_pipeline
from ensemble.search import load_evaluated, load_front, load_selected


def test_pipeline_produces_every_artefact(tiny_run):
    out, res = tiny_run
    for rel in ["report.md", "tables.npz", "selected.json", "front.csv", "history.csv", "rules.csv",
                "figures/pareto.png", "figures/downstream.png", "comparison.csv", "summary.csv",
                "dataset/manifest.csv", "dataset/meta.json", "dataset/pneumoniamnist_synthetic.npz"]:
        assert (out / rel).is_file(), rel
    sel = json.loads((out / "selected.json").read_text())
    assert len(sel["members"]) >= 2 and sel["rule"] == "max-fidelity"
    with np.load(out / "dataset/pneumoniamnist_synthetic.npz") as z:
        assert z["train_images"].dtype == np.uint8 and z["train_images"].shape == (80, 28, 28)
        assert np.bincount(z["train_labels"][:, 0]).tolist() == [40, 40]
    summary = pd.read_csv(out / "summary.csv")
    assert {"real", "G*", "naive (all pooled)", "best single, equal samples"} <= set(summary["arm"])
    best = summary.set_index("arm").loc["single (best)", "note"]
    assert "validation" in best  # chosen on validation, never on test (issue 13)
    comparison = pd.read_csv(out / "comparison.csv")
    assert comparison["threshold"].notna().all() and "val_g_mean" in comparison.columns
    report = (out / "report.md").read_text()
    assert "roc_auc" in report and "threshold: chosen on the real validation split" in report
    assert "| zoo |" in report and "G\\*" in report and "figures/pareto.png" in report
    assert set(res.timings) == {"data", "zoo", "score", "labels", "search", "export", "downstream"}


def test_pipeline_search_files_read_back(tiny_run):
    """quickstart writes its front through save_search_outputs: load_front reads it (issue 12)."""
    out, res = tiny_run
    front = load_front(out / "front.csv")
    assert all(isinstance(m, list) and len(m) == n for m, n in zip(front["members"], front["size"], strict=True))
    sel = load_selected(out)
    assert sel.members == res.selected.members and sel.members in front["members"].tolist()
    assert front["intra_d"].max() == sel.intra_d
    assert len(load_evaluated(out)) >= len(front)


def test_second_run_reuses_every_stage(tiny_run, data_root):
    out, first = tiny_run
    res = run_pipeline(make_config("tiny", data_root=str(data_root), device="cpu"), out, progress=False)
    assert res.cached["zoo"] and res.cached["score"] and res.cached["labels"] and res.cached["downstream"]
    assert res.selected.members == first.selected.members


def test_quickstart_cli_rejects_bad_settings(tmp_path, capsys):
    assert main(["quickstart", "--profile", "tiny", "--iterations", "0", "--out", str(tmp_path)]) == 2
    assert "iterations must be positive" in capsys.readouterr().err


def test_refused_rerun_changes_nothing_on_disk(tiny_run, data_root, capsys):
    """A rerun into the same folder with another seed or zoo is refused before anything is written."""
    out, _ = tiny_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    config_text = (out / "config.json").read_text()
    rc = main(["quickstart", "--profile", "tiny", "--data-root", str(data_root), "--device", "cpu",
               "--seed", "7", "--iterations", "8", "--snapshots", "4,8", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "seed: 0 in the folder, 7 now" in err and "iterations: 6 in the folder, 8 now" in err
    assert "--seed" in err and "--iterations" in err and "new --out" in err
    assert (out / "config.json").read_text() == config_text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def _markdown_table_after(text: str, heading_line: str) -> pd.DataFrame:
    """The first markdown table after the line that starts with ``heading_line``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_line))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return pd.DataFrame(rows[2:], columns=rows[0])


def test_every_generator_has_its_label_agreement(tiny_run):
    """Issue 17: label agreement beside density, coverage and d in the tables, tables.csv and report."""
    from ensemble.scoring.tables import ScoreTables

    out, res = tiny_run
    tables = ScoreTables.load(out / "tables.npz")
    la = tables.label_agreement
    assert la is not None and la.shape == (tables.n_generators,) and ((la >= 0) & (la <= 1)).all()
    info = tables.meta["label_fidelity"]
    assert info["epochs"] == res.config.label_epochs == 1 and info["labels"] == "balanced"
    assert 0.5 < info["val_accuracy"] <= 1 and info["n_samples"] == res.config.n_samples
    summary = tables.summary()
    assert ["density", "coverage", "d", "label_agreement"] == [
        c for c in summary.columns if c in ("density", "coverage", "d", "label_agreement")]
    csv = pd.read_csv(out / "tables.csv").set_index("name")
    assert sorted(csv.index) == sorted(tables.names)
    np.testing.assert_allclose(csv.loc[tables.names, "label_agreement"], la)
    report = (out / "report.md").read_text()
    table = _markdown_table_after(report, "Per-generator density, coverage and d")
    assert "label_agreement" in table.columns and sorted(table["name"]) == sorted(tables.names)
    values = table["label_agreement"].astype(float)
    assert values.between(0, 1).all()
    assert "*label agreement*" in report and f"{info['val_accuracy']:.4f}" in report


def test_report_names_objectives_rule_and_degenerate_members(tiny_run):
    """Issue 13: the report names the objectives and the rule and lists degenerate members."""
    from ensemble.scoring.tables import ScoreTables

    out, res = tiny_run
    report = (out / "report.md").read_text()
    assert "Objectives: `intra-d`, `inter-d`; selection rule `max-fidelity`." in report
    sel = json.loads((out / "selected.json").read_text())
    assert sel["meta"]["objectives"] == ["intra-d", "inter-d"] and set(sel["objectives"]) == {"intra-d", "inter-d"}
    tables = ScoreTables.load(out / "tables.npz")
    assert tables.has_labels and tables.class_hits.shape == tables.hits.shape
    assert "degenerate" in tables.summary().columns
    if tables.degenerate_names:
        assert "Degenerate members (" in report
        for name in tables.degenerate_names:
            assert f"- `{name}`: {tables.meta['degenerate'][name]}" in report
    else:
        assert "Degenerate members: none." in report


def test_cli_search_on_label_aware_objectives_of_the_pipeline_tables(tiny_run, tmp_path, capsys):
    """`gan-ensemble search --objectives class-intra-d,coverage-overlap` on real PneumoniaMNIST tables."""
    out, _ = tiny_run
    rc = main(["search", "--tables", str(out / "tables.npz"), "--out", str(tmp_path / "s"), "--n-gen", "5",
               "--pop-size", "10", "--objectives", "class-intra-d,coverage-overlap", "--rule", "knee"])
    assert rc == 0
    front = load_front(tmp_path / "s")
    assert {"class_intra_d", "coverage_overlap"} <= set(front.columns)
    assert load_selected(tmp_path / "s").meta["objectives"] == ["class-intra-d", "coverage-overlap"]


def test_pipeline_reports_and_exports_the_memorisation_audit(tiny_run):
    """Issue 16: the tables carry the audit against the validation split; the report and meta.json
    carry G*'s; the nearest-neighbour figure is written."""
    from ensemble.scoring import MEMORISATION_COLUMNS, ScoreTables

    out, res = tiny_run
    tables = ScoreTables.load(out / "tables.npz")
    mem = tables.memorisation
    assert mem is not None and list(mem.index) == tables.names
    assert (mem["n_samples"] == tables.n_fake).all() and mem.attrs["n_holdout"] > 0
    meta = json.loads((out / "dataset/meta.json").read_text())
    audit = meta["memorisation"]
    assert sorted(audit) == sorted(res.selected.members)
    for name, row in audit.items():
        assert set(MEMORISATION_COLUMNS) <= set(row)
        assert row["exact_copies"] == int(mem.loc[name, "exact_copies"])
        assert row["flagged"] == bool(mem.loc[name, "flagged"])
        assert 0 <= row["byte_copies"] <= row["exact_copies"] + row["n_samples"]
        assert row["exported_byte_copies"] >= 0
    assert (out / "figures/nearest.png").is_file()
    report = (out / "report.md").read_text()
    assert "## Memorisation audit" in report and "figures/nearest.png" in report
    for name in res.selected.members:
        assert f"| {name} |" in report


def test_selected_json_records_provenance(tiny_run):
    """Issue 11: selected.json names each member's file hash as scored, the zoo and the real data."""
    from zoo.catalog import Catalog

    out, res = tiny_run
    sel = json.loads((out / "selected.json").read_text())
    catalog = Catalog(out / "zoo")
    assert sel["meta"]["members_sha256"] == {m: catalog.get(m)["sha256"] for m in sel["members"]}
    assert sel["meta"]["zoo"] == str(out / "zoo") and len(sel["meta"]["real_sha256"]) == 64
