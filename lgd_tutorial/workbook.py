"""The main job (``lgd workbook``): build every registered model and print its summary.

This is what the README's first command runs after setting up ``.venv/``: a
check, on the user's own machine, that every network builds, runs a forward
pass and reports its parameter and FLOP budget.
"""

from __future__ import annotations

import argparse
import time

from .models import list_models
from .models.summary import format_summary, summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lgd workbook",
                                     description="Build every registered model and print its summary.")
    parser.add_argument("--num-classes", type=int, default=400)
    args = parser.parse_args(argv)
    for name in list_models():
        start = time.perf_counter()
        tiny = name.endswith("_tiny")
        summary = summarize(name, frames=8 if tiny else 16, size=112 if tiny else 224,
                            num_classes=args.num_classes)
        print(format_summary(summary))
        print(f"  built and counted in {time.perf_counter() - start:.1f} s\n", flush=True)
    return 0
