"""``lgd summary``: parameters per part and FLOPs of a registered model; ``--budget``: what LGD and the other
ways of bringing in global context cost beside the plain network (``lgd_tutorial.experiments.context_budget``)."""

from __future__ import annotations

import argparse

HELP = "parameters per part and FLOPs of a registered model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="a registered model (see --all)")
    p.add_argument("--all", action="store_true", help="summarise every registered model")
    p.add_argument("--frames", type=int, default=None, help="clip length T (default: the model's)")
    p.add_argument("--size", type=int, default=None, help="crop size (default: the model's)")
    p.add_argument("--num-classes", type=int, default=400,
                      help="classes of the classifier the summary counts (default 400, Kinetics-400)")
    p.add_argument("--diffusion", default=None, help="override the diffusion setting")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--budget", action="store_true",
                   help="measure LGD, SE, GC and non-local against the plain P3D at 16x224 and 8x112: parameters, "
                        "FLOPs and the training step's time ratio (interleaved, with intervals); writes --out")
    p.add_argument("--out", default="runs/context_budget", help="folder for --budget's budget.csv and budget.json")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds of training steps for --budget")
    p.add_argument("--sizes", nargs="+", default=None, choices=("16x224", "8x112"),
                   help="clip sizes for --budget (default: both)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="print the Markdown budget table of a folder written by --budget")


def run(args) -> int:
    import json

    from ..models import list_models, model_info
    from ..models.summary import format_summary, summarize
    from . import fail

    if args.report:
        from ..experiments.context_budget import report
        try:
            print(report(args.report))
        except FileNotFoundError as error:
            return fail("summary", f"--report: {error.filename} is missing (write it with --budget)")
        return 0
    if args.budget:
        import sys

        from ..experiments.context_budget import SIZES, run as run_budget
        if args.repeats < 2:
            return fail("summary", f"--repeats must be at least 2 for an interval, got {args.repeats}")
        table = run_budget(args.out, args.sizes or tuple(SIZES), args.repeats, argv=sys.argv[2:])
        print(f"wrote {len(table)} rows to {args.out}/budget.csv")
        return 0
    if args.all == bool(args.model):
        return fail("summary", "name one MODEL or pass --all")
    results = []
    try:
        for name in list_models() if args.all else [args.model]:
            info = model_info(name)
            overrides = {"diffusion": args.diffusion} if args.diffusion else {}
            results.append(summarize(name, args.frames or info.frames, args.size or info.size, args.num_classes,
                                     **overrides))
    except ValueError as error:
        return fail("summary", error)
    if args.json:
        print(json.dumps(results if args.all else results[0], indent=2))
    else:
        print("\n\n".join(format_summary(r) for r in results))
    return 0
