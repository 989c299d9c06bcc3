"""``gan-ensemble search``: the Pareto front of ensembles from score tables, and G*.

Examples::

    gan-ensemble search --tables out/tables.npz --out out/search
    gan-ensemble search --tables out/tables.npz --out out/search --rule knee --seed 1
    gan-ensemble search --tables out/tables.npz --out out/search --rule asf --weights 0.7,0.3
    gan-ensemble search --tables out/tables.npz --out out/search --rule smallest-within --tol 0.02
    gan-ensemble search --tables out/tables.npz --out out/search --objectives class-intra-d,coverage-overlap
    gan-ensemble search --tables out/tables.npz --out out/search --rule validated \
        --zoo out/zoo --dataset pneumoniamnist --k 8

``--rule validated`` trains a classifier briefly on each of ``--k`` front candidates and picks on
the real validation split (never the test split), so it needs the zoo (``--zoo``) and the real data
(``--dataset``, default: the generators' dataset; ``--data-root``); it prints its cost first.

Writes ``front.csv`` (members as JSON lists), ``selected.json``, ``pareto.png``,
``hypervolume.png``, ``history.csv`` and ``evaluated.csv`` into ``--out`` through
:func:`ensemble.search.save_search_outputs`. ``--seed`` is the root seed of the run: the search
gets ``ensemble.seeds.search_seed(seed)``, exactly as ``gan-ensemble quickstart`` does, so the
stage commands and quickstart give the same front for the same seed.
"""

from __future__ import annotations

import argparse
import sys

from ensemble.cli.common import add_data, add_device

__all__ = ["register"]


