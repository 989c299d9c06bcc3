"""The whole method end to end: zoo → embeddings → score tables → search → G* → dataset → downstream.

Used by ``gan-ensemble quickstart`` and the notebooks. Every stage is cached in the run folder:
the zoo resumes and skips finished snapshots, features are cached by content, and the score tables
and the downstream comparison are reused when their inputs have not changed. ``report.md`` lists
what each stage produced and how long it took.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble import seeds
from ensemble.pipeline.config import ZOO_SETTINGS, PipelineConfig
from ensemble.pipeline.report import safe_file_name, write_report
from ensemble.timing import StageRecord, StageTimer
from zoo.io import atomic_write

__all__ = ["run_pipeline", "RunResult", "check_rerun"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: paths, the selected ensemble, tables and timings."""

    out_dir: Path
    config: PipelineConfig
    timings: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    selected: object = None
    summary: pd.DataFrame | None = None


@contextmanager
def _stage(res: RunResult, timer: StageTimer, name: str) -> Iterator[StageRecord]:
    """Time one stage (wall, CPU, peak memory into ``stages.json``) and record it in ``res``."""
    with timer.stage(name, replace=True) as rec:
        yield rec
    res.timings[name] = rec.wall_s
    res.cached[name] = rec.cached


def _zoo_runs(cfg: PipelineConfig) -> list[tuple[str, dict]]:
    runs = [(f, {}) for f in cfg.families]
    for v in cfg.variants:
        v = dict(v)
        runs.append((v.pop("arch"), v))
    return runs


def run_pipeline(config: PipelineConfig, out_dir: str | os.PathLike, *, progress: bool = True,
                 backend=None) -> RunResult:
    """Run every stage into ``out_dir`` (created; stages already done are reused).

    ``backend`` (an :mod:`ensemble.parallel` backend or a dask Client) runs the zoo and score
    stages' tasks; by default the config's ``backend``/``scheduler``/``n_jobs`` decide.
    """
    import contextlib

    from ensemble.parallel import backend_from_args, using_backend

    with contextlib.ExitStack() as stack:
        if backend is None:
            backend = backend_from_args(config)
        if backend is not None:
            backend = stack.enter_context(using_backend(backend))
        return _run(config, out_dir, progress, backend)


