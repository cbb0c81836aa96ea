"""``lgd gpu-check``: the CUDA side of the workbook measured in one unattended run, and its report."""

from __future__ import annotations

import argparse

HELP = "measure the GPU path in one unattended run (device, throughput and MFU, DDP resume, GPU notebooks)"
DESCRIPTION = (HELP + ". Without CUDA (or with --dry-run) every step runs with tiny sizes, to show that it starts "
               "and writes its files. --report prints a finished report as the README shows it.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/gpu_check", help="folder for the report (default: runs/gpu_check)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on any device (the default without CUDA)")
    p.add_argument("--steps", nargs="+", default=None, metavar="STEP",
                   help="the steps to run, in order (default: device throughput ddp notebooks)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for all steps together (default: 470 on a GPU, 900 for a dry run)")
    p.add_argument("--notebooks", nargs="+", default=None, metavar="NN",
                   help="the notebooks the last step runs with LGD_PROFILE=gpu (default: 05; 07 has no GPU path)")
    p.add_argument("--report", metavar="FOLDER", default=None,
                   help="measure nothing: print a finished check's folder as Markdown (the README's GPU section)")
    p.add_argument("--update-readme", action="store_true",
                   help="with --report: write that section into README.md between its gpu-check markers")


def run(args) -> int:
    from pathlib import Path

    from ..gpu_check import STEPS, SUMMARY, readme_section, run_check, update_readme
    from . import fail

    if args.report:
        folder = Path(args.report)
        if not (folder / "gpu_check.json").is_file():
            return fail("gpu-check", f"{folder} is not a finished gpu-check folder (no gpu_check.json)")
        if args.update_readme:
            try:
                print(f"README section rewritten: {update_readme(folder)}")
            except (OSError, ValueError) as e:
                return fail("gpu-check", e)
            return 0
        print(readme_section(folder))
        return 0
    if args.update_readme:
        return fail("gpu-check", "--update-readme goes with --report FOLDER")
    steps = tuple(args.steps or STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        return fail("gpu-check", f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    if args.budget is not None and args.budget <= 0:
        return fail("gpu-check", f"--budget must be a positive number of seconds, got {args.budget:g}")
    import torch

    dry_run = True if args.dry_run or not torch.cuda.is_available() else None
    if dry_run and not args.dry_run:
        print("no CUDA device: running the dry run (tiny sizes; it shows that every step starts and writes its "
              "files, and measures nothing worth keeping)", flush=True)
    out = Path(args.out)
    if dry_run and out.resolve().parts[-2:] == ("figures", "gpu"):
        return fail("gpu-check", "a dry run never writes figures/gpu/, where the report from a real GPU ships; "
                                 "pick another --out")
    table = run_check(out, dry_run=dry_run, steps=steps, budget=args.budget, notebooks=args.notebooks,
                      argv=args.argv[1:])
    print()
    print(readme_section(out))
    print(f"\nreport: {out / SUMMARY}")
    return 0 if (table["status"] == "passed").all() else 1
