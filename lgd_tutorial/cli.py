"""The ``lgd`` command.

Each subcommand lives in the module that does the work; this file only maps
names to modules and imports the chosen one (so ``lgd --help`` stays fast).
Every such module provides ``main(argv: list[str] | None) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "summary": ("lgd_tutorial.models.summary", "parameters per part and FLOPs of a registered model"),
    "data": ("lgd_tutorial.data.cli", "the synthetic dataset, manifests, data throughput (lgd data synth|manifest|bench)"),
    "prepare": ("lgd_tutorial.data.prepare", "Kinetics at full scale: download, validate, resize, subset"),
    "train": ("lgd_tutorial.train", "train a model from a recipe (alone or under torchrun)"),
    "evaluate": ("lgd_tutorial.evaluate", "multi-clip x multi-crop evaluation of a checkpoint"),
    "workbook": ("lgd_tutorial.workbook", "the main job: run every notebook headless, in order (--only PATTERN)"),
    "exercises": ("lgd_tutorial.grading", "student versions of the notebooks and grading (lgd exercises build|grade)"),
    "bench": ("lgd_tutorial.bench", "model throughput, GFLOP/s against the matmul peak, diffusion overhead, loader workers"),
    "study": ("lgd_tutorial.study", "the diffusion study: four diffusion variants x seeds, CSVs, figure, checkpoints"),
    "viz": ("lgd_tutorial.viz.demo", "render visualisation figures (diffusion maps, Grad-CAM); --demo needs no data"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgd",
        description="LGD networks: models, data, training, evaluation and visualisation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
