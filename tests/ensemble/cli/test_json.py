"""``--json`` on every command prints exactly one JSON object on stdout (human output goes to
stderr), on success and on error; ``zoo list --format`` gives a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ensemble.cli import main

pytestmark = pytest.mark.slow


def _json(capsys, argv: list) -> dict:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must hold one JSON object, got {out!r}"
    obj = json.loads(lines[0])
    assert isinstance(obj, dict) and obj["ok"] is (rc == 0), obj
    return obj


def test_every_command_prints_one_json_object(data_root, tmp_path, capsys):
    data = ["--dataset", "pneumoniamnist", "--data-root", data_root]
    zoo = tmp_path / "zoo"
    r = _json(capsys, ["zoo", "train", *data, "--families", "acgan,cgan", "--iterations", "4",
                       "--snapshots", "2,4", "--batch-size", "16", "--subset", "200", "--device", "cpu",
                       "--out", zoo, "--json"])
    assert r["command"] == "zoo train" and [x["run"] for x in r["runs"]] == ["acgan", "cgan"]
    names = [n for x in r["runs"] for n in x["names"]]
    assert len(names) == 4

    r = _json(capsys, ["zoo", "list", zoo, "--json"])
    assert [g["name"] for g in r["generators"]] == names
    assert [g["name"] for g in _json(capsys, ["zoo", "architectures", "--json"])["architectures"]]
    r = _json(capsys, ["zoo", "sample", zoo, names[0], "-n", "8", "--out", tmp_path / "g.png", "--json"])
    assert r["n_images"] == 8 and (tmp_path / "g.png").is_file()

    tables = tmp_path / "t.npz"
    r = _json(capsys, ["score", "--zoo", zoo, *data, "--n-samples", "60", "--subset", "200",
                       "--label-epochs", "1", "--device", "cpu", "--out", tables, "--json"])
    assert r["n_generators"] == 4 and r["best"]["name"] in names and tables.is_file()
    # issue 17: every generator's label agreement beside density, coverage and d, in JSON and CSV
    assert sorted(g["name"] for g in r["generators"]) == sorted(names)
    assert all(0 <= g["label_agreement"] <= 1 and {"density", "coverage", "d"} <= set(g)
               for g in r["generators"])
    assert r["label_fidelity"]["epochs"] == 1 and r["label_fidelity"]["n_samples"] == 60
    import pandas as pd

    csv = pd.read_csv(r["summary_csv"])
    assert sorted(csv["name"]) == sorted(names) and csv["label_agreement"].between(0, 1).all()

    r = _json(capsys, ["search", "--tables", tables, "--out", tmp_path / "s", "--pop-size", "8",
                       "--n-gen", "3", "--json"])
    sel = tmp_path / "s" / "selected.json"
    assert r["selected"]["members"] == json.loads(sel.read_text())["members"]

    r = _json(capsys, ["export", "--zoo", zoo, "--selected", sel, "--n-per-class", "5",
                       "--out", tmp_path / "x", "--device", "cpu", "--json"])
    assert r["n_images"] == 10 and "meta.json" in r["files"]

    r = _json(capsys, ["evaluate", "--zoo", zoo, "--selected", sel, *data, "--seeds", "0",
                       "--epochs", "1", "--min-steps", "0", "--warmup-steps", "0", "--n-per-class", "20", "--n-random", "1", "--no-singles",
                       "--device", "cpu", "--out", tmp_path / "e", "--json"])
    assert {row["arm"] for row in r["summary"]} >= {"real", "G*"}

    r = _json(capsys, ["export", "--zoo", zoo, "--selected", sel, "--n-per-class", "5",
                       "--out", tmp_path / "x", "--json"])  # exists: an error, still one object
    assert r["ok"] is False and "already exists" in r["error"]


def test_zoo_list_formats(data_root, tmp_path, capsys):
    zoo = tmp_path / "zoo"
    assert main(["zoo", "train", "--dataset", "pneumoniamnist", "--data-root", str(data_root),
                 "--families", "dcgan", "--iterations", "2", "--snapshots", "1,2", "--batch-size", "8",
                 "--subset", "64", "--device", "cpu", "--out", str(zoo), "-q"]) == 0
    capsys.readouterr()
    assert main(["zoo", "list", str(zoo), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["dcgan@1", "dcgan@2"] and rows[0]["image_shape"] == "28x28"
    assert main(["zoo", "list", str(zoo), "--format", "json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["dcgan@1", "dcgan@2"]
    assert main(["zoo", "list", str(zoo)]) == 0
    assert "dcgan@2" in capsys.readouterr().out
