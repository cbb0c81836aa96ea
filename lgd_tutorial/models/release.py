"""Checkpoints of the authors' release (its LGD-P3D ResNets) loaded into this project's models.

The release (``notebooks/PAPER.md``) names the same network's parameters in
its own layout: the stem as ``conv1`` / ``bn1``; in each bottleneck
``conv1`` / ``bn1``, the spatial and temporal halves of the P3D unit as
``conv2`` / ``conv2_t`` with ``bn2``, then ``conv3`` / ``bn3``; the shortcut
as ``downsample.0`` (conv) and ``downsample.1`` (BN); the three projections as
``fc1``/``fc2`` (local to global, W_gx), ``fc3``/``fc4`` (the carried global
vector, W_gg) and ``fc5``/``fc6`` (global to local, W_xg); the heads as ``fc``
(local) and ``fc_g`` (global). Its training script saves
``{"model": state_dict, ...}``, with a ``module.`` prefix when the model was
wrapped for data parallelism.

    model = load_release_checkpoint("ckpt_epoch_128.pth", "lgd3d_r50")
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .registry import build_model

_STEM = {"conv1": "stem.conv", "bn1": "stem.bn"}
_UNIT = {"conv1": "residual.conv1", "bn1": "residual.bn1", "conv2": "residual.conv2.spatial",
         "conv2_t": "residual.conv2.temporal", "bn2": "residual.conv2.bn", "conv3": "residual.conv3",
         "bn3": "residual.bn3", "downsample.0": "shortcut.conv", "downsample.1": "shortcut.bn",
         "fc1": "local_to_global.0", "fc2": "local_to_global.1", "fc3": "global_to_global.0",
         "fc4": "global_to_global.1", "fc5": "global_to_local.0", "fc6": "global_to_local.1"}
_HEADS = {"fc": "classifier.local_head", "fc_g": "classifier.global_head"}
_BLOCK_KEY = re.compile(r"^(layer[1-4]\.\d+)\.(.+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_TOP_KEY = re.compile(r"^(\w+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def is_release_state_dict(state: dict) -> bool:
    """True for a state dict (or a release checkpoint) in the release's key layout."""
    keys = _weights(state).keys()
    return "fc_g.weight" in keys or any(k.endswith(".conv2_t.weight") for k in keys)


def _weights(state: dict) -> dict:
    inner = state.get("model", state) if isinstance(state, dict) else state
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in inner.items()}


def convert_release_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """The release's keys renamed to this project's; ValueError listing every key that has no counterpart.

    Accepts a bare state dict or the release's checkpoint (``{"model": ...}``), with or without ``module.``.
    Basic-block release networks (``conv1_t``) are refused: their units differ from the release's own
    P3D code in places (``notebooks/PAPER.md``) and it publishes no record for them.
    """
    converted, unknown = {}, []
    for key, value in _weights(state).items():
        block = _BLOCK_KEY.match(key)
        top = _TOP_KEY.match(key)
        if block and block.group(2) in _UNIT:
            converted[f"{block.group(1)}.{_UNIT[block.group(2)]}.{block.group(3)}"] = value
        elif top and top.group(1) in _STEM:
            converted[f"{_STEM[top.group(1)]}.{top.group(2)}"] = value
        elif top and top.group(1) in _HEADS:
            converted[f"{_HEADS[top.group(1)]}.{top.group(2)}"] = value
        else:
            unknown.append(key)
    if any(k.endswith("conv1_t.weight") for k in unknown):
        raise ValueError("a basic-block (ResNet-18/34) release network: not supported, only the bottleneck LGD-P3D "
                         "ResNets the release trained (R50, R101)")
    if unknown:
        raise ValueError(f"release keys with no counterpart here: {', '.join(sorted(unknown)[:20])}"
                         + (f" (+{len(unknown) - 20} more)" if len(unknown) > 20 else ""))
    return converted


def load_release_state_dict(model: nn.Module, state: dict) -> nn.Module:
    """Load a release state dict into ``model``; ValueError naming every missing, extra or misshapen tensor."""
    converted = convert_release_state_dict(state)
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    extra = sorted(set(converted) - set(ours))
    shapes = [f"{k}: release {tuple(v.shape)}, here {tuple(ours[k].shape)}"
              for k, v in converted.items() if k in ours and v.shape != ours[k].shape]
    if missing or extra or shapes:
        problems = [f"missing: {', '.join(missing[:10])}" if missing else "",
                    f"not in this model: {', '.join(extra[:10])}" if extra else "",
                    f"shape mismatch: {'; '.join(shapes[:10])}" if shapes else ""]
        raise ValueError(f"cannot load the release weights into {getattr(model, 'arch', type(model).__name__)}: "
                         + " | ".join(p for p in problems if p))
    model.load_state_dict(converted)
    return model


def load_release_checkpoint(path, arch: str = "lgd3d_r50", **overrides) -> nn.Module:
    """A registered model built to the checkpoint's number of classes, with the release's weights, in eval mode."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise ValueError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    weights = _weights(state)
    if "fc.weight" not in weights:
        raise ValueError(f"{path}: no 'fc.weight': not a checkpoint of the release's LGD-P3D networks")
    model = build_model(arch, int(weights["fc.weight"].shape[0]), **overrides)
    try:
        return load_release_state_dict(model, state).eval()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
