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

    from ..checkpoint import CheckpointError
    from ..config import ConfigError, load_config
    from ..training import PREEMPTED, train
    from . import fail

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        result = train(cfg)
    except ConfigError as e:
        return fail("train", e)
    except CheckpointError as e:                 # e.g. a fine-tune whose starting checkpoint is not there yet
        hint = (f" (model.init_from={cfg.model.init_from!r}: train that model first, or point model.init_from at "
                "its best.pt)" if cfg.model.init_from and str(cfg.model.init_from) in str(e) else "")
        return fail("train", f"{e}{hint}")
    if result["status"] == "preempted":
        return PREEMPTED
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: epoch {result['epoch']}, step {result['global_step']}, best val acc {result['best_acc']:.3f}; "
              f"best checkpoint {result.get('best_path') or os.path.join(cfg.run.out_dir, 'best.pt')}")
    return 0
