"""``lgd summary``: parameters per part and FLOPs of a registered model."""

from __future__ import annotations

import argparse

HELP = "parameters per part and FLOPs of a registered model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="a registered model (see --all)")
    p.add_argument("--all", action="store_true", help="summarise every registered model")
    p.add_argument("--frames", type=int, default=None, help="clip length T (default: the model's)")
    p.add_argument("--size", type=int, default=None, help="crop size (default: the model's)")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--diffusion", default=None, help="override the diffusion setting")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import json

    from ..models import list_models, model_info
    from ..models.summary import format_summary, summarize
    from . import fail

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
