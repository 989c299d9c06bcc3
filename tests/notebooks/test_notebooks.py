"""Both notebooks execute headless without error (nbclient) on tiny sizes."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def _run(name: str, cwd: Path, env: dict) -> nbformat.NotebookNode:
    nb = nbformat.read(NB_DIR / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def test_pareto_analysis_notebook(tiny_run, tmp_path):
    """The notebook shows the run's saved front and G* (it never re-fits a search)."""
    import json

    out, _ = tiny_run
    source = "".join(c.source for c in nbformat.read(NB_DIR / "pareto_analysis.ipynb", as_version=4).cells)
    assert ".fit(" not in source and "EnsembleSearch(" not in source
    nb = _run("pareto_analysis.ipynb", tmp_path, {"GAN_ENSEMBLE_RUN": str(out)})
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    saved = json.loads((out / "selected.json").read_text())
    assert f"G*: {', '.join(saved['members'])} ({saved['rule']})" in printed


def test_quickstart_notebook(tmp_path, data_root):
    nb = _run("quickstart.ipynb", tmp_path, {
        "GAN_ENSEMBLE_DATA": str(data_root), "GAN_ENSEMBLE_NB_WORK": str(tmp_path / "work"),
        "GAN_ENSEMBLE_NB_ITERATIONS": "4", "GAN_ENSEMBLE_NB_SAMPLES": "100", "GAN_ENSEMBLE_NB_REAL": "300",
    })
    assert (tmp_path / "work" / "synthetic" / "pneumoniamnist_synthetic.npz").is_file()
    assert nb.cells[-1].outputs, "the last cell prints the exported arrays"
