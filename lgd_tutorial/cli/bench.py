"""``lgd bench``: model throughput, GFLOP/s against a measured peak, bf16, diffusion overhead and why."""

from __future__ import annotations

import argparse

from ..utils import DEVICES

HELP = "model throughput, GFLOP/s against a measured peak, bf16, diffusion overhead and its traffic model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true", help="seconds-long run: 4x64 clips, one repeat, small matmul and data test")
    p.add_argument("--models", nargs="+", default=None, help="registered models or torchvision peers (default: bench.MODELS)")
    p.add_argument("--sizes", nargs="+", default=None, help="TxS clip sizes (default: 16x224 8x112)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per model, after one warm-up")
    p.add_argument("--batch-size", type=int, default=1, help="clips per step")
    p.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), default=None,
                   help="default: fp32, and bf16 where the device has it natively")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where to measure: cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--channels-last", action="store_true",
                   help="also time training in channels_last_3d against the default layout (run.channels_last_cpu)")
    p.add_argument("--skip-data", action="store_true", help="leave out the data-loader measurement")
    p.add_argument("--out", default="runs/bench", help="folder for the CSV files")
    p.add_argument("--figure", default="figures/bench_models.png", help="the plot ('' for none)")
    p.add_argument("--markdown", metavar="FOLDER", default=None,
                   help="measure nothing: print a finished run's folder as Markdown tables (as in the README)")


def run(args) -> int:
    from ..experiments.bench_models import MODELS, SIZES, markdown, parse_size, report
    from ..experiments.bench_models import run as measure
    from ..utils import resolve_device
    from . import fail

    if args.markdown:
        try:
            print(markdown(args.markdown))
        except (OSError, KeyError, ValueError) as e:
            return fail("bench", f"{args.markdown} is not a finished benchmark folder: {e}")
        return 0

    try:
        for text in args.sizes or ():
            parse_size(text)
        device = resolve_device(args.device)
    except ValueError as e:
        return fail("bench", e)
    tables = measure(models=args.models or MODELS, sizes=args.sizes or (("4x64",) if args.smoke else SIZES),
                     repeats=1 if args.smoke else args.repeats, batch=args.batch_size, device=device,
                     threads=args.threads, smoke=args.smoke, data=not args.skip_data, dtypes=args.dtypes,
                     channels_last=args.channels_last, out=args.out,
                     figure=args.figure or None, argv=args.argv[1:])
    print(report(tables))
    print(f"CSV files in {args.out}/" + (f"; plot: {args.figure}" if args.figure else ""))
    return 0
