"""The PneumoniaMNIST study: does the selected ensemble G* beat single GANs and the naive pool?

Reproduces the whole study from scratch with the library's public APIs and writes ``REPORT.md``
(tables, figures, the exact command, timings) next to this script:

    HF_HUB_OFFLINE=1 .venv/bin/python studies/pneumoniamnist/run_study.py \
        --out runs/pneumoniamnist-study

Stages (each cached in ``--out``; a killed run resumes where it stopped):

1. ``zoo``: 8 GAN runs (families and hyper-parameter variants) x 5 snapshots trained on the real
   training split (:func:`zoo.train`; resumable; ``--jobs`` runs in parallel processes).
2. ``fit in-domain``: a ResNet-18 trained on the real training labels (the reference's
   "medical" backbone), cached.
3. ``embed <w>`` / ``tables <w>``: per backbone (random weights, in-domain), as many samples
   per generator as real training images, embedded (cached by content) and reduced to the score
   tables (k = 5).
4. ``search``: NSGA-II per backbone; G* by the reference rule (max-fidelity) and by the knee rule.
5. ``samples``: one class-balanced sample per generator, shared by every downstream arm (as
   :func:`ensemble.downstream.build_arms` does); sample grids; the G* datasets exported.
6. ``calibrate``: seconds per epoch of the small CNN and of the reference ResNet-18 (for the
   paper-scale cost estimate).
7. ``downstream``: train on synthetic, early-stop on real validation, test on real test, for
   every arm x seed; each result is appended to ``downstream.csv`` as it finishes.
8. ``report``: tables, paired significance tests, figures and ``REPORT.md``.

``--smoke`` runs a tiny version of every stage (minutes; the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "g_mean", "roc_auc")
MAIN_METRICS = ("g_mean", "accuracy", "f1", "roc_auc")
RULES = ("max-fidelity", "knee")
CSV_COLUMNS = (["arm_id", "arm", "kind", "members", "n_members", "seed", "settings"]
               + [f"val_{m}" for m in METRICS] + [f"test_{m}" for m in METRICS]
               + ["best_epoch", "epochs_run", "best_val_loss", "seconds", "ok"])

# The default zoo: cheap-but-diverse runs on a CPU (see README.md for the speeds behind the choice).
DEFAULT_RUNS: tuple[dict, ...] = (
    {"arch": "dcgan"},
    {"arch": "dcgan", "diffaug": True, "ema": 0.999},
    {"arch": "lsgan"},
    {"arch": "acgan"},
    {"arch": "cgan"},
    {"arch": "cgan", "lr": 1e-4},
    {"arch": "sngan"},
    {"arch": "progan"},  # stage_iters = iterations / 5: the full 7 -> 14 -> 28 schedule
)
WGAN_GP_RUN = {"arch": "wgan-gp"}


# =========================================================================== configuration
@dataclass
class StudyConfig:
    """Every setting of the study; one root ``seed`` gives every random choice."""

    dataset: str = "pneumoniamnist"
    seed: int = 0
    # zoo
    runs: tuple[dict, ...] = DEFAULT_RUNS
    iterations: int = 1500
    n_snapshots: int = 5
    batch_size: int = 64
    # embeddings and scores
    backbone: str = "resnet18"
    weights: tuple[str, ...] = ("random", "in-domain")
    image_size: int = 32
    k: int = 5
    n_samples: int | None = None  # per generator; None = as many as real training images
    n_real: int | None = None  # real training images scored against; None = all
    indomain_epochs: int = 5
    indomain_fit_n: int | None = None  # real images the in-domain backbone trains on; None = all
    # search
    pop_size: int = 100
    n_gen: int = 200
    # downstream
    downstream_model: str = "small-cnn"
    seeds: int = 5
    epochs: int = 40
    patience: int = 6
    lr_patience: int = 3
    samples_per_epoch: int | None = None  # None = |real train| (METHOD.md §5)
    n_per_class: int | None = None  # per generator; None = ceil(|real train| / classes)
    n_random: int = 5
    n_singles: int | None = None  # None = every generator; else a seeded random sample
    calibrate_n: int = 256  # training draws per classifier in the calibration (0 = skip)
    n_boot: int = 10_000
    # execution (do not change results, except threads_per_job: BLAS threads change float sums)
    jobs: int = 2
    threads_per_job: int = 1
    device: str = "auto"
    smoke: bool = False

    # settings that can change between invocations on one --out without invalidating anything
    RESUMABLE = ("seeds", "n_random", "n_singles", "n_boot", "jobs", "device", "calibrate_n")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def snapshots(self) -> list[int]:
        n = max(1, min(self.n_snapshots, self.iterations))
        return sorted({int(round(self.iterations * (i + 1) / n)) for i in range(n)})

    def run_specs(self) -> list[tuple[str, dict]]:
        out = []
        for spec in self.runs:
            spec = dict(spec)
            arch = spec.pop("arch")
            if arch == "progan" and "stage_iters" not in spec:
                spec["stage_iters"] = max(1, self.iterations // 5)
            out.append((arch, spec))
        return out

    def key(self, *names: str) -> str:
        d = self.to_dict()
        d = {k: d[k] for k in names} if names else {k: v for k, v in d.items() if k not in self.RESUMABLE}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


SMOKE = dict(
    runs=({"arch": "dcgan"}, {"arch": "cgan"}, {"arch": "acgan"}), iterations=30, n_snapshots=2,
    batch_size=32, n_samples=300, n_real=600, indomain_epochs=1, indomain_fit_n=512, pop_size=20,
    n_gen=10, seeds=2, epochs=2, patience=2, lr_patience=1, samples_per_epoch=300, n_per_class=150,
    n_random=2, calibrate_n=32, n_boot=2000, smoke=True,
)


# =========================================================================== small helpers
def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _write_json(path: Path, obj) -> None:
    from zoo.io import atomic_write

    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def _read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return default


def _changed(old: dict, new: dict, *, skip=()) -> list[str]:
    """Keys (outside ``skip``) whose values differ between two settings dicts, in first-seen order."""
    keys = list(old) + [k for k in new if k not in old]
    return [k for k in keys if k not in skip
            and json.dumps(old.get(k), sort_keys=True, default=str)
            != json.dumps(new.get(k), sort_keys=True, default=str)]


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _fmt(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}"


def _fmt_p(p) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _fmt_s(sec: float) -> str:
    if not math.isfinite(sec):
        return "n/a"
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 7200:
        return f"{sec / 60:.1f} min"
    if sec < 3 * 86400:
        return f"{sec / 3600:.1f} h"
    return f"{sec / 86400:.1f} days"


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


# =========================================================================== stage accounting
def _rss_tree() -> tuple[int, int]:
    """(RSS of this process, RSS of this process plus all its descendants), bytes."""
    import psutil

    me = psutil.Process()
    own = me.memory_info().rss
    total = own
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return own, total


class _PeakSampler:
    """Samples the RSS of this process and its workers in a thread; keeps the peaks."""

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.own, self.total = every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        own, total = _rss_tree()
        self.own, self.total = max(self.own, own), max(self.total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.every)

    def __enter__(self) -> _PeakSampler:
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()


class StageLog:
    """Wall time, CPU time and peak memory per stage, kept in ``stages.json`` across resumes.

    A stage that did work adds its wall and CPU seconds to the stage's totals (so a study killed
    and resumed still reports what each stage cost); a stage served from its cache adds nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = _read_json(path, {}) or {}

    @contextlib.contextmanager
    def stage(self, name: str, replace: bool = False):
        """Time the stage; ``replace``: the stage is redone on every invocation, keep the latest only."""
        rec = {"did_work": True, "note": ""}
        _say(f"stage {name} ...")
        t0, c0 = time.perf_counter(), os.times()
        with _PeakSampler() as peak:
            yield rec
        _shutdown_workers()
        wall = time.perf_counter() - t0
        c1 = os.times()
        cpu = sum(getattr(c1, a) - getattr(c0, a)
                  for a in ("user", "system", "children_user", "children_system"))
        fresh = {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "peak_rss_tree_mb": 0.0,
                 "invocations": 0, "note": ""}
        if replace:
            self.data[name] = fresh
        entry = self.data.setdefault(name, fresh)
        if rec["did_work"]:
            entry["wall_s"] += wall
            entry["cpu_s"] += cpu
            entry["peak_rss_mb"] = max(entry["peak_rss_mb"], peak.own / 2**20)
            entry["peak_rss_tree_mb"] = max(entry["peak_rss_tree_mb"], peak.total / 2**20)
            entry["invocations"] += 1
            if rec["note"]:
                entry["note"] = rec["note"]
        entry["last_cached"] = not rec["did_work"]
        _write_json(self.path, self.data)
        _say(f"stage {name} {'done' if rec['did_work'] else 'cached'} in {wall:.1f} s")


