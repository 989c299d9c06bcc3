"""``report.md`` of a pipeline run: what each stage produced and how long it took."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ensemble.report import markdown_table
from zoo.io import atomic_write

__all__ = ["write_report", "safe_file_name"]


def safe_file_name(name: str) -> str:
    """``name`` with every character other than letters, digits, ``-_.`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _budget(cfg) -> str:
    """The downstream training budget in words."""
    if cfg.downstream_steps is not None:
        text = f"up to {cfg.downstream_steps} optimizer steps"
    else:
        text = f"up to {cfg.downstream_epochs} epochs"
    if cfg.downstream_min_steps:
        text += f" (at least {cfg.downstream_min_steps} steps)"
    if cfg.downstream_warmup_steps:
        text += f", no checkpoint before {cfg.downstream_warmup_steps} steps"
    return text


def _memorisation_lines(tables, selected, out: Path) -> list[str]:
    """The memorisation audit of G*'s members (and every flagged generator), if the tables hold one."""
    mem = getattr(tables, "memorisation", None)
    if mem is None:
        return []
    a = mem.attrs
    cols = ["n_samples", "exact_copies", "n_close", "copy_rate", "holdout_rate", "p_value", "flagged"]
    lines = ["", "## Memorisation audit", "",
             f"Each sample's nearest real training image in the embedding; a sample is *close* when it is "
             f"nearer to that image than the image is to its own nearest other training image "
             f"(authenticity, Alaa et al. 2022). Reference: {a.get('n_holdout')} held-out real "
             f"validation images, close rate {mem['holdout_rate'].iloc[0]:.4f}. A member is flagged "
             f"when a one-sided exact binomial test at level {a.get('alpha')} finds its close rate above "
             f"the reference's one-sided Clopper-Pearson upper bound ({mem['reference_rate'].iloc[0]:.4f}). "
             "A clean audit is not a privacy guarantee (docs/method.md).", "",
             "Members of G\\*:", "", markdown_table(mem.loc[list(selected.members), cols].reset_index(),
                                                   floatfmt=".4f")]
    flagged = list(tables.flagged)
    lines += ["", f"Flagged generators in the zoo: {', '.join(f'`{n}`' for n in flagged) if flagged else 'none'}."]
    if (out / "figures" / "nearest.png").exists():
        lines += ["", "Each member's samples closest to a real training image (rows of samples above "
                  "their nearest real image): ![nearest](figures/nearest.png)"]
    return lines


def _label_lines(tables) -> list[str]:
    """What the label agreement column means and how its judge was trained ([] without it)."""
    if tables.label_agreement is None:
        return []
    a = tables.meta.get("label_fidelity") or {}
    acc = a.get("val_accuracy")
    return [f"*label agreement*: share of a generator's {a.get('n_samples')} samples (labels "
            f"{a.get('labels', 'balanced')}, so chance is 1/K) that a {a.get('model', 'small-cnn')} "
            f"trained on the real training split ({a.get('epochs_run')} of up to {a.get('epochs')} "
            "epochs, early-stopped on the real validation split; never the test split) assigns to "
            "the class they were generated for. The classifier's own accuracy on the validation "
            f"split, the ceiling for a faithful generator: "
            f"{'n/a' if acc is None else format(float(acc), '.4f')}.", ""]


def write_report(res, tables, search, selected) -> Path:
    """``report.md`` beside the figures: what each stage produced and how long it took."""
    from ensemble.version import __version__

    cfg, out = res.config, res.out_dir
    lines = [
        f"# gan-ensemble run: {cfg.dataset} ({cfg.profile} profile)",
        "",
        f"gan-ensemble {__version__}; root seed {cfg.seed}; backbone {cfg.backbone} "
        f"({cfg.weights} weights, {cfg.image_size} px, {cfg.channels}); k = {cfg.k}.",
        "",
        "## Stages",
        "",
        "| stage | seconds | cached |",
        "|---|---|---|",
    ]
    for name, sec in res.timings.items():
        lines.append(f"| {name} | {sec:.1f} | {'yes' if res.cached.get(name) else 'no'} |")
    lines.append(f"| **total** | {sum(res.timings.values()):.1f} | |")
    single = tables.summary()
    lines += [
        "",
        f"## Zoo and scores ({tables.n_generators} generators)",
        "",
        "Per-generator density, coverage and d against the real training images"
        + (", and label agreement" if tables.label_agreement is not None else "") + ":",
        "",
        markdown_table(single, floatfmt=".4f"),
        "",
    ]
    lines += _label_lines(tables)
    reasons = tables.meta.get("degenerate") or {}
    excluded = set(getattr(search, "excluded_", []))
    if tables.degenerate_names:
        lines += ["Degenerate members (collapsed samples or almost no coverage; "
                  f"{'left out of' if excluded else 'kept in'} the search):", ""]
        lines += [f"- `{n}`: {reasons.get(n, 'flagged')}" for n in tables.degenerate_names]
        lines.append("")
    else:
        lines += ["Degenerate members: none.", ""]
    lines += [
        "## Search",
        "",
        f"NSGA-II, population {cfg.pop_size} × {cfg.n_gen} generations: {len(search.front_)} ensembles "
        "on the Pareto front.",
        "",
        f"Objectives: {', '.join(f'`{o}`' for o in search.objectives_)}; selection rule `{selected.rule}`.",
        "",
        "![Pareto front](figures/pareto.png)",
        "",
        f"**G\\*** (rule `{selected.rule}`): {selected.size} members, Intra-d {selected.intra_d:.4f}, "
        f"Inter-d {selected.inter_d:.4f}{' — ' + selected.note if selected.note else ''}",
        "",
    ]
    lines += [f"- `{m}`: ![{m}](figures/members/{safe_file_name(m)}.png)" for m in selected.members]
    info = (selected.meta or {}).get("rule_info") or {}
    if info.get("candidates"):  # the validated rule: every candidate's validation score
        cand = pd.DataFrame(info["candidates"])
        cand["members"] = cand["members"].map(" ".join)
        cols = [c for c in ("row", "size", "intra_d", "inter_d", "val_roc_auc", "val_g_mean", "steps", "members")
                if c in cand.columns]
        lines += ["", f"Candidates of the `{selected.rule}` rule, scored ({info.get('metric')}) on half of the "
                  "real validation split after a brief training:", "", markdown_table(cand[cols], floatfmt=".4f")]
    rules_path = out / "rules.csv"
    if rules_path.exists():
        lines += ["", "Selection rules compared on the same front:", "", markdown_table(pd.read_csv(rules_path), floatfmt=".4f")]
    lines += _memorisation_lines(tables, selected, out)
    lines += ["", "Real images for comparison: ![real](figures/real.png)", "",
              "## Exported dataset", "",
              f"`dataset/` holds the ImageFolder tree (`train/<class>/*.png`), "
              f"`{cfg.dataset}_synthetic.npz` (MedMNIST layout), `manifest.csv` and `meta.json`.", ""]
    if res.summary is not None:
        cols = [c for c in res.summary.columns if c in ("arm", "n_runs", "g_mean_mean", "g_mean_std",
                                                        "accuracy_mean", "accuracy_std", "f1_mean",
                                                        "f1_std", "roc_auc_mean", "roc_auc_std", "note")]
        lines += ["## Downstream: train on synthetic, test on real", "",
                  f"Classifier `{cfg.downstream_model}`, seeds {list(cfg.downstream_seeds)}, "
                  f"{_budget(cfg)}, early stopping on the real validation split; loss class weights: "
                  f"{cfg.class_weight or 'none'}; decision threshold: "
                  f"{'chosen on the real validation split' if cfg.threshold == 'val' else 'arg-max'}; "
                  "metrics on the real test split (mean ± std over seeds). Every best arm is chosen "
                  "on the validation split; *best single, equal samples* is that generator sampled "
                  "with |G\\*| times as many images.", "",
                  "![downstream](figures/downstream.png)", "", markdown_table(res.summary[cols], floatfmt=".4f"), ""]
    text = "\n".join(lines) + "\n"
    path = out / "report.md"
    atomic_write(path, lambda p: p.write_text(text))
    return path