def _weights(text: str) -> tuple[float, float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        w = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 0.5,0.5, got {text!r}") from None
    if len(w) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers (w_fid,w_red), got {text!r}")
    return w


def _validation_context(args: argparse.Namespace, search, k: int):
    """The ``validated`` rule's context (catalog, real train and val splits); prints the cost."""
    from ensemble.downstream.sources import real_splits
    from ensemble.search import ValidationContext, validation_cost
    from zoo.catalog import Catalog

    catalog = Catalog(args.zoo, create=False)
    first = [str(m) for m in search.front_["members"].iloc[0]]
    splits, dataset, resized = real_splits(catalog, first, dataset=args.dataset, root=args.data_root,
                                           splits=("train", "val"))
    if resized:
        print(f"resized real {dataset} images to {splits['train'].image_shape[:2]} to match the generators")
    ctx = ValidationContext(catalog, splits["train"], splits["val"], model=args.model,
                            steps=args.val_steps, warmup_steps=args.val_warmup_steps,
                            n_per_class=args.n_per_class, metric=args.val_metric, seed=args.seed,
                            device=args.device, progress=sys.stderr.isatty())
    c = validation_cost(search.front_, ctx, k)
    print(f"validated: {c['candidates']} candidates x up to {c['steps_per_candidate']} steps of "
          f"{args.model} ({c['training_images']:,} training images), after sampling "
          f"{c['images_sampled']:,} images from {c['generators']} generators; scored on half of the real "
          f"{dataset} validation split ({args.val_metric}), the test split is never read")
    return ctx


def _run(args: argparse.Namespace) -> int:
    from ensemble.scoring.tables import ScoreTables
    from ensemble.search import (
        EnsembleSearch,
        check_rule_params,
        list_rules,
        rule_needs_context,
        save_search_outputs,
    )
    from ensemble.search.objectives import DEFAULT_OBJECTIVES, resolve_objectives
    from ensemble.seeds import search_seed

    if args.rule not in list_rules():
        raise ValueError(f"unknown selection rule {args.rule!r}; known rules: {', '.join(list_rules())}")
    rule_params = {}
    if args.weights is not None:
        rule_params["weights"] = args.weights
    if args.tol is not None:
        rule_params["tol"] = args.tol
    if args.k is not None:
        rule_params["k"] = args.k
    check_rule_params(args.rule, rule_params)
    objectives = tuple(o.name for o in resolve_objectives(args.objectives))
    if rule_needs_context(args.rule) and not args.zoo:
        raise ValueError(f"--rule {args.rule} trains classifiers on the candidates' generators: give "
                         "--zoo (the folder holding catalog.sqlite) and the real data (--dataset, "
                         "--data-root)")
    tables = ScoreTables.load(args.tables)
    search = EnsembleSearch(
        algorithm=args.algorithm, pop_size=args.pop_size, n_gen=args.n_gen, seed=search_seed(args.seed),
        min_size=args.min_size, max_size=args.max_size, crossover=args.crossover,
        mutation_prob=args.mutation_prob, init_density=args.init_density, n_evals=args.n_evals,
        progress=sys.stderr.isatty(), objectives=objectives, keep_degenerate=args.keep_degenerate,
        exclude_memorising=args.exclude_memorising,
    ).fit(tables)
    if search.memorising_excluded_:
        print(f"left out {len(search.memorising_excluded_)} generator(s) the memorisation audit flags: "
              f"{', '.join(search.memorising_excluded_)}")
    if rule_needs_context(args.rule):
        rule_params["context"] = _validation_context(args, search, rule_params.get("k", 8))
    selected = search.select(args.rule, **rule_params)
    selected.meta["root_seed"] = args.seed
    paths = save_search_outputs(search, args.out, selected, evaluated=not args.no_evaluated)
    if search.degenerate_excluded_:
        print(f"left out as degenerate: {', '.join(search.degenerate_excluded_)} (--keep-degenerate keeps them)")
    if selected.note:
        print(f"note: {selected.note}")
    print(f"front: {len(search.front_)} ensembles from {search.n_evals_:,} evaluations "
          f"({search.algorithm}, root seed {args.seed}, hypervolume {search.hypervolume_:.4f}); "
          f"G* ({selected.rule}): {selected.size} members, Intra-d {selected.intra_d:.4f}, "
          f"Inter-d {selected.inter_d:.4f}: {', '.join(selected.members)}")
    if tuple(objectives) != DEFAULT_OBJECTIVES:
        print("objectives: " + ", ".join(f"{k} {v:.4f}" for k, v in selected.objectives.items()))
    print(f"wrote {', '.join(p.name for p in paths.values())} to {args.out}")
    return {"out": str(args.out), "paths": {k: str(v) for k, v in paths.items()},
            "front_size": int(len(search.front_)), "n_evals": int(search.n_evals_),
            "hypervolume": float(search.hypervolume_),
            "selected": {"members": list(selected.members), "rule": selected.rule,
                         "intra_d": selected.intra_d, "inter_d": selected.inter_d}}


def register(subparsers) -> argparse.ArgumentParser:
    from ensemble.search import CROSSOVERS, VALIDATION_METRICS, list_algorithms, list_rules
    from ensemble.search.objectives import DEFAULT_OBJECTIVES, list_objectives

    p = subparsers.add_parser(
        "search", help="find the Pareto front of ensembles and pick G*",
        description="Search ensembles of the scored generators for the Pareto front of Intra-d "
                    "(fidelity, maximised) and Inter-d (redundancy, minimised), then pick G* "
                    "with a rule.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--tables", required=True, help="score tables (.npz) from `gan-ensemble score`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="root seed")
    p.add_argument("--algorithm", default="nsga2", choices=list_algorithms())
    p.add_argument("--pop-size", type=int, default=100, help="NSGA-II population (random: batch size)")
    p.add_argument("--n-gen", type=int, default=200, help="NSGA-II generations")
    p.add_argument("--n-evals", type=int, default=None, help="evaluation budget (overrides --n-gen)")
    p.add_argument("--min-size", type=int, default=2, help="fewest members of an ensemble")
    p.add_argument("--max-size", type=int, default=None, help="most members (default: all generators)")
    p.add_argument("--crossover", default="two-point", choices=list(CROSSOVERS))
    p.add_argument("--mutation-prob", type=float, default=None, help="bit-flip probability (default 1/P)")
    p.add_argument("--init-density", type=float, default=None,
                   help="initial bit density (default: sparse, sizes up to ~2*sqrt(P))")
    p.add_argument("--rule", default="max-fidelity", help=f"rule picking G*: {', '.join(list_rules())}")
    p.add_argument("--weights", type=_weights, default=None, help="asf: importances w_fid,w_red (e.g. 0.5,0.5)")
    p.add_argument("--tol", type=float, default=None,
                   help="smallest-within: relative Intra-d tolerance (rule default 0.01)")
    p.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES),
                   help=f"two or more comma-separated objectives: {', '.join(list_objectives())}")
    p.add_argument("--keep-degenerate", action="store_true",
                   help="also search generators the tables flag as degenerate (collapsed, no coverage)")
    p.add_argument("--no-evaluated", action="store_true", help="skip evaluated.csv (every evaluated ensemble)")
    p.add_argument("--exclude-memorising", action="store_true",
                   help="leave out the generators the memorisation audit flags (tables scored "
                        "with --holdout val)")
    g = p.add_argument_group("validated rule", "a brief downstream check of front candidates on the real "
                             "validation split (--rule validated)")
    g.add_argument("--k", type=int, default=None, help="validated: candidates along the front (rule default 8)")
    g.add_argument("--zoo", default=None, help="validated: zoo folder holding catalog.sqlite")
    add_data(g, help_dataset="validated: MedMNIST flag, npz file or ImageFolder tree "
             "(default: the generators' dataset)")
    g.add_argument("--model", default="small-cnn", help="validated: downstream classifier")
    g.add_argument("--val-steps", type=int, default=150, help="validated: optimizer steps per candidate (at most)")
    g.add_argument("--val-warmup-steps", type=int, default=50,
                   help="validated: steps before any checkpoint or early stop")
    g.add_argument("--val-metric", default="roc_auc", choices=list(VALIDATION_METRICS),
                   help="validated: metric scored on the held-out half of the validation split")
    g.add_argument("--n-per-class", type=int, default=None,
                   help="validated: images per class and generator (default: real train size / classes)")
    add_device(g)
    p.set_defaults(func=_run)
    return p
