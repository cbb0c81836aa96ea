"""``lgd reach-study``: accuracy against the distance between two cues, LGD beside the plain network."""

from __future__ import annotations

import argparse

HELP = "the reach study: LGD and the plain network on the signpost task at several cue distances"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/reach_study", help="folder for the CSVs, figure and provenance")
    p.add_argument("--models", default=None, help="folder for every trained model (default: OUT/models)")
    p.add_argument("--pretrained-dir", default=None,
                   help="also ship the near- and far-end `both` and `none` models chosen by the stated rule here")
    p.add_argument("--distances", type=int, nargs="+", default=None, help="pixel distances, increasing; the last "
                   "is the far end (default: reach_study.ReachSettings)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds below the far end")
    p.add_argument("--far-seeds", type=int, nargs="+", default=None, help="seeds at the far end")
    p.add_argument("--epochs", type=int, default=None,
                      help="epochs per run (default: the study's recipe, the same at every distance)")
    p.add_argument("--workers", type=int, default=None, help="runs trained at once (processes; default: 2 or fewer)")
    p.add_argument("--quick", action="store_true", help="a tiny study that exercises the whole path in seconds")
    p.add_argument("--report", metavar="FOLDER", default=None,
                   help="print the Markdown tables of a finished study folder and exit (trains nothing)")
    p.add_argument("--remeasure", action="store_true",
                   help="measure the runs already in OUT again from their saved models (for measurements added "
                        "after they were trained); nothing is retrained")
    p.add_argument("--redraw", metavar="FOLDER", default=None,
                   help="rewrite the summaries and the figure of a finished folder from its CSVs (trains nothing)")


def run(args) -> int:
    from pathlib import Path

    from ..experiments.reach_study import QUICK, ReachSettings, redraw, report, run_study
    from . import fail

    if args.redraw:
        redraw(Path(args.redraw))
    if args.report or args.redraw:
        print(report(Path(args.report or args.redraw)))
        return 0
    given = dict(QUICK) if args.quick else {}
    for name in ("distances", "seeds", "far_seeds", "epochs"):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    try:
        summary = run_study(ReachSettings(**given), Path(args.out), Path(args.models) if args.models else None,
                            Path(args.pretrained_dir) if args.pretrained_dir else None, args.workers,
                            args.argv[1:], remeasure=args.remeasure)
    except (ValueError, FileNotFoundError) as error:
        return fail("reach-study", error)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