def _run(config: PipelineConfig, out_dir: str | os.PathLike, progress: bool, backend) -> RunResult:
    from ensemble.data import load_dataset
    from ensemble.features.embedder import Embedder
    from ensemble.grids import save_grid
    from ensemble.plots import plot_front, plot_history
    from ensemble.scoring.tables import ScoreTables
    from ensemble.search import EnsembleSearch
    from ensemble.search.objectives import resolve_objectives
    from ensemble.search.outputs import save_search_outputs
    from ensemble.synthesis.sample import balanced_n_per_class, sample_ensemble
    from ensemble.zoo_training import DataSpec, train_zoo
    from zoo import Catalog
    from zoo.config import default_run_name

    cfg = config
    out = Path(out_dir)
    check_rerun(cfg, out)  # before anything is written: a refused rerun changes nothing on disk
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    res = RunResult(out_dir=out, config=cfg)
    timer = StageTimer(out / "stages.json", idle_workers=False)
    _write_json(out / "config.json", cfg.to_dict())

    with _stage(res, timer, "data"):
        train_ds, val_ds, test_ds = (load_dataset(cfg.dataset, split=s, root=cfg.data_root, size=cfg.size)
                                     for s in ("train", "val", "test"))
        score_ds = train_ds if cfg.n_real is None else train_ds.subset(cfg.n_real, seed=seeds.real_subset_seed(cfg.seed))

    zoo_dir = out / "zoo"
    with _stage(res, timer, "zoo") as st:
        before = len(Catalog(zoo_dir)) if (zoo_dir / "catalog.sqlite").exists() else 0
        runs = [{"arch": arch, "name": default_run_name(arch, hp),
                 "seed": seeds.zoo_seed(cfg.seed, arch, hp), **hp}
                for arch, hp in _zoo_runs(cfg)]
        train_zoo(runs, out_dir=zoo_dir,
                  data=DataSpec.resolve(cfg.dataset, split="train", root=cfg.data_root, size=cfg.size),
                  iterations=cfg.iterations, snapshots=list(cfg.snapshots),
                  batch_size=cfg.batch_size, device=cfg.device, dataset_name=cfg.dataset,
                  backend=backend, progress=progress)
        catalog = Catalog(zoo_dir)
        st.cached = len(catalog) == before and before > 0
    res.paths["zoo"] = zoo_dir

    tables_path = out / "tables.npz"
    score_key = cfg.digest("dataset", "families", "variants", "iterations", "snapshots", "batch_size",
                           "backbone", "weights", "image_size", "channels", "n_samples", "n_real",
                           "k", "seed") + ":memorisation"  # tables carry the audit (issue 16)
    objectives = resolve_objectives(cfg.objectives)
    pairwise = any(o.needs_pairwise for o in objectives)
    with _stage(res, timer, "score") as st:
        tables = _load_if_current(tables_path, score_key)
        if tables is not None and ((pairwise and not tables.has_pairwise) or not tables.has_labels):
            tables = None  # cached without what these objectives need
        if tables is not None:
            st.cached = True
        else:
            embedder = Embedder(backbone=cfg.backbone, weights=cfg.weights, image_size=cfg.image_size,
                                channels=cfg.channels, device=cfg.device,
                                seed=seeds.embedder_seed(cfg.seed), cache_dir=out / "cache")
            if cfg.weights == "in-domain":
                embedder.fit(train_ds.images, train_ds.labels)
            tables = ScoreTables.compute(catalog, score_ds.images, embedder, n_samples=cfg.n_samples,
                                         k=cfg.k, seed=seeds.score_seed(cfg.seed),
                                         cache_dir=out / "cache", progress=progress, backend=backend,
                                         real_labels=score_ds.labels, pairwise=pairwise,
                                         holdout_images=val_ds.images)
            tables.meta.update({"dataset": cfg.dataset, "zoo": str(zoo_dir), "pipeline_key": score_key})
            tables.save(tables_path)
    res.paths["tables"] = tables_path

    if cfg.label_epochs:
        with _stage(res, timer, "labels") as st:
            st.cached = _label_agreement(cfg, tables, tables_path, catalog, train_ds, val_ds,
                                         len(score_ds), out)
    else:
        log.info("label agreement skipped (label_epochs=0)")
        tables.label_agreement = None  # not reported from an earlier run with other settings
    _write_csv(out / "tables.csv", tables.summary())  # one row per generator, as in report.md
    res.paths["tables_csv"] = out / "tables.csv"

    with _stage(res, timer, "search"):
        search = EnsembleSearch(pop_size=cfg.pop_size, n_gen=cfg.n_gen, min_size=cfg.min_size,
                                seed=seeds.search_seed(cfg.seed), objectives=tuple(cfg.objectives),
                                keep_degenerate=cfg.keep_degenerate).fit(tables)
        selected = search.select(cfg.rule, **_rule_context(cfg, catalog, train_ds, val_ds))
        selected.meta["root_seed"] = cfg.seed
        save_search_outputs(search, out, selected=selected, plots=False)
        plot_front(search, selected=selected, path=figs / "pareto.png")
        plot_history(search, path=figs / "history.png")
        rules = _compare_rules(search)
        rules.to_csv(out / "rules.csv", index=False)
    res.selected = selected
    res.paths.update(selected=out / "selected.json", front=out / "front.csv", pareto=figs / "pareto.png")

    with _stage(res, timer, "export"):
        from ensemble.synthesis.export import export_dataset

        n_pc = cfg.n_per_class or balanced_n_per_class(train_ds.labels)
        samples = sample_ensemble(selected, catalog, n_per_class=n_pc,
                                  seed=seeds.export_seed(cfg.seed), device=cfg.device,
                                  class_names=train_ds.class_names)
        audit = _audit_members(cfg, tables, catalog, score_ds.images, selected.members, samples,
                               figs / "nearest.png")
        export_dataset(samples, out / "dataset", overwrite=True, flag=cfg.dataset,
                       meta={"selected": selected.to_dict(), "root_seed": cfg.seed,
                             "backbone": cfg.backbone, "weights": cfg.weights, "k": cfg.k,
                             "dataset": cfg.dataset, "memorisation": audit})
        member_dir = figs / "members"
        member_dir.mkdir(exist_ok=True)
        for name in selected.members:
            gen = catalog.load(name, device=cfg.device)
            labels = np.repeat(np.arange(gen.num_classes), 8)
            save_grid(gen.sample(len(labels), labels=labels, seed=seeds.grid_seed(cfg.seed, name)),
                      member_dir / f"{safe_file_name(name)}.png", nrow=8)
        save_grid(train_ds.subset(64, seed=0).images, figs / "real.png", nrow=8)
    res.paths["dataset"] = out / "dataset"
    if audit:
        res.paths["nearest"] = figs / "nearest.png"

    if cfg.downstream:
        with _stage(res, timer, "downstream") as st:
            res.summary, st.cached = _downstream(cfg, catalog, selected, train_ds, val_ds, test_ds, out, figs)
        res.paths["downstream"] = figs / "downstream.png"

    res.paths["report"] = write_report(res, tables, search, selected)
    return res


