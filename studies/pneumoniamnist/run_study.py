"""The PneumoniaMNIST study: does the selected ensemble G* beat single GANs and the naive pool?

Reproduces the whole study from scratch with the library's public APIs and writes ``REPORT.md``
(tables, figures, the exact command, timings) next to this script:

    HF_HUB_OFFLINE=1 .venv/bin/python studies/pneumoniamnist/run_study.py \
        --out runs/pneumoniamnist-study

This file is the study's design: the settings (:class:`StudyConfig`), the stages and which arms
and comparisons they make. The machinery is the library's: the zoo (:func:`zoo.train`), scores,
search, arms (:mod:`ensemble.downstream.arms`), the journaled downstream protocol
(:mod:`ensemble.downstream.protocol`), paired statistics (:mod:`ensemble.downstream.statistics`),
the stage timer (:mod:`ensemble.timing`) and markdown tables (:mod:`ensemble.report`);
``study_report.py`` beside this script writes REPORT.md.

Stages (each cached in ``--out``; a killed run resumes where it stopped):

1. ``zoo``: 8 GAN runs (families and hyper-parameter variants) x 5 snapshots trained on the real
   training split (:func:`zoo.train`; resumable; ``--jobs`` runs in parallel processes).
2. ``fit in-domain``: a ResNet-18 trained on the real training labels (the reference's
   "medical" backbone), cached.
3. ``embed <w>`` / ``tables <w>``: per backbone (random weights, in-domain), as many samples
   per generator as real training images, embedded (cached by content) and reduced to the score
   tables (k = 5).
4. ``search``: NSGA-II per backbone; G* by the reference rule (max-fidelity) and by the knee rule.
5. ``samples``: one class-balanced sample per generator, shared by every downstream arm
   (:class:`ensemble.downstream.SampleStore`); sample grids; the G* datasets exported.
6. ``calibrate``: seconds per epoch of the small CNN and of the reference ResNet-18 (for the
   paper-scale cost estimate).
7. ``downstream``: train on synthetic, early-stop on real validation, test on real test, for
   every arm x seed; each result is journaled in ``downstream.csv`` as it finishes.
8. ``report``: tables, paired significance tests, figures and ``REPORT.md``.

``--smoke`` runs a tiny version of every stage (minutes; the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from study_report import Report  # noqa: E402  (beside this script: the REPORT.md writer)

from ensemble import seeds  # noqa: E402
from ensemble.downstream import (  # noqa: E402
    Arm,
    Journal,
    SampleStore,
    best_single_by_score,
    best_single_by_validation,
    compare_groups,
    group_values,
    plan_runs,
    random_ensembles,
    run_journaled,
    sample_singles,
    summarize_groups,
)
from ensemble.report import changed_settings  # noqa: E402
from ensemble.timing import StageTimer  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MAIN_METRICS = ("g_mean", "accuracy", "f1", "roc_auc")
RULES = ("max-fidelity", "knee")

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


def _write_json(path: Path, obj) -> None:
    from zoo.io import atomic_write

    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def _read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return default


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _backend(jobs: int):
    from ensemble.parallel import LocalBackend

    return LocalBackend(int(jobs))


# =========================================================================== the zoo task
def _zoo_job(task: dict) -> dict:
    """Train (or resume) one zoo run; return its wall time and the iterations it trained."""
    import torch

    from ensemble.data import load_dataset
    from zoo import Catalog, train

    t = dict(task)
    if t.pop("quiet"):
        os.environ["TQDM_DISABLE"] = "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(t.pop("threads"))
    arch, hp, name, zoo_dir = t.pop("arch"), t.pop("hp"), t["name"], t.pop("zoo_dir")
    ds = load_dataset(t["dataset"], split="train", root=t.pop("data_root"))

    def last_iteration() -> int:
        rows = Catalog(zoo_dir).list()
        rows = rows[rows["run"] == name] if len(rows) else rows
        return int(rows["iteration"].max()) if len(rows) else 0

    before = last_iteration()
    t0 = time.perf_counter()
    try:
        train(arch, ds.images, ds.labels, out_dir=zoo_dir, **t, **hp)
    finally:
        torch.set_num_threads(threads)
    return {"run": name, "seconds": time.perf_counter() - t0, "iterations": last_iteration() - before}


# =========================================================================== the study
@dataclass
class Study:
    cfg: StudyConfig
    out: Path
    report_dir: Path
    data_root: str | None
    command: str
    log: StageTimer = field(init=False)

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.figs = self.report_dir / "figures"
        self.figs.mkdir(parents=True, exist_ok=True)
        self.log = StageTimer(self.out / "stages.json", echo=say)
        self.zoo_dir = self.out / "zoo"
        self.cache_dir = self.out / "cache"
        self.store = SampleStore(self.out / "samples")
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.load_start = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3

    # ------------------------------------------------------------------ checks
    def check_config(self) -> None:
        """Refuse an --out folder that holds a study with other result-changing settings."""
        path = self.out / "study_config.json"
        saved = _read_json(path)
        now = self.cfg.to_dict()
        if saved is not None:
            diff = sorted(changed_settings(saved, now, skip=StudyConfig.RESUMABLE))
            if diff:
                raise ValueError(
                    f"{self.out} holds a study made with other settings ({', '.join(diff)}); pass another "
                    f"--out, or delete that folder to start over"
                )
        _write_json(path, now)

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        from ensemble.data import load_dataset

        c = self.cfg
        self.train = load_dataset(c.dataset, split="train", root=self.data_root)
        self.val = load_dataset(c.dataset, split="val", root=self.data_root)
        self.test = load_dataset(c.dataset, split="test", root=self.data_root)
        self.score_real = (self.train if c.n_real is None
                           else self.train.subset(c.n_real, seed=seeds.real_subset_seed(c.seed) % 2**32))
        self.fit_set = (self.train if c.indomain_fit_n is None
                        else self.train.subset(c.indomain_fit_n, seed=seeds.stage_seed(c.seed, "fit-subset") % 2**32))

    # ------------------------------------------------------------------ 1. zoo
    def zoo(self) -> None:
        from zoo import Catalog
        from zoo.config import default_run_name

        c = self.cfg
        snaps = c.snapshots()
        self.runs = []
        for arch, hp in c.run_specs():
            name = default_run_name(arch, hp)
            self.runs.append({"arch": arch, "hp": hp, "name": name,
                              "seed": seeds.zoo_seed(c.seed, arch, hp)})
        names = [r["name"] for r in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"two zoo runs share a name: {names}; make their hyper-parameters differ")
        self.names = [f"{r['name']}@{it}" for r in self.runs for it in snaps]
        catalog = Catalog(self.zoo_dir)
        times = _read_json(self.out / "zoo_runs.json", {}) or {}
        with self.log.stage("zoo") as st:
            have = set(catalog.list()["name"]) if len(catalog) else set()
            todo = [r for r in self.runs if any(f"{r['name']}@{it}" not in have for it in snaps)]
            st.did_work = bool(todo)
            st.note = f"{len(self.runs)} runs x {len(snaps)} snapshots, {c.jobs} parallel job(s)"
            # longest first balances the parallel jobs (sngan, progan, wgan-gp are the slow ones)
            slow = {"wgan-gp": 0, "progan": 1, "sngan": 2, "wgan": 3}
            todo.sort(key=lambda r: slow.get(r["arch"], 9))
            tasks = [dict(arch=r["arch"], hp=r["hp"], name=r["name"], seed=r["seed"],
                          zoo_dir=str(self.zoo_dir), dataset=c.dataset, data_root=self.data_root,
                          iterations=c.iterations, snapshots=snaps, batch_size=c.batch_size,
                          device=c.device, threads=c.threads_per_job, quiet=c.jobs > 1) for r in todo]
            for res in _backend(c.jobs).map(_zoo_job, tasks, desc="zoo runs"):
                t = times.setdefault(res["run"], {"seconds": 0.0, "iterations": 0})
                t["seconds"] += res["seconds"]
                t["iterations"] += res["iterations"]
                say(f"  zoo run {res['run']}: {res['iterations']} iterations in {res['seconds']:.0f} s")
            _write_json(self.out / "zoo_runs.json", times)
        self.zoo_times = times
        self.catalog = Catalog(self.zoo_dir)
        missing = [n for n in self.names if n not in set(self.catalog.list()["name"])]
        if missing:
            raise ValueError(f"zoo snapshots missing after training: {missing}")

    # ------------------------------------------------------------------ 2-3. scores
    def scores(self) -> None:
        from ensemble.features import compute_features
        from ensemble.features.embedder import Embedder
        from ensemble.scoring.tables import ScoreTables

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
                           device=c.device, seed=seeds.embedder_seed(c.seed), epochs=c.indomain_epochs,
                           cache_dir=self.cache_dir)
            if w == "in-domain":
                with self.log.stage("fit in-domain") as st:
                    emb.fit(self.fit_set.images, self.fit_set.labels)
                    st.note = f"ResNet-18, {c.indomain_epochs} epochs on {len(self.fit_set)} real images"
            with self.log.stage(f"embed {w}") as st:
                fs = compute_features(self.catalog, self.score_real.images, emb, names=self.names,
                                      n_samples=c.n_samples, seed=seeds.score_seed(c.seed),
                                      cache=self.cache_dir, progress=True)
                n_img = len(fs.real) + sum(len(f) for f in fs.fake.values())
                st.note = f"{n_img:,} images ({len(self.names)} generators x {fs.meta['n_samples']} + real)"
            with self.log.stage(f"tables {w}") as st:
                meta = dict(fs.meta)
                meta.update({"k": c.k, "seed": seeds.score_seed(c.seed), "study_key": key})
                t = ScoreTables.from_features(fs.real, fs.fake, k=c.k, meta=meta, device=c.device,
                                              progress=True)
                t.save(path)
                p = len(self.names)
                st.note = f"{p} generators vs real + {p * (p - 1) // 2} pairs, n = {fs.meta['n_samples']}"
            self.tables[w] = t
            del fs

    # ------------------------------------------------------------------ 4. search
    def search(self) -> None:
        from ensemble.plots import plot_front, save_figure
        from ensemble.search import EnsembleSearch, save_search_outputs

        c = self.cfg
        self.searches, self.gstars = {}, {}
        with self.log.stage("search", replace=True) as st:
            st.note = f"NSGA-II, population {c.pop_size} x {c.n_gen} generations, per backbone"
            for w, tables in self.tables.items():
                s = EnsembleSearch(algorithm="nsga2", pop_size=c.pop_size, n_gen=c.n_gen, min_size=2,
                                   seed=seeds.search_seed(c.seed), progress=True).fit(tables)
                self.searches[w] = s
                d = self.out / "search" / w
                save_search_outputs(s, d, plots=False, evaluated=False)  # front.csv, history.csv
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

    # ------------------------------------------------------------------ 5. samples, grids, export
    def samples(self) -> None:
        from ensemble.grids import save_grid
        from ensemble.synthesis.export import export_dataset
        from ensemble.synthesis.sample import balanced_n_per_class, sample_ensemble

        c = self.cfg
        k = self.train.num_classes
        self.n_pc = c.n_per_class or balanced_n_per_class(self.train.labels, k)
        with self.log.stage("samples") as st:
            work = self.store.ensure(self.catalog, self.names, n_per_class=self.n_pc,
                                     seed=seeds.stage_seed(c.seed, "downstream-samples"), device=c.device)
            st.did_work = work > 0
            st.note = f"{self.n_pc} images per class from each of {len(self.names)} generators"
        # sample grids: every generator (one row each), the G* members, real images
        rows = []
        for name in self.names:
            x, y = self.store.load(name)
            rows.append(np.concatenate([x[y == cl][:8] for cl in range(k)]))
        save_grid(np.concatenate(rows), self.figs / "zoo_samples.png", nrow=8 * k)
        rng = np.random.default_rng(seeds.stage_seed(c.seed, "real-grid"))
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
                x, y = self.store.load(m)
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
                s = sample_ensemble(e, self.catalog, n_per_class=self.n_pc, seed=seeds.export_seed(c.seed),
                                    device=c.device, class_names=self.train.class_names)
                export_dataset(s, d, formats=("npz",), overwrite=True, flag=c.dataset,
                               meta={"selected": e.to_dict(), "root_seed": c.seed, "study_key": key,
                                     "chosen_by": [list(x) for x in who]})
                done += 1
            st.did_work = done > 0
            st.note = f"{len(self.distinct)} distinct G* datasets (npz, MedMNIST layout)"

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
            st.note = (f"1 epoch of {n} and of {2 * n} draws per classifier (cost = per-epoch overhead "
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
    def choose_arms(self) -> None:
        """Real data, each G*, the naive pool, random ensembles of each G* size that are no G*,
        and the single generators (a seeded sample, plus the best by score d: chosen without test)."""

        c = self.cfg
        arms: list[Arm] = [Arm("real", "real", ())]
        for (rule, w), e in self.gstars.items():
            arms.append(Arm(f"G* ({rule}, {w})", "gstar", tuple(e.members)))
        arms.append(Arm("naive (all pooled)", "naive", tuple(self.names)))
        gstar_sets = [e.members for e in self.gstars.values()]
        self.random_labels: dict[int, list[str]] = {}
        for size in sorted({e.size for e in self.gstars.values()}):
            picks = random_ensembles(self.names, size, c.n_random, exclude=gstar_sets,
                                     seed=seeds.stage_seed(c.seed, "random-ensembles", size))
            self.random_labels[size] = [f"random |E|={size} #{i}" for i in range(len(picks))]
            arms += [Arm(label, "random", members)
                     for label, members in zip(self.random_labels[size], picks, strict=True)]
        self.singles_sample = sample_singles(self.names, c.n_singles, seed=seeds.stage_seed(c.seed, "singles"))
        best_d = {best_single_by_score(t) for t in self.tables.values()}
        self.singles = [n for n in self.names if n in set(self.singles_sample) | best_d]
        arms += [Arm(f"single: {n}", "single", (n,)) for n in self.singles]
        self.arms = arms
        self.settings = _digest({"model": c.downstream_model, "epochs": c.epochs, "patience": c.patience,
                                 "lr_patience": c.lr_patience, "spe": c.samples_per_epoch,
                                 "n_pc": self.n_pc, "threads": c.threads_per_job,
                                 "key": c.key(), "samples_seed": seeds.stage_seed(c.seed, "downstream-samples")})

    def downstream(self) -> None:
        c = self.cfg
        self.choose_arms()
        journal = Journal(self.out / "downstream.csv", self.settings)
        done = journal.load()
        # seed-major: a run cut short still compares all arms on the seeds it finished
        todo = plan_runs(self.arms, range(c.seeds), done)
        spe = c.samples_per_epoch or len(self.train)
        tasks = [dict(arm_id=arm.id, arm=arm.label, kind=arm.kind, members=list(arm.members), seed=seed,
                      settings=self.settings, samples_dir=str(self.store.directory), dataset=c.dataset,
                      data_root=self.data_root, model=c.downstream_model, epochs=c.epochs,
                      patience=c.patience, lr_patience=c.lr_patience, samples_per_epoch=spe,
                      device=c.device, threads=c.threads_per_job, quiet=c.jobs > 1) for arm, seed in todo]
        n_unique = len({a.id for a in self.arms})
        say(f"downstream: {n_unique} distinct arms x {c.seeds} seeds; {len(tasks)} trainings to run, "
            f"{len(done)} done before")
        with self.log.stage("downstream") as st:
            st.did_work = bool(tasks)
            st.note = (f"{c.downstream_model}, {n_unique} arms x {c.seeds} seeds, up to {c.epochs} epochs "
                       f"of {spe} draws, {c.jobs} parallel job(s)")
            run_journaled(tasks, journal, backend=_backend(c.jobs), on_row=lambda row: say(
                f"  {row['arm']} seed {row['seed']}: test g-mean {row['test_g_mean']:.4f} "
                f"({row['epochs_run']} epochs, {row['seconds']:.0f} s)"))
        self.rows = journal.load()

    # ------------------------------------------------------------------ 8. analysis
    def analyse(self) -> None:
        """The report's rows (arms and aggregates of arms) and G* against each baseline, paired."""

        c, seeds = self.cfg, range(self.cfg.seeds)
        by_label = {a.label: a for a in self.arms}
        single_ids = {n: by_label[f"single: {n}"].id for n in self.singles}
        # mean validation / test g-mean of every single generator (complete seeds only)
        stats = []
        for n in self.singles:
            done, v = group_values(self.rows, [single_ids[n]], "val_g_mean", seeds)
            _, t = group_values(self.rows, [single_ids[n]], "test_g_mean", seeds)
            if len(done):
                stats.append({"name": n, "val_g_mean": float(v.mean()), "test_g_mean": float(t.mean())})
        self.single_stats = ss = pd.DataFrame(stats)

        def ids(label: str) -> list[str]:
            return [a.id for a in self.arms if a.label == label]

        groups: dict[str, tuple[list[str], str]] = {"real": (ids("real"), "real training data")}
        self.gstar_labels = []
        for (rule, w), e in self.gstars.items():
            lab = f"G* ({rule}, {w})"
            same = [f"{r2}, {w2}" for (r2, w2), e2 in self.gstars.items()
                    if (r2, w2) != (rule, w) and e2.members == e.members]
            note = f"{e.size} members" + (f"; same members as ({'; '.join(same)})" if same else "")
            groups[lab] = (ids(lab), note)
            self.gstar_labels.append(lab)
        self.best = {}
        if len(ss):
            self.best["val"] = best_single_by_validation(ss, "val_g_mean")
            groups["best single (val g-mean)"] = ([single_ids[self.best["val"]]],
                                                  f"`{self.best['val']}`, chosen on the real validation split")
            for w, t in self.tables.items():
                self.best[f"d-{w}"] = best_d = best_single_by_score(t)
                groups[f"best single (d, {w})"] = ([single_ids[best_d]],
                                                   f"`{best_d}`, highest d with the {w} backbone")
            # picked on test: shown as an upper bound only, never compared against
            self.best["test"] = ss.sort_values(["test_g_mean", "name"], ascending=[False, True])["name"].iloc[0]
            groups["best single on test (optimistic)"] = (
                [single_ids[self.best["test"]]],
                f"`{self.best['test']}`: picked on the test split, an upper bound, not a fair baseline")
            sample = [n for n in ss["name"] if n in set(self.singles_sample)]
            frac = ("every generator of" if len(self.singles_sample) == len(self.names)
                    else f"a seeded random sample of {len(self.singles_sample)} of the {len(self.names)} in")
            groups["mean single"] = ([single_ids[n] for n in sample],
                                     f"mean over {len(sample)} single generators ({frac} the zoo)")
        groups["naive (all pooled)"] = (ids("naive (all pooled)"), f"all {len(self.names)} generators")
        for size, labels in self.random_labels.items():
            if labels:
                groups[f"random ensembles |E|={size}"] = ([by_label[lab].id for lab in labels],
                                                          f"mean over {len(labels)} random sets of {size}")
        self.groups = groups
        self.summary = summarize_groups(self.rows, groups, seeds, metrics=MAIN_METRICS)
        pairs = []
        for g in self.gstar_labels:
            rule, w = g[4:-1].split(", ")
            size = self.gstars[(rule, w)].size
            pairs += [(g, b) for b in ("real", "best single (val g-mean)", f"best single (d, {w})",
                                       "mean single", "naive (all pooled)", f"random ensembles |E|={size}")]
        self.tests = compare_groups(self.rows, groups, pairs, seeds, n_boot=c.n_boot, metrics=MAIN_METRICS,
                                    seed_of=lambda g, b, m: seeds.stage_seed(c.seed, "bootstrap", g, b, m) % 2**32)

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
            st.note = "analysis, significance tests, figures, REPORT.md"
            self.analyse()
            path = Report(self).write()
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
    say(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
