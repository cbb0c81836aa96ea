"""Parameters per part and FLOPs of a model, for a given clip size (``lgd summary``).

FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``), which
counts a multiply-add as 2 FLOPs; papers often quote multiply-adds (= FLOPs / 2).
"""

from __future__ import annotations


import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..utils import evaluating
from .classifier import KernelizedClassifier
from .registry import build_model

PARTS = ("backbone convs", "temporal convs", "batch norm", "LGD projections", "classifier")


def _part_of(module: nn.Module, in_projection: bool) -> str | None:
    if in_projection and isinstance(module, nn.Linear):
        return "LGD projections"
    if isinstance(module, nn.Conv3d):
        temporal = module.kernel_size[0] > 1 and module.kernel_size[1:] == (1, 1)
        return "temporal convs" if temporal else "backbone convs"
    if isinstance(module, nn.BatchNorm3d):
        return "batch norm"
    return None


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per part (``PARTS``), plus ``total``; a model with SE, GC or non-local blocks
    (``models.context``) also gets ``context blocks``."""
    counts = dict.fromkeys(PARTS, 0)
    projections = {id(m) for name, m in model.named_modules()
                   if name.rsplit(".", 1)[-1] in ("local_to_global", "global_to_global", "global_to_local")
                   for m in m.modules()}
    contexts = [m for name, m in model.named_modules() if name.endswith(".context")]
    if contexts:                                  # SE, GC or non-local blocks (models.context): a part of their own
        counts["context blocks"] = sum(p.numel() for m in contexts for p in m.parameters())
    inside = {id(sub) for m in contexts for sub in m.modules()}
    for module in model.modules():
        if isinstance(module, KernelizedClassifier):
            counts["classifier"] += sum(p.numel() for p in module.parameters())
            continue
        if id(module) in inside:
            continue
        part = _part_of(module, id(module) in projections)
        if part is not None:
            counts[part] += sum(p.numel() for p in module.parameters(recurse=False))
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def count_flops(model: nn.Module, frames: int, size: int) -> int:
    """FLOPs of one forward pass on one (3, frames, size, size) clip."""
    clip = torch.zeros(1, 3, frames, size, size)
    with evaluating(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(clip)
    return counter.get_total_flops()


def summarize(model_or_name: nn.Module | str, frames: int = 16, size: int = 224,
              num_classes: int = 400, **overrides) -> dict:
    """A model's parameters per part and FLOPs for a clip of ``frames`` x ``size`` x ``size``."""
    if isinstance(model_or_name, str):
        model = build_model(model_or_name, num_classes, **overrides)
    else:
        model = model_or_name
    flops = count_flops(model, frames, size)
    return {
        "model": getattr(model, "arch", type(model).__name__),
        "diffusion": getattr(model, "diffusion", None),
        "context": getattr(model, "context", None),
        "clip": [3, frames, size, size],
        "num_classes": getattr(model, "num_classes", num_classes),
        "params": parameter_breakdown(model),
        "gflops": flops / 1e9,
    }


def format_summary(summary: dict) -> str:
    params = summary["params"]
    context = f", context={summary['context']}" if summary.get("context") else ""
    lines = [f"{summary['model']}  (diffusion={summary['diffusion']}{context}, clip {'x'.join(map(str, summary['clip'][1:]))}, "
             f"{summary['num_classes']} classes)"]
    for part in [p for p in params if p != "total"]:
        share = 100 * params[part] / max(params["total"], 1)
        lines.append(f"  {part:<16} {params[part] / 1e6:9.3f} M  ({share:4.1f}%)")
    lines.append(f"  {'total':<16} {params['total'] / 1e6:9.3f} M")
    lines.append(f"  FLOPs            {summary['gflops']:9.2f} G  ({summary['gflops'] / 2:.2f} G multiply-adds)")
    return "\n".join(lines)