def _label_agreement(cfg: PipelineConfig, tables, tables_path: Path, catalog, train_ds, val_ds,
                     n_real: int, out: Path) -> bool:
    """Attach every generator's label agreement to ``tables`` (saved again); True when the tables
    already held it for these settings. Each generator draws as many samples as were scored."""
    from ensemble.label_fidelity import label_agreement_table

    key = cfg.digest("dataset", "families", "variants", "iterations", "snapshots", "batch_size",
                     "n_samples", "n_real", "label_epochs", "seed")
    if tables.label_agreement is not None and tables.meta.get("label_key") == key:
        return True
    table = label_agreement_table(catalog, tables.names, train_ds, val_ds,
                                  n_samples=cfg.n_samples or n_real, seed=cfg.seed, device=cfg.device,
                                  epochs=cfg.label_epochs, cache_dir=out / "cache")
    tables.add_label_agreement(table)
    tables.meta["label_key"] = key
    tables.save(tables_path)
    return False


def _rule_context(cfg: PipelineConfig, catalog, train_ds, val_ds) -> dict:
    """``{"context": ...}`` for a rule that needs data beyond the front (``validated``), else ``{}``."""
    from ensemble.search import ValidationContext, rule_needs_context

    if not rule_needs_context(cfg.rule):
        return {}
    return {"context": ValidationContext(catalog, train_ds, val_ds, model=cfg.downstream_model,
                                         n_per_class=cfg.n_per_class, class_weight=cfg.class_weight,
                                         threshold=cfg.threshold, seed=cfg.seed, device=cfg.device)}


def _audit_members(cfg: PipelineConfig, tables, catalog, real_images: np.ndarray, members: list[str],
                   samples, path: Path, n_show: int = 8) -> dict:
    """G*'s memorisation audit for meta.json, with byte-identical copies, and the neighbour figure.

    The scored samples of each member are drawn again (same seeds, same images): its ``n_show``
    samples closest to a real training image go above that image in ``path``. Byte copies are
    counted among those scored samples and among the member's exported images. {} without an audit.
    """
    from ensemble.grids import nearest_neighbour_grid, save_grid
    from ensemble.scoring.memorisation import byte_copies, regenerate_scored_samples

    audit = tables.memorisation_of(members)
    if not audit:
        return {}
    tiles = []
    exported = samples.provenance["name"].to_numpy()
    for name in members:
        dist, index = tables.nearest(name)
        images = regenerate_scored_samples(catalog, name, len(dist), seeds.score_seed(cfg.seed),
                                           device=cfg.device)
        audit[name]["byte_copies"] = int(byte_copies(real_images, images).sum())
        audit[name]["exported_byte_copies"] = int(byte_copies(real_images, samples.images[exported == name]).sum())
        show = np.argsort(dist, kind="stable")[:n_show]
        tiles.append(nearest_neighbour_grid(images[show], real_images[index[show]], nrow=n_show))
    save_grid(np.concatenate(tiles), path, nrow=n_show)
    return audit


