"""``gan-ensemble quickstart``: the whole pipeline on one dataset, with a report."""

from __future__ import annotations

import argparse
import time

from ensemble.cli.common import add_data, add_device, add_out, add_seed


def register(subparsers) -> None:
    from ensemble.pipeline import list_profiles

    p = subparsers.add_parser(
        "quickstart",
        help="train a small zoo, score, search, select G*, export and evaluate, with a report",
        description="Run every stage end to end into --out; a second run reuses what is done.",
    )
    add_data(p, default="pneumoniamnist")
    add_out(p, "run folder (default: runs/quick)", default="runs/quick")
    p.add_argument("--profile", default="quick", choices=list_profiles(),
                   help="sizes: quick (minutes on a CPU), tiny (seconds), paper (reference protocol)")
    add_seed(p)
    add_device(p)
    p.add_argument("--families", default=None, help="comma-separated GAN families (see `gan-ensemble zoo architectures`)")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--snapshots", default=None, help="comma-separated iterations to snapshot")
    p.add_argument("--backbone", default=None)
    p.add_argument("--weights", default=None, help="random, hub, in-domain, or a weights file")
    p.add_argument("--rule", default=None, help="selection rule for G*")
    p.add_argument("--objectives", default=None,
                   help="comma-separated search objectives (default intra-d,inter-d)")
    p.add_argument("--keep-degenerate", action="store_true",
                   help="also search generators flagged as degenerate")
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--no-downstream", action="store_true", help="skip the downstream comparison")
    p.add_argument("--label-epochs", type=int, default=None,
                   help="epochs of the small CNN that measures each generator's label agreement "
                        "(profile default: quick 3, tiny 1, paper 20; 0 skips it)")
    from ensemble.parallel import add_backend_arguments

    add_backend_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ensemble.pipeline import make_config, run_pipeline

    cfg = make_config(
        args.profile, dataset=args.dataset, data_root=args.data_root, size=args.size, seed=args.seed,
        device=args.device,
        families=tuple(args.families.split(",")) if args.families else None,
        iterations=args.iterations,
        snapshots=tuple(int(s) for s in args.snapshots.split(",")) if args.snapshots else None,
        backbone=args.backbone, weights=args.weights, rule=args.rule, n_per_class=args.n_per_class,
        objectives=None if args.objectives is None else tuple(x for x in args.objectives.split(",") if x),
        keep_degenerate=args.keep_degenerate or None,
        downstream=False if args.no_downstream else None, label_epochs=args.label_epochs,
        backend=args.backend, scheduler=args.scheduler, n_jobs=args.n_jobs,
    )
    t0 = time.perf_counter()
    res = run_pipeline(cfg, args.out)
    print(f"G* ({res.selected.rule}): {', '.join(res.selected.members)}")
    print("  " + "  ".join(f"{k} {v:.4f}" for k, v in res.selected.objectives.items()))
    excluded = res.selected.meta.get("degenerate_excluded") or []
    if excluded:
        print(f"  left out as degenerate: {', '.join(excluded)}")
    for stage, sec in res.timings.items():
        print(f"  {stage:<11s} {sec:7.1f} s{'  (cached)' if res.cached.get(stage) else ''}")
    print(f"report: {res.paths['report']}  ({time.perf_counter() - t0:.0f} s)")
    return {"out": str(res.out_dir), "paths": {k: str(v) for k, v in res.paths.items()},
            "selected": {"members": list(res.selected.members), "rule": res.selected.rule,
                         "intra_d": res.selected.intra_d, "inter_d": res.selected.inter_d},
            "seconds": dict(res.timings), "cached": dict(res.cached)}
