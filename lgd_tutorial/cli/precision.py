"""``lgd precision``: the teaching recipe in float32 and in bf16 autocast, over seeds."""

from __future__ import annotations

import argparse
import sys

HELP = "the teaching recipe in float32 and in bf16 autocast over seeds: accuracy and speed, paired"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                      help="seeds to train each precision with (default 0 1 2)")
    p.add_argument("--out", default="runs/precision", help="folder for runs.csv, paired.csv, summary.csv, "
                                                           "curves.csv and precision.json")
    p.add_argument("--work", default=None, help="folder for the training runs (default: OUT/runs)")
    p.add_argument("--speed-steps", type=int, default=20, help="optimizer steps per precision in a speed round")
    p.add_argument("--speed-rounds", type=int, default=12, help="interleaved speed rounds (A B, B A, ...)")
    p.add_argument("overrides", nargs="*", help="key=value for the recipe, e.g. optim.epochs=6")


def run(args) -> int:
    from ..config import ConfigError
    from ..experiments.precision import report, run as measure
    from ..training import Stopped
    from . import fail

    try:
        result = measure(args.seeds, args.out, args.overrides, args.argv[1:], work=args.work, steps=args.speed_steps,
                         rounds=args.speed_rounds)
    except (ConfigError, ValueError) as e:
        return fail("precision", e)
    except Stopped as e:
        print(f"lgd precision: stopped: {e}", file=sys.stderr)
        return 1
    print(report(args.out))
    print(f"written to {args.out}")
    return 0
