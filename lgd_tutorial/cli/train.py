"""``lgd train``: train a model from a recipe, alone or under torchrun."""

from __future__ import annotations

import argparse

HELP = "train a model from a recipe (alone or under torchrun)"
DESCRIPTION = ("Train an LGD model (alone, or under torchrun for DDP). "
               "Overrides: section.key=value, e.g. optim.lr=0.05 data.batch_size=8 run.out_dir=runs/x")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="a recipe name (lgd_tutorial/configs) or a YAML file")
    p.add_argument("overrides", nargs="*", help="key=value")


def run(args) -> int:
    import logging
    import os

    from ..config import ConfigError, load_config
    from ..training import PREEMPTED, train
    from . import fail

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = train(load_config(args.config, args.overrides))
    except ConfigError as e:
        return fail("train", e)
    if result["status"] == "preempted":
        return PREEMPTED
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: epoch {result['epoch']}, step {result['global_step']}, best val acc {result['best_acc']:.3f}")
    return 0