def _shutdown_workers() -> None:
    """Stop idle loky workers so that they do not count in the next stage's memory."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    except Exception:  # noqa: BLE001 - nothing to shut down
        pass


def _parallel(fn, tasks: list[dict], jobs: int, desc: str):
    """Yield ``fn(**task)`` results as they finish: in-process for one job, loky processes otherwise."""
    from tqdm.auto import tqdm

    if jobs <= 1 or len(tasks) <= 1:
        import torch

        old = torch.get_num_threads()
        try:
            for t in tqdm(tasks, desc=desc, leave=False):
                yield fn(**t)
        finally:
            torch.set_num_threads(old)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=min(jobs, len(tasks)), backend="loky", return_as="generator_unordered")
    yield from tqdm(par(delayed(fn)(**t) for t in tasks), total=len(tasks), desc=desc, leave=False)


# =========================================================================== workers
def _zoo_job(arch: str, hp: dict, name: str, seed: int, zoo_dir: str, dataset: str,
             data_root: str | None, iterations: int, snapshots: list[int], batch_size: int,
             device: str, threads: int, quiet: bool) -> dict:
    """Train (or resume) one zoo run; return its wall time and the iterations it trained."""
    import torch

    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(threads)
    from ensemble.data import load_dataset
    from zoo import Catalog, train

    ds = load_dataset(dataset, split="train", root=data_root)

    def last_iteration() -> int:
        rows = Catalog(zoo_dir).list()
        rows = rows[rows["run"] == name] if len(rows) else rows
        return int(rows["iteration"].max()) if len(rows) else 0

    before = last_iteration()
    t0 = time.perf_counter()
    train(arch, ds.images, ds.labels, out_dir=zoo_dir, iterations=iterations, snapshots=snapshots,
          batch_size=batch_size, seed=seed, device=device, name=name, dataset=dataset, **hp)
    return {"run": name, "seconds": time.perf_counter() - t0, "iterations": last_iteration() - before}


def _arm_job(arm_id: str, arm: str, kind: str, members: list[str], seed: int, settings: str,
             samples_dir: str, dataset: str, data_root: str | None, model: str, epochs: int,
             patience: int, lr_patience: int, samples_per_epoch: int, device: str, threads: int,
             quiet: bool) -> dict:
    """Train one classifier for one (arm, seed); metrics on the real validation and test splits."""
    import torch

    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(threads)
    from ensemble.data import load_dataset
    from ensemble.downstream import evaluate_classifier, train_classifier

    val = load_dataset(dataset, split="val", root=data_root)
    test = load_dataset(dataset, split="test", root=data_root)
    if kind == "real":
        train = load_dataset(dataset, split="train", root=data_root)
        x, y, groups, sampler, spe = train.images, train.labels, None, "shuffle", None
    else:
        xs, ys, gs = [], [], []
        for i, m in enumerate(members):
            with np.load(Path(samples_dir) / f"{_slug(m)}.npz", allow_pickle=False) as z:
                xs.append(z["images"])
                ys.append(z["labels"])
            gs.append(np.full(len(ys[-1]), i, dtype=np.int64))
        x, y, groups = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
        sampler, spe = "member", samples_per_epoch
    clf = train_classifier(x, y, val.images, val.labels, model=model, epochs=epochs, patience=patience,
                           lr_patience=lr_patience, seed=seed, device=device, samples_per_epoch=spe,
                           sampler=sampler, groups=groups, progress=not quiet)
    row = {"arm_id": arm_id, "arm": arm, "kind": kind, "members": " ".join(members),
           "n_members": len(members), "seed": seed, "settings": settings}
    row.update({f"val_{k}": v for k, v in evaluate_classifier(clf, val.images, val.labels).items()})
    row.update({f"test_{k}": v for k, v in evaluate_classifier(clf, test.images, test.labels).items()})
    row.update(best_epoch=clf.best_epoch, epochs_run=clf.epochs_run, best_val_loss=clf.best_val_loss,
               seconds=round(clf.seconds, 3), ok=1)
    return row


# =========================================================================== the study
@dataclass
class Arm:
    label: str
    kind: str  # real | gstar | single | naive | random
    members: tuple[str, ...]

    @property
    def id(self) -> str:
        return "real" if self.kind == "real" else _digest(sorted(self.members))


@dataclass
class Study:
    cfg: StudyConfig
    out: Path
    report_dir: Path
    data_root: str | None
    command: str
    log: StageLog = field(init=False)

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.figs = self.report_dir / "figures"
        self.figs.mkdir(parents=True, exist_ok=True)
        self.log = StageLog(self.out / "stages.json")
        self.zoo_dir = self.out / "zoo"
        self.cache_dir = self.out / "cache"
        self.samples_dir = self.out / "samples"
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.load_start = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3

    # ------------------------------------------------------------------ checks
    def check_config(self) -> None:
        """Refuse an --out folder that holds a study with other result-changing settings."""
        path = self.out / "study_config.json"
        saved = _read_json(path)
        now = self.cfg.to_dict()
        if saved is not None:
            diff = sorted(_changed(saved, now, skip=StudyConfig.RESUMABLE))
            if diff:
                raise ValueError(
                    f"{self.out} holds a study made with other settings ({', '.join(diff)}); pass another "
                    f"--out, or delete that folder to start over"
                )
        _write_json(path, now)

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        from ensemble.data import load_dataset
        from zoo.seeding import derive_seed

        c = self.cfg
        self.train = load_dataset(c.dataset, split="train", root=self.data_root)
        self.val = load_dataset(c.dataset, split="val", root=self.data_root)
        self.test = load_dataset(c.dataset, split="test", root=self.data_root)
        self.score_real = (self.train if c.n_real is None
                           else self.train.subset(c.n_real, seed=derive_seed(c.seed, "real-subset") % 2**32))
        self.fit_set = (self.train if c.indomain_fit_n is None
                        else self.train.subset(c.indomain_fit_n, seed=derive_seed(c.seed, "fit-subset") % 2**32))

    # ------------------------------------------------------------------ 1. zoo
    def zoo(self) -> None:
        from zoo import Catalog
        from zoo.config import default_run_name
        from zoo.seeding import derive_seed

        c = self.cfg
        snaps = c.snapshots()
        self.runs = []
        for arch, hp in c.run_specs():
            name = default_run_name(arch, hp)
            self.runs.append({"arch": arch, "hp": hp, "name": name,
                              "seed": derive_seed(c.seed, "zoo", arch, json.dumps(hp, sort_keys=True))})
        names = [r["name"] for r in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"two zoo runs share a name: {names}; make their hyper-parameters differ")
        self.names = [f"{r['name']}@{it}" for r in self.runs for it in snaps]
        catalog = Catalog(self.zoo_dir)
        times = _read_json(self.out / "zoo_runs.json", {}) or {}
        with self.log.stage("zoo") as st:
            have = set(catalog.list()["name"]) if len(catalog) else set()
            todo = [r for r in self.runs if any(f"{r['name']}@{it}" not in have for it in snaps)]
            st["did_work"] = bool(todo)
            st["note"] = f"{len(self.runs)} runs x {len(snaps)} snapshots, {c.jobs} parallel job(s)"
            # longest first balances the parallel jobs (sngan, progan, wgan-gp are the slow ones)
            slow = {"wgan-gp": 0, "progan": 1, "sngan": 2, "wgan": 3}
            todo.sort(key=lambda r: slow.get(r["arch"], 9))
            tasks = [dict(arch=r["arch"], hp=r["hp"], name=r["name"], seed=r["seed"],
                          zoo_dir=str(self.zoo_dir), dataset=c.dataset, data_root=self.data_root,
                          iterations=c.iterations, snapshots=snaps, batch_size=c.batch_size,
                          device=c.device, threads=c.threads_per_job, quiet=c.jobs > 1) for r in todo]
            for res in _parallel(_zoo_job, tasks, c.jobs, "zoo runs"):
                t = times.setdefault(res["run"], {"seconds": 0.0, "iterations": 0})
                t["seconds"] += res["seconds"]
                t["iterations"] += res["iterations"]
                _write_json(self.out / "zoo_runs.json", times)
                _say(f"  zoo run {res['run']}: {res['iterations']} iterations in {res['seconds']:.0f} s")
        self.zoo_times = times
        self.catalog = Catalog(self.zoo_dir)
        missing = [n for n in self.names if n not in set(self.catalog.list()["name"])]
        if missing:
            raise ValueError(f"zoo snapshots missing after training: {missing}")

    # ------------------------------------------------------------------ 2-3. scores
    def scores(self) -> None:
        from ensemble.embed import Embedder
        from ensemble.features import compute_features
        from ensemble.scores import ScoreTables
        from zoo.seeding import derive_seed

        c = self.cfg
        self.tables = {}
        key_fields = ("dataset", "seed", "runs", "iterations", "n_snapshots", "batch_size", "backbone",
                      "image_size", "k", "n_samples", "n_real", "indomain_epochs", "indomain_fit_n")
        for w in c.weights:
            path = self.out / f"tables_{w}.npz"
            key = c.key(*key_fields) + ":" + w
            if path.exists():
                t = ScoreTables.load(path)
                if t.meta.get("study_key") == key and t.names == self.names:
                    self.tables[w] = t
                    continue
            emb = Embedder(backbone=c.backbone, weights=w, image_size=c.image_size, channels="replicate",
                           device=c.device, seed=derive_seed(c.seed, "embedder"), epochs=c.indomain_epochs,
                           cache_dir=self.cache_dir)
            if w == "in-domain":
                with self.log.stage("fit in-domain") as st:
                    emb.fit(self.fit_set.images, self.fit_set.labels)
                    st["note"] = f"ResNet-18, {c.indomain_epochs} epochs on {len(self.fit_set)} real images"
            with self.log.stage(f"embed {w}") as st:
                fs = compute_features(self.catalog, self.score_real.images, emb, names=self.names,
                                      n_samples=c.n_samples, seed=derive_seed(c.seed, "score"),
                                      cache=self.cache_dir, progress=True)
                n_img = len(fs.real) + sum(len(f) for f in fs.fake.values())
                st["note"] = f"{n_img:,} images ({len(self.names)} generators x {fs.meta['n_samples']} + real)"
            with self.log.stage(f"tables {w}") as st:
                meta = dict(fs.meta)
                meta.update({"k": c.k, "seed": derive_seed(c.seed, "score"), "study_key": key})
                t = ScoreTables.from_features(fs.real, fs.fake, k=c.k, meta=meta, device=c.device,
                                              progress=True)
                t.save(path)
                p = len(self.names)
                st["note"] = f"{p} generators vs real + {p * (p - 1) // 2} pairs, n = {fs.meta['n_samples']}"
            self.tables[w] = t
            del fs

    # ------------------------------------------------------------------ 4. search
    def search(self) -> None:
        from ensemble.plots import plot_front, save_figure
        from ensemble.search import EnsembleSearch
        from zoo.seeding import derive_seed

        c = self.cfg
        self.searches, self.gstars = {}, {}
        with self.log.stage("search", replace=True) as st:
            st["note"] = f"NSGA-II, population {c.pop_size} x {c.n_gen} generations, per backbone"
            for w, tables in self.tables.items():
                s = EnsembleSearch(algorithm="nsga2", pop_size=c.pop_size, n_gen=c.n_gen, min_size=2,
                                   seed=derive_seed(c.seed, "search") % 2**31, progress=True).fit(tables)
                self.searches[w] = s
                d = self.out / "search" / w
                d.mkdir(parents=True, exist_ok=True)
                front = s.front_.assign(members=s.front_["members"].map(" ".join))
                front.to_csv(d / "front.csv", index=False)
                s.history_.to_csv(d / "history.csv", index=False)
                for rule in RULES:
                    e = s.select(rule)
                    e.meta.update({"backbone": c.backbone, "weights": w, "root_seed": c.seed})
                    e.save(d / f"selected-{rule}.json")
                    self.gstars[(rule, w)] = e
                fig = plot_front(s, selected=self.gstars[("max-fidelity", w)],
                                 title=f"{w} backbone: {len(tables.names)} generators, "
                                       f"{s.n_evals_:,} ensembles evaluated")
                ax = fig.axes[0]
                knee = self.gstars[("knee", w)]
                ax.scatter([knee.inter_d], [knee.intra_d], marker="D", s=90, color="C2", edgecolors="k",
                           zorder=6, label="G* (knee)")
                ax.annotate(f"knee, |E|={knee.size}", (knee.inter_d, knee.intra_d), xytext=(8, 6),
                            textcoords="offset points", fontsize=9, color="C2")
                handles, labels = ax.get_legend_handles_labels()
                labels = ["G* (max-fidelity)" if lab == "G*" else lab for lab in labels]
                ax.legend(handles, labels, loc="lower right", fontsize=8)
                save_figure(fig, self.figs / f"pareto_{w}.png")

    # ------------------------------------------------------------------ 5. samples, grids, export
    def samples(self) -> None:
        from ensemble.export import export_dataset
        from ensemble.grids import save_grid
        from ensemble.synth import sample_ensemble
        from zoo.io import atomic_write
        from zoo.seeding import derive_seed

        c = self.cfg
        k = self.train.num_classes
        self.n_pc = c.n_per_class or int(math.ceil(len(self.train) / k))
        seed = derive_seed(c.seed, "downstream-samples")
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        with self.log.stage("samples") as st:
            work = 0
            for name in self.names:
                path = self.samples_dir / f"{_slug(name)}.npz"
                key = f"{self.catalog.get(name)['sha256']}:{self.n_pc}:{seed}"
                if path.exists():
                    with np.load(path, allow_pickle=False) as z:
                        if str(z["key"]) == key:
                            continue
                s = sample_ensemble([name], self.catalog, n_per_class=self.n_pc, seed=seed, device=c.device)

                def write(p: Path, s=s, key=key) -> None:
                    with open(p, "wb") as f:
                        np.savez(f, images=s.images, labels=s.labels, key=np.array(key))

                atomic_write(path, write)
                work += 1
            st["did_work"] = work > 0
            st["note"] = f"{self.n_pc} images per class from each of {len(self.names)} generators"
        # sample grids: every generator (one row each), the G* members, real images
        rows = []
        for name in self.names:
            x, y = self.single_samples(name)
            rows.append(np.concatenate([x[y == cl][:8] for cl in range(k)]))
        save_grid(np.concatenate(rows), self.figs / "zoo_samples.png", nrow=8 * k)
        rng = np.random.default_rng(derive_seed(c.seed, "real-grid"))
        real = np.concatenate([self.train.images[rng.choice(np.flatnonzero(self.train.labels == cl), 8,
                                                             replace=False)] for cl in range(k)])
        save_grid(real, self.figs / "real_samples.png", nrow=8 * k)
        self.distinct = {}  # members -> [(rule, weights), ...]
        for (rule, w), e in self.gstars.items():
            self.distinct.setdefault(tuple(e.members), []).append((rule, w))
        for members, who in self.distinct.items():
            rule, w = who[0]
            parts = []
            for m in members:
                x, y = self.single_samples(m)
                parts += [x[y == cl][:8] for cl in range(k)]
            grid = np.concatenate(parts)
            save_grid(grid, self.figs / f"gstar_{rule}_{w}.png", nrow=8 * k)
        with self.log.stage("export") as st:
            done = 0
            for members, who in self.distinct.items():
                rule, w = who[0]
                e = self.gstars[(rule, w)]
                d = self.out / "datasets" / f"gstar_{rule}_{w}"
                key = _digest([list(members), self.n_pc, c.seed])
                if (_read_json(d / "meta.json") or {}).get("study_key") == key:
                    continue
                s = sample_ensemble(e, self.catalog, n_per_class=self.n_pc, seed=derive_seed(c.seed, "export"),
                                    device=c.device, class_names=self.train.class_names)
                export_dataset(s, d, formats=("npz",), overwrite=True, flag=c.dataset,
                               meta={"selected": e.to_dict(), "root_seed": c.seed, "study_key": key,
                                     "chosen_by": [list(x) for x in who]})
                done += 1
            st["did_work"] = done > 0
            st["note"] = f"{len(self.distinct)} distinct G* datasets (npz, MedMNIST layout)"

    def single_samples(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.samples_dir / f"{_slug(name)}.npz", allow_pickle=False) as z:
            return z["images"], z["labels"]

    # ------------------------------------------------------------------ 6. calibration
    def calibrate(self) -> None:
        import torch

        from ensemble.downstream import train_classifier

        c = self.cfg
        path = self.out / "calibration.json"
        cal = _read_json(path, {}) or {}
        self.calibration = cal
        if c.calibrate_n <= 0:
            return
        key = f"v2:{c.calibrate_n}:{c.threads_per_job}:{c.device}"
        if cal.get("key") == key:
            return
        with self.log.stage("calibrate") as st:
            n = c.calibrate_n
            st["note"] = (f"1 epoch of {n} and of {2 * n} draws per classifier (cost = per-epoch overhead "
                          f"incl. validation + per-draw training), {c.threads_per_job} thread(s)")
            old = torch.get_num_threads()
            torch.set_num_threads(c.threads_per_job)
            try:
                res = {"key": key, "draws": n, "val_images": len(self.val)}
                for model in ("small-cnn", "resnet18-cifar"):
                    t = []
                    for draws in (n, 2 * n):
                        clf = train_classifier(self.train.images, self.train.labels, self.val.images,
                                               self.val.labels, model=model, epochs=1,
                                               samples_per_epoch=draws, seed=0, device=c.device,
                                               progress=False)
                        t.append(clf.seconds)
                    per_draw = max((t[1] - t[0]) / n, 1e-3 * t[0] / n)  # noise on a busy machine
                    res[model] = {"seconds": t, "per_draw_s": per_draw,
                                  "per_epoch_overhead_s": max(t[0] - per_draw * n, 0.0)}
            finally:
                torch.set_num_threads(old)
            _write_json(path, res)
            self.calibration = res

    # ------------------------------------------------------------------ 7. downstream
    def build_arms(self) -> None:
        from zoo.seeding import derive_seed

        c = self.cfg
        arms: list[Arm] = [Arm("real", "real", ())]
        for (rule, w), e in self.gstars.items():
            arms.append(Arm(f"G* ({rule}, {w})", "gstar", tuple(e.members)))
        arms.append(Arm("naive (all pooled)", "naive", tuple(self.names)))
        gstar_sets = {frozenset(e.members) for e in self.gstars.values()}
        self.random_labels: dict[int, list[str]] = {}
        for size in sorted({e.size for e in self.gstars.values()}):
            n_sets = math.comb(len(self.names), size) - sum(len(s) == size for s in gstar_sets)
            rng = np.random.default_rng(derive_seed(c.seed, "random-ensembles", size))
            seen, labels = set(gstar_sets), []
            while len(labels) < min(c.n_random, n_sets):
                pick = frozenset(self.names[j] for j in rng.choice(len(self.names), size, replace=False))
                if pick in seen:
                    continue
                seen.add(pick)
                members = tuple(n for n in self.names if n in pick)
                labels.append(f"random |E|={size} #{len(labels)}")
                arms.append(Arm(labels[-1], "random", members))
            self.random_labels[size] = labels
        singles = list(self.names)
        if c.n_singles is not None and c.n_singles < len(singles):
            rng = np.random.default_rng(derive_seed(c.seed, "singles"))
            pick = set(rng.choice(len(singles), c.n_singles, replace=False).tolist())
            singles = [n for i, n in enumerate(singles) if i in pick]
        self.singles_sample = singles
        # the best single generator by its score d is always trained (a baseline chosen without test)
        best_d = {t.names[int(np.argmax(t.d))] for t in self.tables.values()}
        self.singles = [n for n in self.names if n in set(singles) | best_d]
        arms += [Arm(f"single: {n}", "single", (n,)) for n in self.singles]
        self.arms = arms
        self.settings = _digest({"model": c.downstream_model, "epochs": c.epochs, "patience": c.patience,
                                 "lr_patience": c.lr_patience, "spe": c.samples_per_epoch,
                                 "n_pc": self.n_pc, "threads": c.threads_per_job,
                                 "key": c.key(), "samples_seed": derive_seed(c.seed, "downstream-samples")})

    def downstream(self) -> None:
        c = self.cfg
        self.build_arms()
        csv_path = self.out / "downstream.csv"
        done = self.load_rows()
        tasks, queued = [], set()
        spe = c.samples_per_epoch or len(self.train)
        # seed-major: every arm gets seed 0 before any arm gets seed 1, so a run cut short still
        # compares all arms on the seeds it finished (rerun with a smaller --seeds to report them)
        for seed in range(c.seeds):
            for arm in self.arms:  # within a seed: key arms first, singles last
                if (arm.id, seed) in done or (arm.id, seed) in queued:
                    continue
                queued.add((arm.id, seed))
                tasks.append(dict(arm_id=arm.id, arm=arm.label, kind=arm.kind, members=list(arm.members),
                                  seed=seed, settings=self.settings, samples_dir=str(self.samples_dir),
                                  dataset=c.dataset, data_root=self.data_root, model=c.downstream_model,
                                  epochs=c.epochs, patience=c.patience, lr_patience=c.lr_patience,
                                  samples_per_epoch=spe, device=c.device, threads=c.threads_per_job,
                                  quiet=c.jobs > 1))
        n_unique = len({a.id for a in self.arms})
        _say(f"downstream: {n_unique} distinct arms x {c.seeds} seeds; {len(tasks)} trainings to run, "
             f"{len(done)} done before")
        with self.log.stage("downstream") as st:
            st["did_work"] = bool(tasks)
            st["note"] = (f"{c.downstream_model}, {n_unique} arms x {c.seeds} seeds, up to {c.epochs} epochs "
                          f"of {spe} draws, {c.jobs} parallel job(s)")
            import torch

            old = torch.get_num_threads()
            try:
                new_file = not csv_path.exists() or csv_path.stat().st_size == 0
                if not new_file:  # a run killed mid-line left no newline: end that line first
                    with open(csv_path, "rb") as f:
                        f.seek(-1, os.SEEK_END)
                        torn = f.read(1) != b"\n"
                    if torn:
                        with open(csv_path, "a") as f:
                            f.write("\n")
                with open(csv_path, "a", newline="") as f:
                    if new_file:
                        f.write(",".join(CSV_COLUMNS) + "\n")
                    for row in _parallel(_arm_job, tasks, c.jobs, "downstream"):
                        pd.DataFrame([row])[list(CSV_COLUMNS)].to_csv(f, header=False, index=False)
                        f.flush()
                        os.fsync(f.fileno())
                        _say(f"  {row['arm']} seed {row['seed']}: test g-mean {row['test_g_mean']:.4f} "
                             f"({row['epochs_run']} epochs, {row['seconds']:.0f} s)")
            finally:
                torch.set_num_threads(old)
        self.rows = self.load_rows()

    def load_rows(self) -> dict[tuple[str, int], dict]:
        path = self.out / "downstream.csv"
        if not path.exists():
            return {}
        df = pd.read_csv(path, on_bad_lines="skip", dtype={"arm_id": str, "settings": str})
        df = df[(df["ok"] == 1) & (df["settings"] == self.settings) & df["test_g_mean"].notna()]
        return {(r["arm_id"], int(r["seed"])): r for r in df.to_dict("records")}

    # ------------------------------------------------------------------ 8. analysis and report
    def run(self) -> Path:
        self.check_config()
        self.load_data()
        self.zoo()
        self.scores()
        self.search()
        self.samples()
        self.calibrate()
        self.downstream()
        with self.log.stage("report", replace=True) as st:
            st["note"] = "analysis, significance tests, figures, REPORT.md"
            path = Report(self).write()
        return path


# =========================================================================== statistics
def paired_test(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict:
    """Paired comparison of ``a - b`` over seeds: mean, bootstrap 95% CI, t-test and Wilcoxon p."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    out = {"n": n, "diff": float(d.mean()) if n else float("nan"), "lo": float("nan"),
           "hi": float("nan"), "p_t": float("nan"), "p_w": float("nan")}
    if n < 2:
        return out
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(1)
    out["lo"], out["hi"] = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    if np.allclose(d, d[0]):
        out["p_t"] = 1.0 if d[0] == 0 else 0.0
    else:
        out["p_t"] = float(stats.ttest_rel(a, b).pvalue)
    if np.all(d == 0):
        out["p_w"] = 1.0
    else:
        with np.errstate(all="ignore"):
            out["p_w"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN kept)."""
    p = np.asarray(pvalues, float)
    ok = np.flatnonzero(np.isfinite(p))
    adj = np.full(len(p), np.nan)
    order = ok[np.argsort(p[ok])]
    m, running = len(order), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        adj[j] = running
    return adj.tolist()


ALPHA = 0.05


def verdict(t: dict) -> str:
    """``beat`` / ``lost to`` only when the bootstrap CI excludes 0 *and* the paired t-test has p < 0.05."""
    if not math.isfinite(t["diff"]):
        return "n/a"
    sig = math.isfinite(t["p_t"]) and t["p_t"] < ALPHA
    if sig and math.isfinite(t["lo"]) and t["lo"] > 0:
        return "beat"
    if sig and math.isfinite(t["hi"]) and t["hi"] < 0:
        return "lost to"
    if t["diff"] == 0:
        return "tied with"
    return "did not beat (higher, n.s.)" if t["diff"] > 0 else "did not beat (lower, n.s.)"


# =========================================================================== report
class Report:
    """Everything in REPORT.md, computed from the study's outputs."""

    def __init__(self, study: Study) -> None:
        self.s = study
        self.c = study.cfg
        self.figs = study.figs
        self.rel = os.path.relpath(study.figs, study.report_dir)

    # ---------------------------------------------------------------- per-seed values
    def _values(self, arm_ids: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-seed mean over ``arm_ids`` of ``metric`` on seeds complete for all of them."""
        seeds = [s for s in range(self.c.seeds) if all((a, s) in self.s.rows for a in arm_ids)]
        vals = np.array([[self.s.rows[(a, s)][metric] for a in arm_ids] for s in seeds], float)
        return np.array(seeds), (vals.mean(1) if len(seeds) else np.zeros(0))

    def _ids(self, label: str) -> list[str]:
        return [a.id for a in self.s.arms if a.label == label]

    def build(self) -> None:
        from zoo.seeding import derive_seed

        s, c = self.s, self.c
        by_label = {a.label: a for a in s.arms}
        single_ids = {n: by_label[f"single: {n}"].id for n in s.singles}
        # mean validation / test g-mean of every single generator (complete seeds only)
        single_stats = []
        for n in s.singles:
            seeds, v = self._values([single_ids[n]], "val_g_mean")
            _, t = self._values([single_ids[n]], "test_g_mean")
            if len(seeds) == 0:
                continue
            single_stats.append({"name": n, "val_g_mean": float(v.mean()), "test_g_mean": float(t.mean())})
        self.single_stats = pd.DataFrame(single_stats)
        groups: dict[str, tuple[list[str], str]] = {"real": (self._ids("real"), "real training data")}
        self.gstar_labels = []
        for (rule, w), e in s.gstars.items():
            lab = f"G* ({rule}, {w})"
            same = [f"{r2}, {w2}" for (r2, w2), e2 in s.gstars.items()
                    if (r2, w2) != (rule, w) and e2.members == e.members]
            note = f"{e.size} members" + (f"; same members as ({'; '.join(same)})" if same else "")
            groups[lab] = (self._ids(lab), note)
            self.gstar_labels.append(lab)
        self.best = {}
        ss = self.single_stats
        if len(ss):
            i = ss.sort_values(["val_g_mean", "name"], ascending=[False, True]).index[0]
            self.best["val"] = ss.loc[i, "name"]
            groups["best single (val g-mean)"] = ([single_ids[self.best["val"]]],
                                                  f"`{self.best['val']}`, chosen on the real validation split")
            for w, t in s.tables.items():
                best_d = t.names[int(np.argmax(t.d))]
                self.best[f"d-{w}"] = best_d
                groups[f"best single (d, {w})"] = ([single_ids[best_d]],
                                                   f"`{best_d}`, highest d with the {w} backbone")
            j = ss.sort_values(["test_g_mean", "name"], ascending=[False, True]).index[0]
            self.best["test"] = ss.loc[j, "name"]
            groups["best single on test (optimistic)"] = (
                [single_ids[self.best["test"]]],
                f"`{self.best['test']}`: picked on the test split, an upper bound, not a fair baseline")
            sample = [n for n in ss["name"] if n in set(s.singles_sample)]
            frac = ("every generator of" if len(s.singles_sample) == len(s.names)
                    else f"a seeded random sample of {len(s.singles_sample)} of the {len(s.names)} in")
            groups["mean single"] = ([single_ids[n] for n in sample],
                                     f"mean over {len(sample)} single generators ({frac} the zoo)")
        groups["naive (all pooled)"] = (self._ids("naive (all pooled)"), f"all {len(s.names)} generators")
        for size, labels in s.random_labels.items():
            if labels:
                groups[f"random ensembles |E|={size}"] = ([by_label[lab].id for lab in labels],
                                                          f"mean over {len(labels)} random sets of {size}")
        self.groups = groups
        rows = []
        for lab, (ids, note) in groups.items():
            if not ids:
                continue
            r = {"arm": lab, "note": note}
            seeds, _ = self._values(ids, "test_g_mean")
            r["n_seeds"] = len(seeds)
            for m in MAIN_METRICS:
                _, v = self._values(ids, f"test_{m}")
                r[f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
                r[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            _, vv = self._values(ids, "val_g_mean")
            r["val_g_mean"] = float(vv.mean()) if len(vv) else float("nan")
            if len(ids) > 1:  # spread across the arms of an aggregate
                per = [self._values([i], "test_g_mean")[1].mean() for i in ids]
                r["spread"] = f"{np.std(per, ddof=1):.3f} ({np.min(per):.3f}-{np.max(per):.3f})"
            else:
                r["spread"] = ""
            rows.append(r)
        self.summary = pd.DataFrame(rows)
        # significance: each G* against each baseline, paired over seeds
        tests = []
        for g in self.gstar_labels:
            rule, w = g[4:-1].split(", ")
            size = s.gstars[(rule, w)].size
            baselines = ["real", "best single (val g-mean)", f"best single (d, {w})", "mean single",
                         "naive (all pooled)", f"random ensembles |E|={size}"]
            for b in baselines:
                if b not in groups or not groups[b][0] or not groups[g][0]:
                    continue
                ids_g, ids_b = groups[g][0], groups[b][0]
                seeds = [x for x in range(c.seeds)
                         if all((a, x) in s.rows for a in ids_g + ids_b)]
                if not seeds:
                    continue
                row = {"G*": g, "baseline": b}
                for m in MAIN_METRICS:
                    a = np.array([np.mean([s.rows[(i, x)][f"test_{m}"] for i in ids_g]) for x in seeds])
                    bb = np.array([np.mean([s.rows[(i, x)][f"test_{m}"] for i in ids_b]) for x in seeds])
                    t = paired_test(a, bb, c.n_boot, derive_seed(c.seed, "bootstrap", g, b, m) % 2**32)
                    if m == "g_mean":
                        row.update({k: v for k, v in t.items()})
                    else:
                        row[f"d_{m}"] = t["diff"]
                        row[f"p_{m}"] = t["p_t"]
                tests.append(row)
        self.tests = pd.DataFrame(tests)
        if len(self.tests):
            self.tests["p_holm"] = holm(self.tests["p_t"].tolist())

    # ---------------------------------------------------------------- figures
    def figure_downstream(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from zoo.io import atomic_write

        df = self.summary[~self.summary["arm"].str.contains("optimistic")]
        fig = Figure(figsize=(13, 0.42 * len(df) + 1.6), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(MAIN_METRICS), sharey=True)
        y = np.arange(len(df))[::-1]
        colors = ["#2ca02c" if a == "real" else "#d62728" if a.startswith("G*") else
                  "#1f77b4" if a.startswith("best") else "#7f7f7f" for a in df["arm"]]
        names = {"g_mean": "g-mean", "accuracy": "accuracy", "f1": "F1", "roc_auc": "ROC AUC"}
        for ax, m in zip(axes, MAIN_METRICS, strict=True):
            mean = df[f"{m}_mean"].to_numpy(float)
            std = np.nan_to_num(df[f"{m}_std"].to_numpy(float))
            ax.barh(y, mean, xerr=std, color=colors, capsize=3)
            for yi, v, e in zip(y, mean, std, strict=True):
                if math.isfinite(v):
                    x = min(v + e + 0.02, 0.86)
                    ax.text(x, yi, f"{v:.3f}", va="center", ha="left", fontsize=7, color="black",
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8})
            ax.set_xlim(0, 1)
            ax.set_title(names[m])
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(y, labels=list(df["arm"]), fontsize=8)
        fig.suptitle(f"Train on synthetic, test on real ({self.c.downstream_model}; mean ± std over seeds)")
        atomic_write(self.figs / "downstream.png", lambda p: fig.savefig(p, format="png", dpi=110))

    def figure_singles(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from scipy import stats

        from zoo.io import atomic_write

        ss = self.single_stats
        self.rank_corr = {}
        if len(ss) < 3:
            return
        ws = list(self.s.tables)
        fig = Figure(figsize=(5 * len(ws), 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(1, len(ws)))
        for ax, w in zip(axes, ws, strict=True):
            t = self.s.tables[w]
            d = np.array([t.d[t.names.index(n)] for n in ss["name"]])
            rho_val = stats.spearmanr(d, ss["val_g_mean"]).statistic
            rho_test = stats.spearmanr(d, ss["test_g_mean"]).statistic
            self.rank_corr[w] = (float(rho_val), float(rho_test))
            ax.scatter(d, ss["test_g_mean"], s=22, color="C0", label="test g-mean")
            ax.scatter(d, ss["val_g_mean"], s=14, color="C1", marker="x", label="validation g-mean")
            ax.set_xlabel(f"d against real ({w} backbone)")
            ax.set_ylabel("downstream g-mean (mean over seeds)")
            ax.set_title(f"single generators: Spearman ρ = {rho_val:.2f} (val), {rho_test:.2f} (test)",
                         fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        atomic_write(self.figs / "singles_d_vs_gmean.png", lambda p: fig.savefig(p, format="png", dpi=110))

    # ---------------------------------------------------------------- cost
    def cost(self) -> tuple[pd.DataFrame, list[str]]:
        s, c = self.s, self.c
        st = s.log.data
        zt = s.zoo_times
        rates = {r: v["seconds"] / v["iterations"] for r, v in zt.items() if v.get("iterations", 0) > 0}
        rows, notes = [], []
        sec_it = float(np.mean(list(rates.values()))) if rates else float("nan")
        paper_zoo = sec_it * 22 * 100_000
        rows.append({"stage": "zoo", "paper protocol": "22 runs x 100k iterations (110 snapshots)",
                     "measured basis": f"{sec_it:.3f} s/iteration (mean over our {len(rates)} runs, "
                                       f"{c.threads_per_job} thread each)",
                     "estimate (1 worker)": _fmt_s(paper_zoo)})
        n_real = len(s.score_real)
        n_samp = c.n_samples or n_real
        for w in c.weights:
            e = st.get(f"embed {w}", {})
            if e.get("invocations"):
                n_img = len(s.names) * n_samp + n_real
                rate = n_img / max(e["wall_s"], 1e-9)
                paper = (110 * 4708 + 4708) / rate
                rows.append({"stage": f"embed {w}", "paper protocol": "110 x 4,708 samples + 4,708 real",
                             "measured basis": f"{rate:.0f} images/s (sampling + embedding)",
                             "estimate (1 worker)": _fmt_s(paper)})
            t = st.get(f"tables {w}", {})
            if t.get("invocations"):
                p = len(s.names)
                # real vs each generator, each generator's own k-NN radii, every pair: n x n distances each
                units = p * n_real * n_samp + p * n_samp ** 2 + p * (p - 1) / 2 * n_samp ** 2
                per = t["wall_s"] / units
                paper = per * (110 + 110 + 110 * 109 / 2) * 4708 * 4708
                rows.append({"stage": f"tables {w}", "paper protocol": "110 vs real + 5,995 pairs at n = 4,708",
                             "measured basis": f"{per * 4708 * 4708:.2f} s per set comparison at n = 4,708",
                             "estimate (1 worker)": _fmt_s(paper)})
        se = st.get("search", {})
        if se.get("invocations"):
            per = se["wall_s"] / max(len(c.weights), 1) / len(s.names)
            rows.append({"stage": "search", "paper protocol": "NSGA-II 100 x 200 on 110 generators",
                         "measured basis": f"{se['wall_s'] / max(len(c.weights), 1):.1f} s per search on "
                                           f"{len(s.names)} generators (cost ~ linear in P)",
                         "estimate (1 worker)": _fmt_s(per * 110)})
        df = pd.DataFrame(list(s.rows.values()))
        cal = s.calibration or {}
        if len(df) and isinstance(cal.get("resnet18-cifar"), dict) and isinstance(cal.get("small-cnn"), dict):
            spe = c.samples_per_epoch or len(s.train)

            def epoch_s(model: str, draws: int) -> float:
                m = cal[model]
                return m["per_epoch_overhead_s"] + m["per_draw_s"] * draws

            ratio = epoch_s("resnet18-cifar", spe) / epoch_s("small-cnn", spe)
            measured = float((df["seconds"] / df["epochs_run"]).mean())
            paper_epoch = epoch_s("resnet18-cifar", 4708)
            mean_epochs = float(df["epochs_run"].mean())
            arms = 1 + 1 + 110 + 1 + 5
            full = arms * 20 * 100 * paper_epoch
            early = arms * 20 * mean_epochs * paper_epoch
            rows.append({"stage": "downstream", "paper protocol":
                         f"{arms} arms (real, G*, 110 singles, naive, 5 random) x 20 seeds x <= 100 epochs "
                         "of ResNet-18 (CIFAR)",
                         "measured basis": f"ResNet-18 {paper_epoch:.0f} s per epoch of 4,708 draws (calibrated; "
                                           f"{c.downstream_model} here: {measured:.1f} s per epoch of {spe:,}); "
                                           f"{mean_epochs:.1f} epochs run on average here",
                         "estimate (1 worker)": f"{_fmt_s(early)} (early stopping as here) to {_fmt_s(full)} "
                                                "(all 100 epochs)"})
            notes.append(f"Per epoch, ResNet-18 (CIFAR style) costs {ratio:.1f}x the small CNN on this CPU "
                         "(calibration stage); this study's downstream stage would have taken about "
                         f"{_fmt_s(float(df['seconds'].sum()) * ratio)} of worker time with it, instead of "
                         f"{_fmt_s(float(df['seconds'].sum()))}.")
        notes.append("Estimates are for one worker at the measured rates on this (shared, loaded) machine; "
                     "the zoo estimate uses our small CPU-sized nets (g/d widths 16-32), far cheaper per "
                     "iteration than the reference's BigGAN / StyleGAN2 / ReACGAN families, so it is a lower "
                     "bound. A GPU divides every stage by one to two orders of magnitude.")
        return pd.DataFrame(rows), notes

    # ---------------------------------------------------------------- text
    def conclusions(self) -> list[str]:
        s, c = self.s, self.c
        out = []
        T = self.tests
        if not len(T):
            return ["No downstream results yet: nothing can be concluded."]

        def line(r) -> str:
            v = verdict(r)
            return (f"**{r['G*']}** {v} **{r['baseline']}** on g-mean by {r['diff']:+.3f} "
                    f"(95% bootstrap CI [{r['lo']:+.3f}, {r['hi']:+.3f}]; paired t p = {_fmt_p(r['p_t'])}, "
                    f"Holm {_fmt_p(r['p_holm'])}; Wilcoxon p = {_fmt_p(r['p_w'])}; n = {r['n']} seeds).")

        ref = T[T["G*"] == "G* (max-fidelity, random)"] if "G* (max-fidelity, random)" in set(T["G*"]) else T
        ref = ref[ref["baseline"] != "real"]
        by = {v: [f"{r['baseline']} ({r['diff']:+.3f})" for _, r in ref.iterrows() if verdict(r).startswith(v)]
              for v in ("beat", "did not beat", "tied with", "lost to")}
        g0 = ref["G*"].iloc[0] if len(ref) else "G*"
        key = {"best single (val g-mean)", "naive (all pooled)"}
        key_wins = {r["baseline"] for _, r in ref.iterrows() if r["baseline"] in key and verdict(r) == "beat"}
        out.append(
            f"**In short:** {g0}, the reference configuration (g-mean, n = {c.seeds} seeds, {len(ref)} "
            f"comparisons): significantly better than {', '.join(by['beat']) or 'none of its baselines'}; "
            f"no significant difference from {', '.join(by['did not beat'] + by['tied with']) or 'none'}; "
            f"significantly worse than {', '.join(by['lost to']) or 'none'}. "
            + ("The product's claim (a selected ensemble beats the best single generator and the naive pool) "
               + ("**holds** here." if key_wins == key else
                  "is **not supported** at this scale: G* is far better than a generator picked at random from "
                  "the zoo, but not measurably better than the best single generator or than pooling "
                  "everything."))
        )
        summ = self.summary.set_index("arm")
        if "real" in summ.index and g0 in summ.index and "roc_auc_mean" in summ.columns:
            gr, rr = summ.loc[g0], summ.loc["real"]
            share = float(np.mean(np.asarray(s.train.labels).reshape(-1) == 1))
            out.append("")
            out.append(
                f"Against real training data, {g0} has g-mean {gr['g_mean_mean']:.3f} vs {rr['g_mean_mean']:.3f} "
                f"and AUC {gr['roc_auc_mean']:.3f} vs {rr['roc_auc_mean']:.3f}. "
                + ("A higher g-mean with a lower AUC is a threshold effect: the synthetic sets are class-balanced "
                   f"while the real split is {share:.0%} pneumonia, so the real-data classifier leans to pneumonia "
                   "(lower specificity, lower g-mean) while ranking cases better (AUC). Synthetic data does "
                   "not beat real data here; it is better calibrated to a balanced threshold."
                   if gr["g_mean_mean"] > rr["g_mean_mean"] and gr["roc_auc_mean"] < rr["roc_auc_mean"] else "")
            )
        out.append("")
        out.append("Every comparison:")
        out.append("")
        claims = [
            ("G* beats single generators", ["mean single", "best single (val g-mean)"]),
            ("G* beats the best single generator chosen by the score (d)", None),
            ("G* beats the naive pool of all generators", ["naive (all pooled)"]),
            ("G* beats random ensembles of its own size (the selection matters)", None),
        ]
        for title, bases in claims:
            if bases is None and "score" in title:
                sub = T[T["baseline"].str.startswith("best single (d,")]
            elif bases is None:
                sub = T[T["baseline"].str.startswith("random ensembles")]
            else:
                sub = T[T["baseline"].isin(bases)]
            if not len(sub):
                continue
            n_beat = int((sub.apply(verdict, axis=1) == "beat").sum())
            n_lost = int((sub.apply(verdict, axis=1) == "lost to").sum())
            out.append(f"- **{title}**: holds (significantly better g-mean) in {n_beat} of {len(sub)} "
                       f"comparisons; significantly worse in {n_lost}.")
            out += [f"  - {line(r)}" for _, r in sub.iterrows()]
        if "real" in summ.index and "mean single" in summ.index:
            real = summ.loc["real", "g_mean_mean"]
            ms = summ.loc["mean single", "g_mean_mean"]
            out.append(f"- **Gap to real data** (real g-mean {real:.3f}; mean single generator {ms:.3f}, gap "
                       f"{real - ms:.3f}):")
            for g in self.gstar_labels:
                if g in summ.index:
                    gv = summ.loc[g, "g_mean_mean"]
                    closed = (gv - ms) / (real - ms) if real != ms else float("nan")
                    out.append(f"  - {g}: {gv:.3f}, gap {real - gv:+.3f}"
                               + (f" ({closed:.0%} of the single-generator gap closed)" if math.isfinite(closed)
                                  else ""))
        if getattr(self, "rank_corr", None):
            for w, (rv, rt) in self.rank_corr.items():
                out.append(f"- **Does the score predict downstream value?** Across single generators, Spearman "
                           f"ρ between d ({w} backbone) and downstream g-mean is {rv:.2f} on validation and "
                           f"{rt:.2f} on test.")
        if len(c.weights) == 2 and all(w in s.tables for w in c.weights):
            from scipy import stats

            a, b = (s.tables[w] for w in c.weights)
            rho = stats.spearmanr(a.d, [b.d[b.names.index(n)] for n in a.names]).statistic
            same = sum(s.gstars[(r, c.weights[0])].members == s.gstars[(r, c.weights[1])].members for r in RULES)
            out.append(f"- **Backbones**: the two backbones rank the generators' d with Spearman ρ = {rho:.2f}; "
                       f"they pick the same G* for {same} of {len(RULES)} rules.")
        return out

    def caveats(self) -> list[str]:
        c = self.c
        return [
            f"- **Power.** Each arm has {c.seeds} seeds; a paired t-test on {c.seeds} differences detects only "
            f"large effects, a two-sided Wilcoxon signed-rank test on {c.seeds} pairs cannot go below p = "
            f"{2 / 2 ** c.seeds:.4g}, and a bootstrap over {c.seeds} seeds gives too-narrow intervals. "
            "p-values are shown unadjusted and Holm-adjusted over the whole table; many comparisons are made.",
            "- **Seeds vary the classifier only.** The zoo, the samples and G* are fixed by the root seed; the "
            "spread over seeds is classifier-training noise, not zoo or sampling noise.",
            f"- **Short GAN training.** {c.iterations:,} iterations per run on a CPU versus 100k in the reference "
            "(and far smaller nets): the zoo is weaker and less varied than the reference's; whether ensembling "
            "helps depends on members that are good in different ways.",
            f"- **Classifier and schedule.** `{c.downstream_model}`, up to {c.epochs} epochs, early-stopping "
            f"patience {c.patience}, ReduceLROnPlateau patience {c.lr_patience} (reference: ResNet-18, 100 "
            "epochs, 20 seeds): chosen for CPU cost, fixed before any result was seen, never tuned on test.",
            "- **Scores ignore labels.** Intra-d and Inter-d are computed on pooled, unlabelled embeddings, so "
            "a generator with good images but wrong class conditioning can score well and still teach the "
            "classifier the wrong labels.",
            "- **Synthetic class balance.** Every generator is sampled class-balanced (labels uniform, as in the "
            "reference) while the real training split is 26% normal / 74% pneumonia; the real arm sees the "
            "real proportions.",
        ]

    # ---------------------------------------------------------------- write
    def deviations(self) -> str:
        """One line naming every result-changing setting that differs from the full protocol."""
        full, now = StudyConfig().to_dict(), self.c.to_dict()
        skip = set(StudyConfig.RESUMABLE) - {"seeds", "n_random", "n_singles"} | {"smoke"}
        diff = [f"`{k}` = {json.dumps(now[k], default=str)} (full protocol: {json.dumps(full[k], default=str)})"
                for k in _changed(full, now, skip=skip)]
        if not diff:
            return "- settings: the script's full protocol (no overrides)"
        return "- settings that differ from the script's full protocol (to fit this machine): " + "; ".join(diff)

    def write(self) -> Path:
        from zoo.io import atomic_write

        self.build()
        self.figure_downstream()
        self.figure_singles()
        s, c = self.s, self.c
        import torch

        cpu = platform.processor() or ""
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        import psutil

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        from ensemble import __version__

        L = [
            "# PneumoniaMNIST study: does the selected ensemble beat single GANs and the naive pool?",
            "",
            ("> **SMOKE RUN**: a tiny configuration that exercises every stage; the numbers mean nothing.\n"
             if c.smoke else ""),
            "Generated by `studies/pneumoniamnist/run_study.py`; every number and figure below comes from "
            "that run. To regenerate (same seeds, same numbers; stages already done are reused from `--out`):",
            "",
            "```bash",
            s.command,
            "```",
            "",
            f"- root seed **{c.seed}**; gan-ensemble {__version__}, torch {torch.__version__}, "
            f"Python {platform.python_version()}",
            f"- machine: {cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"GPU: {gpu}; {c.jobs} parallel worker process(es) with {c.threads_per_job} torch thread(s) each; "
            f"load average at start {s.load_start[0]:.1f} (the machine was shared)",
            f"- started {s.started}, report written {time.strftime('%Y-%m-%d %H:%M:%S')}",
            self.deviations(),
            "",
            "Protocol (METHOD.md): zoo trained on the real training split; density/coverage scores with k = "
            f"{c.k} in two embeddings; NSGA-II over ensembles (max Intra-d, min Inter-d); G* by max-fidelity "
            "(the reference rule) and by the knee rule; downstream: a classifier trained on synthetic images "
            "only (each draw: a member uniformly, then one of its images), early-stopped on the real validation "
            "split, tested on the real test split. Nothing was tuned on the test split.",
            "",
        ]
        # ---- zoo
        zt = s.zoo_times
        zrows = []
        for r in s.runs:
            t = zt.get(r["name"], {})
            it = t.get("iterations", 0)
            zrows.append({"run": f"`{r['name']}`", "family": r["arch"],
                          "hyper-parameters": ", ".join(f"{k}={v}" for k, v in r["hp"].items()) or "defaults",
                          "snapshots": ", ".join(str(x) for x in c.snapshots()),
                          "train time": _fmt_s(t.get("seconds", float("nan"))),
                          "it/s": f"{it / t['seconds']:.2f}" if it and t.get("seconds") else "n/a"})
        L += ["## 1. Zoo", "",
              f"{len(s.runs)} runs x {len(c.snapshots())} snapshots = **{len(s.names)} generators**, "
              f"{c.iterations:,} iterations at batch {c.batch_size} on the {len(s.train):,} real training "
              f"images (28x28). Runs were trained {c.jobs} at a time in separate processes "
              f"(joblib/loky, {c.threads_per_job} torch thread each), so it/s is per single-threaded worker. "
              "WGAN-GP is left out by default (0.3-1 it/s on one CPU thread: it alone would take longer than "
              "the rest of the zoo); `--with-wgan-gp` adds it. ProGAN grows 7 -> 14 -> 28 px with "
              "`stage_iters` = iterations / 5, so its snapshots span the growth schedule.", "",
              _md_table(pd.DataFrame(zrows)), "",
              f"One row per generator (8 images of each class; rows in the order of the table, snapshots "
              f"ascending): ![zoo]({self.rel}/zoo_samples.png)", "",
              f"Real images for comparison: ![real]({self.rel}/real_samples.png)", ""]
        # ---- scores
        ws = list(s.tables)
        sc = pd.DataFrame({"generator": [f"`{n}`" for n in s.names]})
        for w in ws:
            t = s.tables[w]
            idx = [t.names.index(n) for n in s.names]
            sc[f"density ({w})"] = [f"{t.density[i]:.3f}" for i in idx]
            sc[f"coverage ({w})"] = [f"{t.coverage[i]:.3f}" for i in idx]
            sc[f"d ({w})"] = [f"{t.d[i]:.3f}" for i in idx]
        n_samp = c.n_samples or len(s.score_real)
        L += ["## 2. Scores", "",
              f"Backbone ResNet-18 (timm) at {c.image_size} px, grayscale repeated to 3 channels, in two weight "
              f"settings: **random** (seeded initialisation) and **in-domain** (trained {c.indomain_epochs} "
              f"epochs on the real training labels). k = {c.k}; {n_samp:,} samples per generator against "
              f"{len(s.score_real):,} real training images. Inter-d uses the symmetric mean of the two "
              "directed d values.", "", _md_table(sc), ""]
        # ---- search
        L += ["## 3. Search and G*", ""]
        grows = []
        for w, srch in s.searches.items():
            for rule in RULES:
                e = s.gstars[(rule, w)]
                grows.append({"backbone": w, "rule": rule, "size": e.size, "Intra-d": f"{e.intra_d:.4f}",
                              "Inter-d": f"{e.inter_d:.4f}", "front size": len(srch.front_),
                              "HV": f"{srch.hypervolume_:.4f}", "evaluations": f"{srch.n_evals_:,}",
                              "members": ", ".join(f"`{m}`" for m in e.members) + (f" ({e.note})" if e.note else "")})
        best_single = {w: float(s.tables[w].d.max()) for w in ws}
        L += [f"NSGA-II (pymoo), population {c.pop_size} x {c.n_gen} generations, at least 2 members, seeded. "
              "Best single-generator d for reference: "
              + "; ".join(f"{w} {v:.4f}" for w, v in best_single.items()) + ".", "",
              _md_table(pd.DataFrame(grows)), ""]
        for w in s.searches:
            L += [f"Pareto front, {w} backbone (star: max-fidelity G*, diamond: knee G*): "
                  f"![pareto {w}]({self.rel}/pareto_{w}.png)", ""]
        L += ["Sample grids of the distinct G* member sets (one row per member, 8 images of each class):", ""]
        for members, who in s.distinct.items():
            rule, w = who[0]
            L += [f"- {'; '.join(f'{r2}, {w2}' for r2, w2 in who)} ({len(members)} members: "
                  f"{', '.join(f'`{m}`' for m in members)}): ![G*]({self.rel}/gstar_{rule}_{w}.png)"]
        shown = os.path.relpath(s.out, REPO) if s.out.is_relative_to(REPO) else str(s.out)
        L += ["", f"The G* datasets are exported (npz, MedMNIST layout) under `{shown}/datasets/`.", ""]
        # ---- downstream
        spe = c.samples_per_epoch or len(s.train)
        tab = pd.DataFrame({
            "arm": self.summary["arm"],
            "n": self.summary["n_seeds"],
            **{({"g_mean": "g-mean", "accuracy": "accuracy", "f1": "F1", "roc_auc": "AUC"}[m]):
               [f"{a:.3f} ± {b:.3f}" if math.isfinite(a) else "n/a"
                for a, b in zip(self.summary[f"{m}_mean"], np.nan_to_num(self.summary[f"{m}_std"]),
                                strict=True)] for m in MAIN_METRICS},
            "val g-mean": [_fmt(v) for v in self.summary["val_g_mean"]],
            "spread across arms": self.summary["spread"],
            "note": self.summary["note"],
        })
        total_runs = len(s.rows)
        L += ["## 4. Downstream: train on synthetic, test on real", "",
              f"Classifier `{c.downstream_model}` trained from scratch (Adam 1e-3, batch 64), {spe:,} draws per "
              f"epoch, up to {c.epochs} epochs, early stopping on the real validation loss (patience "
              f"{c.patience}, ReduceLROnPlateau patience {c.lr_patience}), best-validation weights; metrics on "
              f"the real test split ({len(s.test)} images), mean ± std over seeds 0-{c.seeds - 1}; the same seed "
              "gives every arm the same initialisation and draw stream, so arms are paired by seed. Each "
              f"generator was sampled once ({s.n_pc:,} images per class) and the arms share those images. "
              f"{total_runs} trainings in all. The small CNN replaces the reference's ResNet-18 for CPU cost "
              "(see section 6); `--downstream-model resnet18-cifar` switches.", "",
              "Aggregate rows (mean single, random ensembles) average their arms per seed, then take mean ± std "
              "over seeds; *spread across arms* is the std (min-max) of the arms' own means. "
              "The best single generator is chosen without the test split (by its mean validation g-mean, or "
              "by its score d); the *optimistic* row is chosen on test and is only an upper bound.", "",
              _md_table(tab), "", f"![downstream]({self.rel}/downstream.png)", ""]
        if len(self.tests):
            T = self.tests
            tt = pd.DataFrame({
                "G*": T["G*"], "baseline": T["baseline"], "n": T["n"],
                "Δ g-mean": [f"{v:+.3f}" for v in T["diff"]],
                "95% CI (bootstrap)": [f"[{a:+.3f}, {b:+.3f}]" for a, b in zip(T["lo"], T["hi"], strict=True)],
                "p (paired t)": [_fmt_p(v) for v in T["p_t"]],
                "p (Holm)": [_fmt_p(v) for v in T["p_holm"]],
                "p (Wilcoxon)": [_fmt_p(v) for v in T["p_w"]],
                "Δ accuracy": [f"{v:+.3f}" for v in T["d_accuracy"]],
                "Δ F1": [f"{v:+.3f}" for v in T["d_f1"]],
                "Δ AUC": [f"{v:+.3f}" for v in T["d_roc_auc"]],
                "verdict": T.apply(verdict, axis=1),
            })
            L += ["### Significance: G* against each baseline (paired over seeds)", "",
                  f"Differences are G* minus baseline per seed; the CI is a percentile bootstrap over seeds "
                  f"({c.n_boot:,} resamples); *beat* / *lost to* mean that the CI excludes 0 and the paired "
                  f"t-test gives p < {ALPHA} (unadjusted); *n.s.* = not significant.", "",
                  _md_table(tt), ""]
        if getattr(self, "rank_corr", None):
            L += [f"Single generators, score vs downstream value: ![singles]({self.rel}/singles_d_vs_gmean.png)", ""]
        # ---- what holds
        L += ["## 5. What holds and what does not", "",
              "Generated from the numbers above.", ""] + self.conclusions() + ["", "Caveats:", ""] + self.caveats() + [""]
        # ---- cost
        st_rows = []
        order = ["zoo", "fit in-domain"] + [f"{x} {w}" for w in c.weights for x in ("embed", "tables")] + [
            "search", "samples", "export", "calibrate", "downstream", "report"]
        for name, e in sorted(s.log.data.items(),
                              key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
            if not isinstance(e, dict) or "wall_s" not in e or name == "report":
                continue  # the report stage is still running while this table is written
            st_rows.append({"stage": name, "wall time": _fmt_s(e["wall_s"]), "CPU time": _fmt_s(e["cpu_s"]),
                            "peak RSS (main)": f"{e['peak_rss_mb']:.0f} MiB",
                            "peak RSS (main + workers)": f"{e['peak_rss_tree_mb']:.0f} MiB",
                            "runs": e["invocations"], "what": e.get("note", "")})
        total_wall = sum(e["wall_s"] for e in s.log.data.values() if isinstance(e, dict) and "wall_s" in e)
        cost, notes = self.cost()
        L += ["## 6. Cost on this machine and at paper scale", "",
              "Wall and CPU time summed over the invocations that did the stage's work (a resumed study "
              "adds up); peak resident memory sampled every 0.2 s, of the main process and of the main "
              "process plus its worker processes (shared library pages counted once per process, so an "
              f"over-estimate). Total wall time: **{_fmt_s(total_wall)}**.", "",
              _md_table(pd.DataFrame(st_rows)), "",
              "Paper-scale protocol (110 generators x 100k iterations, 4,708 samples each, 20 seeds x 100 "
              "epochs of ResNet-18), extrapolated from the rates measured here:", "",
              _md_table(cost) if len(cost) else "(no measurements yet)", ""] + [f"- {n}" for n in notes] + [""]
        # ---- deviations and config
        L += ["## 7. Deviations from the reference protocol", "",
              f"- Zoo: {len(s.runs)} CPU-sized runs (DCGAN/LSGAN/ACGAN/cGAN/SNGAN/ProGAN variants) x "
              f"{c.iterations:,} iterations instead of 22 GPU families x 100k iterations; generators at 28 px "
              f"(embedded at {c.image_size} px).",
              "- Embeddings: random and in-domain ResNet-18 instead of SwAV ResNet-50 (no hub download here).",
              "- Search: seeded NSGA-II instead of unseeded Optuna TPE (1,000 trials).",
              f"- Downstream: `{c.downstream_model}`, {c.seeds} seeds, up to {c.epochs} epochs instead of "
              "ResNet-18, 20 seeds, 100 epochs.", "",
              "Full settings (`study_config.json` in the output folder):", "",
              "```json", json.dumps(c.to_dict(), indent=1, sort_keys=True, default=str), "```", ""]
        text = "\n".join(L) + "\n"
        path = s.report_dir / "REPORT.md"
        atomic_write(path, lambda p: p.write_text(text))
        self.summary.to_csv(s.out / "summary.csv", index=False)
        self.tests.to_csv(s.out / "significance.csv", index=False)
        return path


# =========================================================================== CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Reproduce the PneumoniaMNIST study (zoo -> scores -> search -> downstream -> REPORT.md).")
    p.add_argument("--out", type=Path, default=None,
                   help="work folder for every stage (default: runs/pneumoniamnist-study; smoke: "
                        "/tmp/gan-ensemble-study-smoke)")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="where REPORT.md and figures/ go (default: this script's folder; smoke: OUT/report)")
    p.add_argument("--data-root", default=None,
                   help="folder with pneumoniamnist.npz (default: $GAN_ENSEMBLE_DATA, else ../shared/data)")
    p.add_argument("--smoke", action="store_true", help="a tiny run of every stage (minutes; numbers mean nothing)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--jobs", type=int, default=None, help="parallel worker processes (zoo and downstream)")
    p.add_argument("--threads-per-job", type=int, default=None)
    p.add_argument("--device", default=None, help="auto (CUDA, then MPS, then CPU), cpu, cuda, ...")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--n-snapshots", type=int, default=None)
    p.add_argument("--with-wgan-gp", action="store_true", help="add a WGAN-GP run to the zoo (slow on CPU)")
    p.add_argument("--n-samples", type=int, default=None, help="samples per generator for the scores")
    p.add_argument("--pop-size", type=int, default=None)
    p.add_argument("--n-gen", type=int, default=None)
    p.add_argument("--downstream-model", choices=("small-cnn", "resnet18-cifar"), default=None)
    p.add_argument("--seeds", type=int, default=None, help="downstream seeds per arm (0..N-1)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--n-random", type=int, default=None, help="random ensembles per G* size")
    p.add_argument("--n-singles", type=int, default=None,
                   help="train only a seeded sample of this many single generators (default: all)")
    p.add_argument("--config", type=Path, default=None, help="JSON file of StudyConfig overrides")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> StudyConfig:
    values: dict = dict(SMOKE) if args.smoke else {}
    if args.config is not None:
        extra = json.loads(Path(args.config).read_text())
        if "runs" in extra:
            extra["runs"] = tuple(extra["runs"])
        values.update(extra)
    for name in ("seed", "jobs", "threads_per_job", "device", "iterations", "n_snapshots", "n_samples",
                 "pop_size", "n_gen", "downstream_model", "seeds", "epochs", "patience", "n_random",
                 "n_singles"):
        v = getattr(args, name)
        if v is not None:
            values[name] = v
    if args.with_wgan_gp:
        values["runs"] = tuple(values.get("runs", DEFAULT_RUNS)) + (WGAN_GP_RUN,)
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown study settings {unknown}; known: {sorted(known)}")
    cfg = StudyConfig(**values)
    for name in ("iterations", "n_snapshots", "seeds", "epochs", "patience", "jobs", "threads_per_job",
                 "pop_size", "n_gen"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.n_random < 0:
        raise ValueError(f"n_random must be >= 0, got {cfg.n_random}")
    return cfg


def _data_root(arg: str | None) -> str | None:
    if arg:
        return arg
    if os.environ.get("GAN_ENSEMBLE_DATA"):
        return os.environ["GAN_ENSEMBLE_DATA"]
    fallback = REPO.parent / "shared" / "data"
    return str(fallback) if (fallback / "pneumoniamnist.npz").is_file() else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        cfg = make_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or (Path("/tmp/gan-ensemble-study-smoke") if cfg.smoke else REPO / "runs" / "pneumoniamnist-study")
    report_dir = args.report_dir or (out / "report" if cfg.smoke else HERE)
    if cfg.smoke and report_dir.resolve() == HERE:
        print("error: a smoke run must not overwrite the study's REPORT.md; pass another --report-dir",
              file=sys.stderr)
        return 2
    command = "HF_HUB_OFFLINE=1 .venv/bin/python studies/pneumoniamnist/run_study.py"
    if argv:
        command += " " + shlex.join(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    study = Study(cfg, out.resolve(), report_dir.resolve(), _data_root(args.data_root), command)
    try:
        path = study.run()
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _say(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
