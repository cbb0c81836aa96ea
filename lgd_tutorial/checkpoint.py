"""Checkpoints: written atomically, read safely, and holding everything needed to continue exactly.

A training checkpoint is a dict with ``model``, ``optimizer``, ``scaler``,
``epoch``, ``step_in_epoch``, ``global_step``, ``best_acc``, ``rng`` (the
Python, NumPy, PyTorch and CUDA generator states), ``config`` and
``world`` (the number of processes that wrote it). ``torch.load`` runs with
``weights_only=True``: loading a checkpoint never executes code from it.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from .utils import atomic_path

log = logging.getLogger("lgd_tutorial.checkpoint")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt or not written by this project; names the file."""


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_pos": random.getstate()[2],
             "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict, path) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """``torch.load(weights_only=True)``; a truncated or corrupt file raises CheckpointError naming it."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        first = str(e).split(". ")[0].strip().rstrip(".")           # one whole sentence, never cut mid-word
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or damaged ({type(e).__name__}: "
                              f"{first})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a checkpoint of this project (no 'model' entry)")
    return state


def checkpoints_in(folder: Path) -> list[Path]:
    """Step checkpoints, newest first (by global step in the name)."""
    return sorted(Path(folder).glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]), reverse=True)


def newest_good_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; damaged ones are reported and skipped."""
    for path in checkpoints_in(folder):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as e:
            log.warning("%s; trying the previous one", e)
    return None
