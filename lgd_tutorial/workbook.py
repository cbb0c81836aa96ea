"""The main job (``lgd workbook``): run every notebook of the workbook headless, in order.

This is what the README's first command runs after setting up ``.venv/``.
Each numbered notebook of ``notebooks/`` (01_..., 02_..., ...) runs top to
bottom in a fresh kernel; executed copies go to ``notebooks/executed/``
(git-ignored), figures to ``figures/``, and one progress line per notebook
says how long it took and whether it ran. The exit status is 1 if any
notebook failed.

The recipe follows ``LGD_PROFILE``: "cpu" (small sizes, synthetic data) or
"gpu" (the real recipe); by default "gpu" when PyTorch sees a GPU.
``--models`` first prints every registered model's parameter and FLOP budget.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .notebooks import PROFILES, list_notebooks, repository_root, run_notebooks


def print_model_summaries(num_classes: int) -> None:
    from .models import list_models
    from .models.summary import format_summary, summarize

    for name in list_models():
        start = time.perf_counter()
        tiny = name.endswith("_tiny")
        summary = summarize(name, frames=8 if tiny else 16, size=112 if tiny else 224, num_classes=num_classes)
        print(format_summary(summary))
        print(f"  built and counted in {time.perf_counter() - start:.1f} s\n", flush=True)


def default_profile() -> str:
    if os.environ.get("LGD_PROFILE"):
        return os.environ["LGD_PROFILE"]
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lgd workbook",
        description="Run every notebook of the workbook headless, in order; executed copies go to "
                    "notebooks/executed/, figures to figures/.")
    parser.add_argument("--only", metavar="PATTERN", help="run only notebooks whose file name contains PATTERN")
    parser.add_argument("--notebooks", default=None, help="folder of the notebooks (default: notebooks/ of the repository)")
    parser.add_argument("--out", default=None, help="folder for executed copies (default: notebooks/executed)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per notebook (default 900)")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="recipe: cpu (small, synthetic) or gpu (default: gpu when a GPU is present)")
    parser.add_argument("--models", action="store_true", help="first print every registered model's summary")
    parser.add_argument("--num-classes", type=int, default=400, help="classes for --models (default 400)")
    args = parser.parse_args(argv)

    folder = Path(args.notebooks) if args.notebooks else (repository_root() or Path.cwd()) / "notebooks"
    paths = list_notebooks(folder, args.only)
    if not paths:
        parser.error(f"no notebooks named NN_*.ipynb in {folder}" + (f" matching {args.only!r}" if args.only else ""))
    if args.models:
        print_model_summaries(args.num_classes)
    profile = args.profile or default_profile()
    out = Path(args.out) if args.out else folder / "executed"
    print(f"running {len(paths)} notebook(s) from {folder} (profile {profile}); executed copies in {out}", flush=True)
    start = time.perf_counter()
    runs = run_notebooks(paths, out_dir=out, timeout=args.timeout, env={"LGD_PROFILE": profile})
    failed = [run.path.name for run in runs if not run.ok]
    print(f"{len(runs) - len(failed)}/{len(runs)} notebooks ran in {time.perf_counter() - start:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0
