"""A trained model as a file other runtimes load: TorchScript (``torch.jit.trace``) and ONNX.

    lgd export --pretrained lgd3d_tiny_beacon_both --out runs/export
    lgd export --checkpoint runs/k400_50/best.pt --formats onnx --out runs/export

The model is traced in eval mode on a clip of the size it reads (``frames`` x ``size`` x ``size``, 3 channels for
RGB and 2 for flow) and returns the logits (N, K). The **batch size is free**; frames and size are fixed to that
clip (the P3D layers fold time and space into fixed shapes). ONNX uses opset ``OPSET`` through PyTorch's
TorchScript-based exporter; a check runs each file (TorchScript in PyTorch, ONNX in ONNX Runtime on the CPU)
on a batch of random clips and reports the largest difference from the PyTorch model's logits.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
from torch import nn

from .utils import evaluating

FORMATS = ("torchscript", "onnx")
OPSET = 18
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


@contextlib.contextmanager
def _quiet():
    """Tracing warns about every shape check it freezes (the frames and size are fixed on purpose) and about
    TorchScript's deprecation; the check against PyTorch's logits is what tells whether an export is right."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def example_clips(model: nn.Module, frames: int, size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Random clips (batch, C, frames, size, size) for ``model`` (C = its input channels)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, getattr(model, "in_channels", 3), frames, size, size, generator=generator)


def export_torchscript(model: nn.Module, path, frames: int, size: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with evaluating(model), torch.no_grad(), _quiet():
        traced = torch.jit.trace(model, example_clips(model, frames, size), check_trace=False)
    traced.save(str(path))
    return path


def export_onnx(model: nn.Module, path, frames: int, size: int, opset: int = OPSET) -> Path:
    """``clips`` (batch, C, frames, size, size) -> ``logits`` (batch, K), the batch axis dynamic."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise RuntimeError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with evaluating(model), torch.no_grad(), _quiet():
        torch.onnx.export(model, (example_clips(model, frames, size),), str(path), input_names=["clips"],
                          output_names=["logits"], dynamic_axes={"clips": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return path


def run_exported(path, clips: torch.Tensor) -> torch.Tensor:
    """Logits of an exported file on ``clips``: TorchScript in PyTorch, ONNX in ONNX Runtime (CPU)."""
    path = Path(path)
    if path.suffix == ".onnx":
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeError("checking an ONNX file needs onnxruntime: pip install onnxruntime") from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"clips": clips.numpy()})[0])
    with torch.no_grad(), _quiet():
        return torch.jit.load(str(path))(clips)


def export(model: nn.Module, out, name: str, frames: int, size: int, formats=FORMATS,
           check_batch: int = 3) -> dict[str, tuple[Path, float]]:
    """Export ``model`` in each of ``formats`` to ``out/name.{pt,onnx}``; returns format -> (file, the largest
    absolute difference from the PyTorch logits on ``check_batch`` random clips, a batch size other than the
    traced one)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"formats must be among {FORMATS}, got {unknown}")
    clips = example_clips(model, frames, size, batch=check_batch, seed=1)
    with evaluating(model), torch.no_grad():
        reference = model(clips)
    done = {}
    for kind in formats:
        writer = export_torchscript if kind == "torchscript" else export_onnx
        path = writer(model, Path(out) / f"{name}{SUFFIX[kind]}", frames, size)
        done[kind] = (path, float((run_exported(path, clips) - reference).abs().max()))
    return done
