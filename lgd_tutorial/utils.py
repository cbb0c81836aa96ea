"""Small helpers shared by the whole package: devices, model modes, atomic writes, progress bars, seeds.

Each lives here once so that training, evaluation, benchmarks, the study,
the notebooks and the command line behave the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path
from typing import Iterable, Iterator

from .constants import DEVICES


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


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), as PyTorch's cpuinfo reads it;
    without PyTorch's probe, the kernel's CPU flags (Linux). False when neither can tell."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(p) for p in probes):
        return any(p() for p in probes)
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def cpu_bf16_gemm_speedup(n: int = 1024, repeats: int = 3) -> float:
    """How much faster this CPU multiplies n x n matrices in bfloat16 than in float32 (best of
    ``repeats`` each, measured once per process, about 0.1 s). A CPU can list AVX-512 BF16 and still run
    PyTorch's bf16 GEMMs at half the float32 rate (a virtual CPU whose flags promise more than the
    kernels use); this is what decides."""
    import time

    import torch

    rates = {}
    own = torch.Generator().manual_seed(0)        # not the global generator: a seeded run must not depend on
    for dtype in (torch.float32, torch.bfloat16):   # whether the probe already ran in this process
        a, b = (torch.rand(n, n, generator=own).to(dtype) for _ in range(2))
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        rates[dtype] = 1 / best
    return rates[torch.bfloat16] / rates[torch.float32]


BF16_MIN_SPEEDUP = 1.1      # run.amp=auto on a CPU: bf16 only where its GEMMs are at least this much faster


def amp_dtype(mode: str, device):
    """The autocast dtype ``run.amp`` means on ``device`` (None: float32).

    "auto": bfloat16 on GPUs that have it (else float16 with a GradScaler); on a CPU, bfloat16 where the
    CPU has native bfloat16 (``cpu_native_bf16``) *and* PyTorch's bf16 GEMMs run measurably faster
    there than float32 ones (``cpu_bf16_gemm_speedup``), else float32. "bf16" and "fp16" force the
    type ("fp16" only on CUDA); "off" is float32.
    """
    import torch

    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    if mode == "fp16":
        raise ValueError("run.amp=fp16 needs a CUDA device; on a CPU use bf16 or off")
    if mode == "bf16" or (cpu_native_bf16() and cpu_bf16_gemm_speedup() >= BF16_MIN_SPEEDUP):
        return torch.bfloat16
    return None


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


def cpu_name() -> str:
    """The CPU's model name as Linux reports it ("unknown" where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def shows_progress() -> bool:
    """Whether a progress bar can be seen: a terminal on stderr, or a Jupyter kernel. A log file or a pipe gets
    no bars (they would fill it with carriage-return lines)."""
    import sys

    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress(iterable: Iterable | None = None, enabled: bool = True, **kwargs):
    """A tqdm bar around ``iterable`` (notebook-aware), or the iterable itself when ``enabled`` is False or
    nobody can see a bar (``shows_progress``)."""
    if not enabled or not shows_progress():
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
