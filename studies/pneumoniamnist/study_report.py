"""REPORT.md of the PneumoniaMNIST study: tables, figures and plain statements from a finished study.

:class:`Report` reads what ``run_study.py`` computed (zoo, score tables, label agreement, searches
and G*, downstream rows, summary, paired tests) and writes ``REPORT.md`` and its figures; it
decides nothing about the design. Tables use :func:`ensemble.report.markdown_table`, verdicts
:func:`ensemble.downstream.statistics.verdict`, power :func:`~ensemble.downstream.statistics.detectable_difference`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.downstream import plot_metric_panels
from ensemble.downstream.statistics import ALPHA, detectable_difference, verdict
from ensemble.report import changed_settings, fmt_number, fmt_p, fmt_seconds, markdown_table

REPO = Path(__file__).resolve().parents[2]
NAMES = {"g_mean": "g-mean", "g_mean_05": "g-mean @0.5", "accuracy": "accuracy", "f1": "F1", "roc_auc": "AUC"}


def _machine() -> str:
    import psutil
    import torch

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), cpu)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, GPU: {gpu}; "
            f"torch {torch.__version__}, Python {platform.python_version()}")


class Report:
    """Everything in REPORT.md, computed from a study after ``study.analyse()``."""

    def __init__(self, study) -> None:
        self.s, self.c = study, study.cfg
        self.rel = os.path.relpath(study.figs, study.report_dir)

    @functools.cached_property
    def verdicts(self) -> pd.Series:
        """The verdict of every row of ``study.tests``, decided by the Holm-adjusted t-test p."""
        return self.s.tests.apply(lambda row: verdict(row, p="p_holm"), axis=1)

    # ---------------------------------------------------------------- figures
    def figures(self) -> None:
        from ensemble.grids import save_grid
        from ensemble.plots import plot_front, save_figure

        s = self.s
        df = self.s.summary
        colors = ["#2ca02c" if a == "real" else "#d62728" if a.startswith("G*") else
                  "#1f77b4" if a.startswith(("best", "equal")) else "#7f7f7f" for a in df["arm"]]
        plot_metric_panels(df, s.figs / "downstream.png", ("g_mean", "g_mean_05", "roc_auc"), names=NAMES,
                           colors=colors, title=f"Train on synthetic, test on real ({self.c.downstream_model}; "
                                                "mean ± std over seeds)")
        for (oset, w), srch in s.searches.items():
            fig = plot_front(srch, selected=s.gstars[(oset, "max-fidelity", w)], title=f"{oset} objectives, {w} backbone")
            ax = fig.axes[0]
            cols = {"knee": "C2", "validated": "C3"}
            for rule, col in cols.items():
                e = s.gstars[(oset, rule, w)]
                ob = list(e.objectives.values()) if getattr(e, "objectives", None) else [e.intra_d, e.inter_d]
                ax.scatter([ob[1]], [ob[0]], marker="D", s=80, color=col, edgecolors="k", zorder=6,
                           label=f"G* ({rule}, |E|={e.size})")
            ax.legend(loc="lower right", fontsize=8)
            save_figure(fig, s.figs / f"pareto_{oset}_{w}.png")
        store, k = s.store(0), s.train.num_classes
        rows = []
        for name in s.names:
            x, y = store.load(name)
            rows.append(np.concatenate([x[y == cl][:6] for cl in range(k)]))
        save_grid(np.concatenate(rows), s.figs / "zoo_samples.png", nrow=6 * k)
        rng = np.random.default_rng(0)
        real = np.concatenate([s.train.images[rng.choice(np.flatnonzero(s.train.labels == cl), 6, replace=False)]
                               for cl in range(k)])
        save_grid(real, s.figs / "real_samples.png", nrow=6 * k)

    # ---------------------------------------------------------------- sections
    def zoo(self) -> list[str]:
        s, c = self.s, self.c
        rows = [{"run": f"`{r['name']}`", "family": r["arch"],
                 "hyper-parameters": ", ".join(f"{k}={v}" for k, v in r["hp"].items()) or "defaults"} for r in s.runs]
        return ["## 1. Zoo", "",
                f"{len(s.runs)} runs x {len(c.snapshots())} snapshots ({', '.join(map(str, c.snapshots()))}) = "
                f"**{len(s.names)} generators**, {c.iterations:,} iterations at batch {c.batch_size} on the "
                f"{len(s.train):,} real training images (28 px), {c.jobs} runs at a time with {c.threads_per_job} "
                "torch thread each.", "", markdown_table(pd.DataFrame(rows)), "",
                f"One row per generator, in table order, snapshots ascending (6 images of each class): "
                f"![zoo]({self.rel}/zoo_samples.png)", "", f"Real images: ![real]({self.rel}/real_samples.png)", ""]

    def scores(self) -> list[str]:
        s, c = self.s, self.c
        sc = pd.DataFrame({"generator": [f"`{n}`" for n in s.names]})
        for w, t in s.tables.items():
            idx = [t.names.index(n) for n in s.names]
            for col, v in (("density", t.density), ("coverage", t.coverage), ("d", t.d)):
                sc[f"{col} ({w})"] = [f"{v[i]:.3f}" for i in idx]
        lab = s.label_table.set_index("name")["label_agreement"]
        sc["label agreement"] = [f"{lab[n]:.3f}" for n in s.names]
        d_rand = s.tables[list(s.tables)[0]].d
        return ["## 2. Scores and label agreement", "",
                f"ResNet-18 at {c.image_size} px, **random** (seeded) and **in-domain** (trained {c.indomain_epochs} "
                f"epochs on the real training labels) weights; k = {c.k}; {c.n_samples or len(s.score_real):,} "
                f"samples per generator against {len(s.score_real):,} real training images. *Label agreement*: "
                f"share of {c.label_samples:,} class-balanced samples per generator that a classifier trained on "
                "the real training split (early-stopped on validation) assigns to the class they were generated "
                f"for. {int((d_rand >= 0.3).sum())} of {len(s.names)} generators have d ≥ 0.3 ({list(s.tables)[0]} "
                f"backbone); {int((lab >= 0.8).sum())} have label agreement ≥ 0.8.", "", markdown_table(sc), ""]

    def search(self) -> list[str]:
        s, c = self.s, self.c
        rows = []
        for (oset, rule, w), e in s.gstars.items():
            srch = s.searches[(oset, w)]
            ob = getattr(e, "objectives", None) or {"intra-d": e.intra_d, "inter-d": e.inter_d}
            rows.append({"objectives": oset, "backbone": w, "rule": rule, "|E|": e.size,
                         "objective values": ", ".join(f"{k} {v:.4f}" for k, v in ob.items()),
                         "front": len(srch.front_), "members": ", ".join(f"`{m}`" for m in e.members)})
        out = ["## 3. Search and G*", "",
               f"NSGA-II (pymoo), population {c.pop_size} x {c.n_gen} generations, at least 2 members, one "
               "search per backbone and objective set: **published** = max Intra-d, min Inter-d; **class-aware** "
               "= max class-conditional Intra-d, min coverage overlap (docs/method.md). Rules: max-fidelity "
               "(the reference), knee, and validated (best of "
               f"{c.validated_k} front candidates after a brief classifier training, scored on half of the real "
               "validation split; never the test split).", "", markdown_table(pd.DataFrame(rows)), ""]
        out += [f"- {oset}, {w}: ![pareto]({self.rel}/pareto_{oset}_{w}.png)" for oset, w in s.searches]
        return out + [""]

    def downstream(self) -> list[str]:
        s, c = self.s, self.c
        sm = s.summary
        tab = pd.DataFrame({"arm": sm["arm"], "n": sm["n_seeds"],
                            **{NAMES[m]: [f"{a:.3f} ± {b:.3f}" if math.isfinite(a) else "n/a" for a, b in
                                          zip(sm[f"{m}_mean"], np.nan_to_num(sm[f"{m}_std"]), strict=True)]
                               for m in ("g_mean", "g_mean_05", "accuracy", "f1", "roc_auc")},
                            "val g-mean": [fmt_number(v) for v in sm["val_g_mean"]],
                            "spread across arms": sm["spread"], "note": sm["note"]})
        T = s.tests
        tt = pd.DataFrame({"G*": T["G*"], "baseline": T["baseline"], "n": T["n"],
                           "Δ g-mean": [f"{v:+.3f}" for v in T["diff"]],
                           "95% CI": [f"[{a:+.3f}, {b:+.3f}]" for a, b in zip(T["lo"], T["hi"], strict=True)],
                           "p (t)": [fmt_p(v) for v in T["p_t"]], "p (Holm)": [fmt_p(v) for v in T["p_holm"]],
                           "p (Wilcoxon)": [fmt_p(v) for v in T["p_w"]],
                           "detectable Δ": [f"{v:.3f}" for v in T["mde"]],
                           "Δ g-mean @0.5": [f"{v:+.3f}" for v in T["d_g_mean_05"]],
                           "Δ AUC": [f"{v:+.3f}" for v in T["d_roc_auc"]],
                           "verdict": self.verdicts})
        spe = c.samples_per_epoch or len(s.train)
        return ["## 4. Downstream: train on synthetic, test on real", "",
                f"`{c.downstream_model}` from scratch (Adam 1e-3, batch 64), {spe:,} draws per epoch (a member "
                f"uniformly, then one of its images), up to {c.epochs} epochs, early stopping on the real "
                f"validation loss (patience {c.patience}, ReduceLROnPlateau patience {c.lr_patience}); the loss is "
                "weighted by the real training class frequencies (`class_weight=\"real\"`, as the reference); "
                "the decision threshold maximises g-mean on the real validation split (*g-mean*), *g-mean @0.5* "
                f"uses 0.5. Metrics on the real test split ({len(s.test)} images), mean ± std over seeds "
                f"0-{c.seeds - 1}. **A seed varies the classifier (initialisation, draws) and the generators' "
                f"samples**: seed s samples every generator anew ({c.n_per_class:,} images per class) with "
                "`stage_seed(root, \"downstream-samples\", s)`; arms are paired by seed. Aggregate rows average "
                "their arms per seed; *spread* is the std (min-max) of the arms' own means. The best single "
                "generator is chosen on validation among the trained singles (the seeded sample plus the best by "
                f"d); {len(s.rows)} trainings in all.", "", markdown_table(tab), "",
                f"![downstream]({self.rel}/downstream.png)", "",
                "### G* against each baseline (paired over seeds)", "",
                f"Δ = G* minus baseline per seed (g-mean at the validation threshold); 95% percentile bootstrap CI "
                f"over seeds ({c.n_boot:,} resamples); Holm within each G* (its {len(s.tests) // max(len(s.gstars), 1)} "
                f"baselines); *detectable Δ*: the true difference a paired t-test at this n and this spread of "
                f"differences detects with 80% power at α = {ALPHA}; *beat* / *lost to*: CI excludes 0 and "
                f"p (t) < {ALPHA}.", "", markdown_table(tt), ""]

    def conclusions(self) -> list[str]:
        s, c, T = self.s, self.c, self.s.tests
        kinds = [("the best single generator (validation)", "best single (val)"),
                 ("the best single generator by score d", "best single (d"),
                 ("the best single with equal samples", "equal samples"), ("the mean single generator", "mean single"),
                 ("the naive pool", "naive"), ("random ensembles of its size", "random")]
        out = ["## 5. What holds and what does not", "", "Generated from the numbers above; a *beat* needs the "
               f"bootstrap CI to exclude 0 and the Holm-adjusted paired t-test p < {ALPHA}.", ""]
        v_all = self.verdicts
        n_g = len(s.gstars)
        for words, prefix in kinds:
            sel = T["baseline"].str.startswith(prefix)
            if sel.any():
                per = T[sel].assign(v=v_all[sel]).groupby("G*")["v"]
                won = int(per.apply(lambda x: (x == "beat").all()).sum())
                lost = int(per.apply(lambda x: (x == "lost to").any()).sum())
                out.append(f"- In short: G* beat {words} in **{won} of {n_g}** selections"
                           + (f", and lost to it in {lost}" if lost else "") + ".")
        out.append("")
        for oset in dict.fromkeys(k[0] for k in s.gstars):
            for rule in dict.fromkeys(k[1] for k in s.gstars):
                parts = []
                for words, prefix in kinds:
                    sub = T[T["G*"].str.startswith(f"G* ({oset}, {rule},") & T["baseline"].str.startswith(prefix)]
                    if not len(sub):
                        continue
                    v = v_all[sub.index]
                    beat, lost = int((v == "beat").sum()), int((v == "lost to").sum())
                    holm = int(((sub["p_holm"] < ALPHA) & (sub["diff"] > 0)).sum())
                    mean = ", ".join(f"{d:+.3f}" for d in sub["diff"])
                    what = ("**beats**" if beat == len(sub) else "**does not beat**" if beat == 0 else
                            f"beats in {beat} of {len(sub)} backbones")
                    parts.append(f"{what} {words} (Δ g-mean {mean}; significant after Holm in {holm}"
                                 + (f"; significantly worse in {lost}" if lost else "") + ")")
                out.append(f"- **{oset} objectives, {rule} rule**: G* " + "; ".join(parts) + ".")
        n = c.seeds
        sds = T["sd"].to_numpy(float)
        sds = sds[np.isfinite(sds)]
        if len(sds):
            med = float(np.median(sds))
            out += ["", f"**Power.** With n = {n} paired seeds a two-sided paired t-test at α = {ALPHA} detects a "
                    f"true difference of {detectable_difference(n):.2f} standard deviations of the per-seed "
                    f"differences with 80% power. The median standard deviation of the g-mean differences here is "
                    f"{med:.3f}, so the study could detect a g-mean difference of about "
                    f"**{detectable_difference(n, med):.3f}** (unadjusted; {detectable_difference(n, med, ALPHA / 6):.3f} "
                    "at the strictest Holm level of 6 baselines). Smaller true effects, if any, are beyond this "
                    "study; the per-comparison figure is the *detectable Δ* column. A Wilcoxon test on "
                    f"{n} pairs cannot go below p = {2 / 2 ** n:.4g}."]
        sm = s.summary.set_index("arm")
        if "real" in sm.index:
            out += ["", f"Real training data: g-mean {sm.loc['real', 'g_mean_mean']:.3f}, AUC "
                    f"{sm.loc['real', 'roc_auc_mean']:.3f}."]
        if getattr(s, "label_table", None) is not None and len(s.singles):
            from scipy import stats

            st = s.single_stats().set_index("name")
            lab = s.label_table.set_index("name")["label_agreement"]
            for w, t in s.tables.items():
                d = [t.d[t.names.index(nm)] for nm in st.index]
                rho = stats.spearmanr(d, st["val_g_mean"]).statistic
                out.append(f"- Across the {len(st)} trained single generators, Spearman ρ between d ({w}) and "
                           f"validation g-mean: {rho:.2f}.")
            rho = stats.spearmanr(lab[st.index], st["val_g_mean"]).statistic
            out.append(f"- Label agreement vs validation g-mean across the same singles: ρ = {rho:.2f}.")
        return out + [""]

    def caveats(self) -> list[str]:
        c = self.c
        return ["Caveats:", "",
                f"- CPU scale: {c.iterations:,} iterations per run and small nets (reference: 100k iterations, "
                f"GPU families); `{c.downstream_model}` for up to {c.epochs} epochs (reference: ResNet-18, 100 "
                "epochs); chosen for cost before any result, never tuned on test.",
                "- The best single by validation is chosen among the trained singles (a seeded sample plus the "
                "best by d), not all generators: a stronger single may exist in the zoo.",
                "- Intra-d and Inter-d ignore labels; the class-aware objectives and label agreement address "
                "this, the published ones do not.", ""]

    def cost(self) -> list[str]:
        s = self.s
        rows = [{"stage": k, "wall time": fmt_seconds(e["wall_s"]), "CPU time": fmt_seconds(e["cpu_s"]),
                 "peak RSS (main + workers)": f"{e['peak_rss_tree_mb']:.0f} MiB", "runs": e["invocations"],
                 "what": e.get("note", "")}
                for k, e in s.log.data.items() if isinstance(e, dict) and "wall_s" in e and k != "report"]
        total = sum(e["wall_s"] for k, e in s.log.data.items() if isinstance(e, dict) and "wall_s" in e)
        return ["## 6. Cost on this machine", "",
                "Wall and CPU time summed over the invocations that did each stage's work (a resumed study adds "
                "up); peak resident memory of the main process plus its workers, sampled every 0.2 s. "
                f"Total wall time: **{fmt_seconds(total)}**.", "", markdown_table(pd.DataFrame(rows)), ""]

    def settings(self) -> list[str]:
        full, now = type(self.c)().to_dict(), self.c.to_dict()
        diff = [f"`{k}` = {json.dumps(now[k], default=str)} (script default: {json.dumps(full[k], default=str)})"
                for k in changed_settings(full, now, skip=set(self.c.RESUMABLE) - {"seeds"} | {"smoke"})]
        return ["## 7. Settings and deviations from the reference protocol", "",
                "- " + ("settings changed from the script's defaults: " + "; ".join(diff) if diff else
                        "the script's defaults (no setting departs from them); every change to the design is listed below"),
                *[f"- design change: {x}" for x in self.s.design_changes],
                "- zoo: CPU-sized families at 28 px instead of GPU families at 100k iterations; embeddings: "
                "random and in-domain ResNet-18 instead of SwAV; search: seeded NSGA-II instead of Optuna TPE; "
                "downstream: small CNN, 10 seeds instead of ResNet-18, 20 seeds.", "",
                "```json", json.dumps(now, indent=1, sort_keys=True, default=str), "```", ""]

    def write(self) -> Path:
        from ensemble import __version__
        from zoo.io import atomic_write

        s, c = self.s, self.c
        self.figures()
        head = ["# PneumoniaMNIST study: does the selected ensemble beat the best single GAN and the naive pool?", "",
                "> **SMOKE RUN**: a tiny configuration; the numbers mean nothing.\n" if c.smoke else "",
                "Generated by `studies/pneumoniamnist/run_study.py`; every number and figure comes from that run. "
                "To regenerate (same seeds, same numbers; finished stages are reused from `--out`):", "",
                "```bash", s.command, "```", "",
                f"- root seed **{c.seed}**; gan-ensemble {__version__}; {_machine()}",
                f"- {c.jobs} worker process(es), {c.threads_per_job} torch thread(s) each; load average at start "
                f"{s.load_start[0]:.1f}; this invocation started {s.started}, written {time.strftime('%Y-%m-%d %H:%M:%S')}",
                "- nothing was chosen on the test split: rules, the best single and every setting use the training "
                "and validation splits only", ""]
        body = head + self.zoo() + self.scores() + self.search() + self.downstream() + self.conclusions()
        body += self.caveats() + self.cost() + self.settings()
        path = s.report_dir / "REPORT.md"
        atomic_write(path, lambda p: p.write_text("\n".join(body) + "\n"))
        s.summary.to_csv(s.out / "summary.csv", index=False)
        s.tests.to_csv(s.out / "significance.csv", index=False)
        return path
