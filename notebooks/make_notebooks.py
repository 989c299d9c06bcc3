"""Regenerate the notebooks from this script (keeps them reviewable as code): python make_notebooks.py"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def md(text):
    return nbf.v4.new_markdown_cell(text.strip())


def code(text):
    return nbf.v4.new_code_cell(text.strip())


def write(name, cells):
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, HERE / name)


write("quickstart.ipynb", [
    md("""
# gan-ensemble quickstart: the Python API from data to an exported dataset

A small zoo on real PneumoniaMNIST, embedded and scored, searched with NSGA-II, G\\* selected and its
class-balanced dataset written to disk. Sizes come from the parameters cell; the defaults take a few
minutes on a CPU (the tests run it with tiny sizes).
"""),
    code("""
import os
from pathlib import Path

# Parameters (override with environment variables)
DATA_ROOT = os.environ.get("GAN_ENSEMBLE_DATA", "../../shared/data")
WORK = Path(os.environ.get("GAN_ENSEMBLE_NB_WORK", "nb_quickstart_run"))
ITERATIONS = int(os.environ.get("GAN_ENSEMBLE_NB_ITERATIONS", "400"))
N_SAMPLES = int(os.environ.get("GAN_ENSEMBLE_NB_SAMPLES", "1000"))
N_REAL = int(os.environ.get("GAN_ENSEMBLE_NB_REAL", "2000"))
SEED = 0
"""),
    md("## 1. Real data"),
    code("""
import numpy as np
from ensemble.data import load_dataset

train = load_dataset("pneumoniamnist", split="train", root=DATA_ROOT)
print(train.name, train.images.shape, train.class_names, np.bincount(train.labels))
"""),
    md("## 2. A small zoo: two families, two snapshots each"),
    code("""
import zoo

print("families:", zoo.list_architectures())
snaps = [ITERATIONS // 2, ITERATIONS]
for arch in ["dcgan", "cgan"]:
    zoo.train(arch, train.images, train.labels, out_dir=WORK / "zoo", iterations=ITERATIONS,
              snapshots=snaps, batch_size=32, seed=SEED, dataset="pneumoniamnist")
catalog = zoo.Catalog(WORK / "zoo")
catalog.list()[["id", "name", "architecture", "iteration", "sha256"]]
"""),
    md("## 3. Embed and score"),
    code("""
from ensemble.embed import Embedder
from ensemble.scores import ScoreTables

real = train.subset(N_REAL, seed=SEED)
embedder = Embedder("resnet18", weights="random", image_size=32, seed=SEED)
tables = ScoreTables.compute(catalog, real.images, embedder, n_samples=N_SAMPLES, k=5, seed=SEED,
                             cache_dir=WORK / "cache")
tables.summary()
"""),
    md("## 4. Search the ensembles and pick G*"),
    code("""
from ensemble.search import EnsembleSearch

search = EnsembleSearch(pop_size=40, n_gen=30, seed=SEED).fit(tables)
best = search.select("max-fidelity")
print(best.members, round(best.intra_d, 4), round(best.inter_d, 4))
search.front_
"""),
    md("## 5. Sample a class-balanced dataset from G* and export it"),
    code("""
from ensemble.export import export_dataset
from ensemble.synth import sample_ensemble

samples = sample_ensemble(best, catalog, n_per_class=50, seed=SEED, class_names=train.class_names)
out = export_dataset(samples, WORK / "synthetic", overwrite=True, flag="pneumoniamnist")
print(sorted(p.name for p in out.iterdir()))
with np.load(out / "pneumoniamnist_synthetic.npz") as z:
    print(z["train_images"].shape, np.bincount(z["train_labels"][:, 0]))
"""),
])

write("pareto_analysis.ipynb", [
    md("""
# Pareto analysis of a gan-ensemble run

Open a run folder written by `gan-ensemble quickstart` (or `run_pipeline`): plot the front, list and
show the members of chosen ensembles, compare the selection rules, and read the downstream table.
"""),
    code("""
import os
from pathlib import Path

RUN = Path(os.environ.get("GAN_ENSEMBLE_RUN", "../runs/quick"))
assert RUN.is_dir(), f"run folder {RUN} not found: run `make quickstart` first or set GAN_ENSEMBLE_RUN"
"""),
    md("## The front"),
    code("""
import matplotlib.pyplot as plt
from ensemble.scores import ScoreTables
from ensemble.search import EnsembleSearch
from ensemble.plots import plot_front
from ensemble.selected import Ensemble
import json

config = json.loads((RUN / "config.json").read_text())
tables = ScoreTables.load(RUN / "tables.npz")
search = EnsembleSearch(pop_size=config["pop_size"], n_gen=config["n_gen"],
                        min_size=config["min_size"]).fit(tables)
selected = Ensemble.load(RUN / "selected.json")
fig = plot_front(search, selected=selected)
plt.show()
search.front_
"""),
    md("## Selection rules compared"),
    code("""
import pandas as pd
from ensemble.search import list_rules

rows = []
for rule in list_rules():
    e = search.select(rule)
    rows.append({"rule": rule, "size": e.size, "intra_d": e.intra_d, "inter_d": e.inter_d,
                 "members": ", ".join(e.members), "note": e.note})
pd.DataFrame(rows)
"""),
    md("## Per-generator scores and the members of G*"),
    code("""
summary = tables.summary()
summary["in G*"] = summary["name"].isin(selected.members)
summary
"""),
    code("""
from zoo import Catalog
from ensemble.grids import image_grid
import numpy as np

catalog = Catalog(RUN / "zoo")
fig, axes = plt.subplots(1, len(selected.members), figsize=(3 * len(selected.members), 3), squeeze=False)
for ax, name in zip(axes[0], selected.members):
    g = catalog.load(name, device="cpu")
    labels = np.repeat(np.arange(g.num_classes), 8)
    ax.imshow(image_grid(g.sample(len(labels), labels=labels, seed=0), nrow=8), cmap="gray")
    ax.set_title(name, fontsize=8)
    ax.axis("off")
plt.show()
"""),
    md("## Downstream: train on synthetic, test on real"),
    code("""
path = RUN / "summary.csv"
if path.exists():
    display(pd.read_csv(path))
else:
    print("no downstream comparison in this run")
"""),
])
print("notebooks written")
