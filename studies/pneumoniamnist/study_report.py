"""REPORT.md of the PneumoniaMNIST study: tables, figures and text from a finished study.

:class:`Report` reads what ``run_study.py`` computed (the zoo's runs and timings, the score
tables, the searches and their G*, the downstream rows, the summary and the paired tests) and
writes ``REPORT.md`` and its figures; it decides nothing about the study's design. Tables use
:func:`ensemble.report.markdown_table`, verdicts :func:`ensemble.downstream.statistics.verdict`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.downstream import plot_metric_panels
from ensemble.downstream.statistics import ALPHA, verdict
from ensemble.report import changed_settings, fmt_number, fmt_p, fmt_seconds, markdown_table

REPO = Path(__file__).resolve().parents[2]
MAIN_METRICS = ("g_mean", "accuracy", "f1", "roc_auc")
METRIC_NAMES = {"g_mean": "g-mean", "accuracy": "accuracy", "f1": "F1", "roc_auc": "ROC AUC"}


class Report:
    """Everything in REPORT.md, computed from the study's outputs (``study.analyse()`` first)."""

    def __init__(self, study) -> None:
        self.s = study
        self.c = study.cfg
        self.figs = study.figs
        self.rel = os.path.relpath(study.figs, study.report_dir)
        self.rules = list(dict.fromkeys(rule for rule, _ in study.gstars)) if hasattr(study, "gstars") else []

    def build(self) -> None:
        """Take the study's analysis: single-generator stats, G* labels, the summary and the tests."""
        s = self.s
        self.single_stats, self.gstar_labels = s.single_stats, s.gstar_labels
        self.summary, self.tests = s.summary, s.tests

    # ---------------------------------------------------------------- figures
    def figure_downstream(self) -> None:
        df = self.summary[~self.summary["arm"].str.contains("optimistic")]
        colors = ["#2ca02c" if a == "real" else "#d62728" if a.startswith("G*") else
                  "#1f77b4" if a.startswith("best") else "#7f7f7f" for a in df["arm"]]
        plot_metric_panels(df, self.figs / "downstream.png", MAIN_METRICS, names=METRIC_NAMES, colors=colors,
                           title=f"Train on synthetic, test on real ({self.c.downstream_model}; "
                                 "mean ± std over seeds)")

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
                     "estimate (1 worker)": fmt_seconds(paper_zoo)})
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
                             "estimate (1 worker)": fmt_seconds(paper)})
            t = st.get(f"tables {w}", {})
            if t.get("invocations"):
                p = len(s.names)
                # real vs each generator, each generator's own k-NN radii, every pair: n x n distances each
                units = p * n_real * n_samp + p * n_samp ** 2 + p * (p - 1) / 2 * n_samp ** 2
                per = t["wall_s"] / units
                paper = per * (110 + 110 + 110 * 109 / 2) * 4708 * 4708
                rows.append({"stage": f"tables {w}", "paper protocol": "110 vs real + 5,995 pairs at n = 4,708",
                             "measured basis": f"{per * 4708 * 4708:.2f} s per set comparison at n = 4,708",
                             "estimate (1 worker)": fmt_seconds(paper)})
        se = st.get("search", {})
        if se.get("invocations"):
            per = se["wall_s"] / max(len(c.weights), 1) / len(s.names)
            rows.append({"stage": "search", "paper protocol": "NSGA-II 100 x 200 on 110 generators",
                         "measured basis": f"{se['wall_s'] / max(len(c.weights), 1):.1f} s per search on "
                                           f"{len(s.names)} generators (cost ~ linear in P)",
                         "estimate (1 worker)": fmt_seconds(per * 110)})
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
                         "estimate (1 worker)": f"{fmt_seconds(early)} (early stopping as here) to {fmt_seconds(full)} "
                                                "(all 100 epochs)"})
            notes.append(f"Per epoch, ResNet-18 (CIFAR style) costs {ratio:.1f}x the small CNN on this CPU "
                         "(calibration stage); this study's downstream stage would have taken about "
                         f"{fmt_seconds(float(df['seconds'].sum()) * ratio)} of worker time with it, instead of "
                         f"{fmt_seconds(float(df['seconds'].sum()))}.")
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
                    f"(95% bootstrap CI [{r['lo']:+.3f}, {r['hi']:+.3f}]; paired t p = {fmt_p(r['p_t'])}, "
                    f"Holm {fmt_p(r['p_holm'])}; Wilcoxon p = {fmt_p(r['p_w'])}; n = {r['n']} seeds).")

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
            same = sum(s.gstars[(r, c.weights[0])].members == s.gstars[(r, c.weights[1])].members for r in self.rules)
            out.append(f"- **Backbones**: the two backbones rank the generators' d with Spearman ρ = {rho:.2f}; "
                       f"they pick the same G* for {same} of {len(self.rules)} rules.")
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
        full, now = type(self.c)().to_dict(), self.c.to_dict()
        skip = set(self.c.RESUMABLE) - {"seeds", "n_random", "n_singles"} | {"smoke"}
        diff = [f"`{k}` = {json.dumps(now[k], default=str)} (full protocol: {json.dumps(full[k], default=str)})"
                for k in changed_settings(full, now, skip=skip)]
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
                          "train time": fmt_seconds(t.get("seconds", float("nan"))),
                          "it/s": f"{it / t['seconds']:.2f}" if it and t.get("seconds") else "n/a"})
        L += ["## 1. Zoo", "",
              f"{len(s.runs)} runs x {len(c.snapshots())} snapshots = **{len(s.names)} generators**, "
              f"{c.iterations:,} iterations at batch {c.batch_size} on the {len(s.train):,} real training "
              f"images (28x28). Runs were trained {c.jobs} at a time in separate processes "
              f"(joblib/loky, {c.threads_per_job} torch thread each), so it/s is per single-threaded worker. "
              "WGAN-GP is left out by default (0.3-1 it/s on one CPU thread: it alone would take longer than "
              "the rest of the zoo); `--with-wgan-gp` adds it. ProGAN grows 7 -> 14 -> 28 px with "
              "`stage_iters` = iterations / 5, so its snapshots span the growth schedule.", "",
              markdown_table(pd.DataFrame(zrows)), "",
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
              "directed d values.", "", markdown_table(sc), ""]
        # ---- search
        L += ["## 3. Search and G*", ""]
        grows = []
        for w, srch in s.searches.items():
            for rule in self.rules:
                e = s.gstars[(rule, w)]
                grows.append({"backbone": w, "rule": rule, "size": e.size, "Intra-d": f"{e.intra_d:.4f}",
                              "Inter-d": f"{e.inter_d:.4f}", "front size": len(srch.front_),
                              "HV": f"{srch.hypervolume_:.4f}", "evaluations": f"{srch.n_evals_:,}",
                              "members": ", ".join(f"`{m}`" for m in e.members) + (f" ({e.note})" if e.note else "")})
        best_single = {w: float(s.tables[w].d.max()) for w in ws}
        L += [f"NSGA-II (pymoo), population {c.pop_size} x {c.n_gen} generations, at least 2 members, seeded. "
              "Best single-generator d for reference: "
              + "; ".join(f"{w} {v:.4f}" for w, v in best_single.items()) + ".", "",
              markdown_table(pd.DataFrame(grows)), ""]
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
            "val g-mean": [fmt_number(v) for v in self.summary["val_g_mean"]],
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
              markdown_table(tab), "", f"![downstream]({self.rel}/downstream.png)", ""]
        if len(self.tests):
            T = self.tests
            tt = pd.DataFrame({
                "G*": T["G*"], "baseline": T["baseline"], "n": T["n"],
                "Δ g-mean": [f"{v:+.3f}" for v in T["diff"]],
                "95% CI (bootstrap)": [f"[{a:+.3f}, {b:+.3f}]" for a, b in zip(T["lo"], T["hi"], strict=True)],
                "p (paired t)": [fmt_p(v) for v in T["p_t"]],
                "p (Holm)": [fmt_p(v) for v in T["p_holm"]],
                "p (Wilcoxon)": [fmt_p(v) for v in T["p_w"]],
                "Δ accuracy": [f"{v:+.3f}" for v in T["d_accuracy"]],
                "Δ F1": [f"{v:+.3f}" for v in T["d_f1"]],
                "Δ AUC": [f"{v:+.3f}" for v in T["d_roc_auc"]],
                "verdict": T.apply(verdict, axis=1),
            })
            L += ["### Significance: G* against each baseline (paired over seeds)", "",
                  f"Differences are G* minus baseline per seed; the CI is a percentile bootstrap over seeds "
                  f"({c.n_boot:,} resamples); *beat* / *lost to* mean that the CI excludes 0 and the paired "
                  f"t-test gives p < {ALPHA} (unadjusted); *n.s.* = not significant.", "",
                  markdown_table(tt), ""]
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
            st_rows.append({"stage": name, "wall time": fmt_seconds(e["wall_s"]), "CPU time": fmt_seconds(e["cpu_s"]),
                            "peak RSS (main)": f"{e['peak_rss_mb']:.0f} MiB",
                            "peak RSS (main + workers)": f"{e['peak_rss_tree_mb']:.0f} MiB",
                            "runs": e["invocations"], "what": e.get("note", "")})
        total_wall = sum(e["wall_s"] for e in s.log.data.values() if isinstance(e, dict) and "wall_s" in e)
        cost, notes = self.cost()
        L += ["## 6. Cost on this machine and at paper scale", "",
              "Wall and CPU time summed over the invocations that did the stage's work (a resumed study "
              "adds up); peak resident memory sampled every 0.2 s, of the main process and of the main "
              "process plus its worker processes (shared library pages counted once per process, so an "
              f"over-estimate). Total wall time: **{fmt_seconds(total_wall)}**.", "",
              markdown_table(pd.DataFrame(st_rows)), "",
              "Paper-scale protocol (110 generators x 100k iterations, 4,708 samples each, 20 seeds x 100 "
              "epochs of ResNet-18), extrapolated from the rates measured here:", "",
              markdown_table(cost) if len(cost) else "(no measurements yet)", ""] + [f"- {n}" for n in notes] + [""]
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

