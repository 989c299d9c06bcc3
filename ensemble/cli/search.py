"""``gan-ensemble search``: the Pareto front of ensembles from score tables, and G*.

Examples::

    gan-ensemble search --tables out/tables.npz --out out/search
    gan-ensemble search --tables out/tables.npz --out out/search --rule knee --seed 1
    gan-ensemble search --tables out/tables.npz --out out/search --rule asf --weights 0.7,0.3
    gan-ensemble search --tables out/tables.npz --out out/search --rule smallest-within --tol 0.02

Writes ``front.csv`` (members as JSON lists), ``selected.json``, ``pareto.png``,
``hypervolume.png``, ``history.csv`` and ``evaluated.csv`` into ``--out`` through
:func:`ensemble.search.save_search_outputs`. ``--seed`` is the root seed of the run: the search
gets ``ensemble.seeds.search_seed(seed)``, exactly as ``gan-ensemble quickstart`` does, so the
stage commands and quickstart give the same front for the same seed.
"""

from __future__ import annotations

import argparse
import sys

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


def _run(args: argparse.Namespace) -> int:
    from ensemble.scoring.tables import ScoreTables
    from ensemble.search import EnsembleSearch, check_rule_params, list_rules, save_search_outputs
    from ensemble.seeds import search_seed

    if args.rule not in list_rules():
        raise ValueError(f"unknown selection rule {args.rule!r}; known rules: {', '.join(list_rules())}")
    rule_params = {}
    if args.weights is not None:
        rule_params["weights"] = args.weights
    if args.tol is not None:
        rule_params["tol"] = args.tol
    check_rule_params(args.rule, rule_params)
    tables = ScoreTables.load(args.tables)
    search = EnsembleSearch(
        algorithm=args.algorithm, pop_size=args.pop_size, n_gen=args.n_gen, seed=search_seed(args.seed),
        min_size=args.min_size, max_size=args.max_size, crossover=args.crossover,
        mutation_prob=args.mutation_prob, init_density=args.init_density, n_evals=args.n_evals,
        progress=sys.stderr.isatty(), exclude_memorising=args.exclude_memorising,
    ).fit(tables)
    if search.excluded_:
        print(f"left out {len(search.excluded_)} generator(s) the memorisation audit flags: "
              f"{', '.join(search.excluded_)}")
    selected = search.select(args.rule, **rule_params)
    selected.meta["root_seed"] = args.seed
    paths = save_search_outputs(search, args.out, selected, evaluated=not args.no_evaluated)
    if selected.note:
        print(f"note: {selected.note}")
    print(f"front: {len(search.front_)} ensembles from {search.n_evals_:,} evaluations "
          f"({search.algorithm}, root seed {args.seed}, hypervolume {search.hypervolume_:.4f}); "
          f"G* ({selected.rule}): {selected.size} members, Intra-d {selected.intra_d:.4f}, "
          f"Inter-d {selected.inter_d:.4f}: {', '.join(selected.members)}")
    print(f"wrote {', '.join(p.name for p in paths.values())} to {args.out}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    from ensemble.search import CROSSOVERS, list_algorithms, list_rules

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
    p.add_argument("--no-evaluated", action="store_true", help="skip evaluated.csv (every evaluated ensemble)")
    p.add_argument("--exclude-memorising", action="store_true",
                   help="leave out the generators the memorisation audit flags (tables scored "
                        "with --holdout val)")
    p.set_defaults(func=_run)
    return p
