"""``lgd workbook``: the main job, every notebook headless and in order."""

from __future__ import annotations

import argparse

HELP = "the main job: run every notebook headless, in order (--only PATTERN)"
DESCRIPTION = ("Run every notebook of the workbook headless, in order; executed copies go to "
               "notebooks/executed/ and their figures to notebooks/executed/figures/ (both git-ignored); "
               "--update-figures rewrites the tracked figures/ instead.")
PROFILES = ("cpu", "gpu")               # as notebooks.PROFILES (checked by a test)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", metavar="PATTERN", help="run only notebooks whose file name contains PATTERN")
    p.add_argument("--notebooks", default=None, help="folder of the notebooks (default: notebooks/ of the repository)")
    p.add_argument("--out", default=None, help="folder for executed copies (default: notebooks/executed)")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per notebook (default 900)")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="recipe: cpu (small, synthetic) or gpu (default: gpu when a GPU is present)")
    p.add_argument("--models", action="store_true", help="first print every registered model's summary")
    p.add_argument("--update-figures", action="store_true",
                   help="write the figures into the repository's tracked figures/ (the ones the README shows), "
                        "to update them on purpose; by default they go next to the executed copies")
    p.add_argument("--update-timings", action="store_true",
                   help="record each notebook's run time in notebooks/timings.json (the notebooks' headers quote "
                        "it; rebuild them with notebooks/src/build_notebooks.py); CPU profile only")
    p.add_argument("--num-classes", type=int, default=400, help="classes for --models (default 400)")


def run(args) -> int:
    from ..workbook import run_workbook
    from . import fail

    try:
        return run_workbook(args.notebooks, args.only, args.out, args.timeout, args.profile, args.models,
                            args.num_classes, update_figures=args.update_figures,
                            update_timings=args.update_timings)
    except (FileNotFoundError, ValueError) as e:
        return fail("workbook", e)