def _compare_rules(search) -> pd.DataFrame:
    from ensemble.search import list_rules, rule_needs_context

    rows = []
    for rule in list_rules():
        if rule_needs_context(rule):  # trains classifiers: only run when it is the chosen rule
            continue
        e = search.select(rule)
        rows.append({"rule": rule, "size": e.size, "intra_d": e.intra_d, "inter_d": e.inter_d,
                     "members": " ".join(e.members), "note": e.note})
    return pd.DataFrame(rows)


def _downstream(cfg, catalog, selected, train_ds, val_ds, test_ds, out: Path, figs: Path):
    from ensemble.downstream import (
        add_equal_samples_arm,
        build_arms,
        compare,
        plot_comparison,
        summarize,
    )
    from ensemble.synthesis.sample import balanced_n_per_class

    key = cfg.digest() + ":" + ",".join(selected.members)
    table_path, summary_path = out / "comparison.csv", out / "summary.csv"
    key_path = out / ".downstream.key"
    if table_path.exists() and summary_path.exists() and key_path.exists() and key_path.read_text() == key:
        summary = pd.read_csv(summary_path)
        return summary, True
    n_pc = cfg.n_per_class or balanced_n_per_class(train_ds.labels)
    arms = build_arms(catalog, selected, train_ds, n_per_class=n_pc, n_random=cfg.n_random,
                      seed=seeds.arms_seed(cfg.seed), device=cfg.device,
                      samples_per_epoch=cfg.samples_per_epoch)
    arms["real"].samples_per_epoch = cfg.samples_per_epoch  # every arm: the same draws per epoch
    settings = dict(seeds=cfg.downstream_seeds, model=cfg.downstream_model, epochs=cfg.downstream_epochs,
                    patience=cfg.downstream_patience, steps=cfg.downstream_steps,
                    min_steps=cfg.downstream_min_steps, warmup_steps=cfg.downstream_warmup_steps,
                    class_weight=cfg.class_weight, threshold=cfg.threshold, device=cfg.device,
                    real_labels=train_ds.labels)
    df = compare(arms, val_ds, test_ds, **settings)
    df = add_equal_samples_arm(df, catalog, selected, val_ds, test_ds, n_per_class=n_pc,
                               seed=seeds.arms_seed(cfg.seed),
                               samples_per_epoch=cfg.samples_per_epoch, **settings)
    summary = summarize(df)
    _write_csv(table_path, df)
    _write_csv(summary_path, summary)
    plot_comparison(summary, figs / "downstream.png", metric="g_mean")
    atomic_write(key_path, lambda p: p.write_text(key))
    return summary, False


def _load_if_current(path: Path, key: str):
    from ensemble.scoring.tables import ScoreTables

    if not path.exists():
        return None
    try:
        t = ScoreTables.load(path)
    except (ValueError, OSError):
        return None
    return t if t.meta.get("pipeline_key") == key else None


def check_rerun(cfg: PipelineConfig, out: Path) -> None:
    """Refuse, before anything is written, a run into a folder made with other zoo settings.

    The zoo of ``out`` was trained with the settings in its ``config.json``; a run with another
    seed or zoo settings would mix generators or be refused half-way, so it is refused here,
    naming each setting that differs and the options that fix it.
    """
    path = out / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); use a new --out folder") from None
    new = json.loads(json.dumps(cfg.to_dict(), default=str))
    diff = [f"{k}: {old.get(k)!r} in the folder, {new.get(k)!r} now" for k in ZOO_SETTINGS
            if k in old and old.get(k) != new.get(k)]
    if diff:
        opts = {"seed": "--seed", "families": "--families", "iterations": "--iterations",
                "snapshots": "--snapshots", "dataset": "--dataset", "batch_size": "--profile",
                "variants": "--profile"}
        named = ", ".join(dict.fromkeys(opts[d.split(":")[0]] for d in diff))
        raise ValueError(f"{out} holds a run made with other settings ({'; '.join(diff)}); "
                         f"use a new --out folder, or rerun with the folder's values ({named})")


def _write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False))


