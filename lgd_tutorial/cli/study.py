"""``lgd study``: the diffusion study (four diffusion variants x seeds)."""

from __future__ import annotations

import argparse

HELP = "the diffusion study: four diffusion variants x seeds, CSVs, figure, checkpoints"
VARIANTS = ("both", "local_to_global", "global_to_local", "none")     # as study.VARIANTS (checked by a test)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/diffusion_study", help="folder for the CSVs, figure and provenance")
    p.add_argument("--pretrained-dir", default=None,
                   help="also save the first seed's model of every variant here as a teaching checkpoint")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: study.StudySettings")
    p.add_argument("--variants", nargs="+", default=None, choices=VARIANTS, help="default: all four")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the study's recipe)")
    p.add_argument("--train-per-class", type=int, default=None, help="training clips per class (default: the study's)")
    p.add_argument("--val-per-class", type=int, default=None, help="validation clips per class (default: the study's)")
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (default: the study's)")
    p.add_argument("--gap", type=int, default=None,
                      help="least object-beacon distance in pixels (default: the study's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--report", metavar="FOLDER", default=None,
                   help="print the Markdown table of a finished study folder and exit (trains nothing)")
    p.add_argument("--redraw", metavar="FOLDER", default=None,
                   help="rewrite the summary, the figure and the CSVs of a finished study folder from its "
                        "runs.csv, curves.csv and study.json (trains nothing)")


def run(args) -> int:
    import json
    from dataclasses import fields
    from pathlib import Path

    import pandas as pd

    from ..experiments.study import StudySettings, report, run_study, write_outputs

    if args.report:
        print(report(Path(args.report)))
        return 0
    if args.redraw:
        folder = Path(args.redraw)
        meta = json.loads((folder / "study.json").read_text())
        write_outputs(folder, pd.read_csv(folder / "runs.csv"), pd.read_csv(folder / "curves.csv"), meta)
        print(report(folder))
        return 0
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    given = {f.name: getattr(args, f.name) for f in fields(StudySettings)
             if getattr(args, f.name, None) is not None}
    pretrained = Path(args.pretrained_dir) if args.pretrained_dir else None
    summary = run_study(StudySettings(**given), Path(args.out), pretrained, args.argv[1:])
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
