"""Small helpers shared by the whole package: devices, model modes, atomic writes, progress bars, seeds.

Each lives here once so that training, evaluation, benchmarks, the study,
the notebooks and the command line behave the same way.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Iterable, Iterator

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(kind: str = "auto", index: int | None = None):
    """``"auto"`` | ``"cpu"`` | ``"cuda"`` -> a ``torch.device``.

    "auto" picks CUDA when PyTorch sees a GPU. Asking for "cuda" without one
    raises ValueError (a clear message rather than a late CUDA error).
    """
    import torch

    if kind not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {kind!r}")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but no CUDA device is available")
        return torch.device("cuda", index or 0)
    return torch.device("cpu")


@contextlib.contextmanager
def evaluating(model):
    """Put ``model`` in eval mode for the duration, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A crash or an exception leaves ``path`` as it was (and no temporary file):
    readers never see a half-written file. The temporary name keeps the suffix
    (encoders choose the format by it) and holds the process id (parallel workers).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def progress(iterable: Iterable | None = None, enabled: bool = True, **kwargs):
    """A tqdm bar around ``iterable`` (notebook-aware), or the iterable itself when ``enabled`` is False."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lazy_exports(package: str, exports: dict[str, list[str]]):
    """``(__getattr__, __dir__, __all__)`` for a package whose public names load on first use.

    ``exports`` maps a submodule (relative to ``package``) to the names it
    provides. Importing the package stays cheap (``lgd --help`` does not
    import PyTorch); ``from package import name`` imports the one submodule.
    """
    import importlib

    where = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported by both {where[name]} and {module}")
            where[name] = module

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return __getattr__, __dir__, sorted(where)
