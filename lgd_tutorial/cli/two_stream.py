"""``lgd two-stream``: RGB, flow and their fusion on the teaching task, over seeds."""

from __future__ import annotations

import argparse
import sys

HELP = "RGB (with and without diffusion), optical flow and their late fusion on the teaching task, over seeds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                      help="seeds to train each stream with (default 0 1 2)")
    p.add_argument("--out", default="runs/two_stream", help="folder for runs.csv, summary.csv and two_stream.json")
    p.add_argument("--work", default=None, help="folder for the training runs (default: OUT/runs)")
    p.add_argument("--flow-weight", type=float, default=1.5, help="fused = rgb + weight x flow video scores")
    p.add_argument("--no-plain", action="store_true",
                   help="skip the RGB network without diffusion (the third run per seed)")
    p.add_argument("--pretrained-dir", default=None,
                   help="also save the first seed's flow model there as a teaching checkpoint (lgd_tutorial/pretrained)")
    p.add_argument("overrides", nargs="*", help="key=value for both recipes, e.g. optim.epochs=6")


def run(args) -> int:
    from ..config import ConfigError
    from ..experiments.two_stream import run as measure
    from ..training import Stopped
    from . import fail

    try:
        result = measure(args.seeds, args.out, args.flow_weight, args.overrides, args.argv[1:], work=args.work,
                         plain=not args.no_plain, pretrained_dir=args.pretrained_dir)
    except (ConfigError, ValueError) as e:
        return fail("two-stream", e)
    except Stopped as e:
        print(f"lgd two-stream: stopped: {e}", file=sys.stderr)
        return 1
    print(result["summary"].to_string(index=False))
    print(f"written to {args.out}")
    return 0
