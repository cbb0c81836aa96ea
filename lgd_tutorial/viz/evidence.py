"""Kernel class evidence over space-time, upsampled to the clip and overlaid on its frames.

The kernelized classifier scores every final local position against every
class template; ``KernelizedClassifier.evidence`` gives that map
(N, K, T', H', W'), whose mean over positions is the local score.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .taps import collect_taps


def class_evidence(model: nn.Module, clip: Tensor, classes=None) -> tuple[Tensor, Tensor]:
    """(evidence, logits) for ``clip`` (N, 3, T, H, W).

    ``classes``: None for all classes (N, K, T', H', W'); "predicted" for each
    clip's top class (N, T', H', W'); an int or a sequence of N ints for one
    class per clip (N, T', H', W').
    """
    record = collect_taps(model, clip)
    evidence, logits = record.evidence, record.logits
    if classes is None:
        return evidence, logits
    if isinstance(classes, str):
        if classes != "predicted":
            raise ValueError(f"classes must be None, 'predicted', an int or a list of ints, got {classes!r}")
        index = logits.argmax(-1)
    else:
        index = torch.as_tensor(classes, device=evidence.device).long().reshape(-1)
        if index.numel() == 1:
            index = index.expand(evidence.shape[0])
    if index.numel() != evidence.shape[0]:
        raise ValueError(f"need one class per clip ({evidence.shape[0]}), got {index.numel()}")
    num_classes = evidence.shape[1]
    if (index < 0).any() or (index >= num_classes).any():
        raise ValueError(f"class index out of range for {num_classes} classes: {index.tolist()}")
    return evidence[torch.arange(evidence.shape[0]), index], logits


def upsample(maps: Tensor | np.ndarray, size) -> Tensor:
    """Trilinear upsampling of maps (N, T', H', W') (or (T', H', W')) to size (T, H, W)."""
    maps = torch.as_tensor(maps, dtype=torch.float32)
    squeeze = maps.dim() == 3
    if squeeze:
        maps = maps[None]
    if maps.dim() != 4:
        raise ValueError(f"expected maps of shape (N, T, H, W) or (T, H, W), got {tuple(maps.shape)}")
    out = F.interpolate(maps[:, None], size=tuple(size), mode="trilinear", align_corners=False)[:, 0]
    return out[0] if squeeze else out


def normalize_maps(maps, mode: str = "clip", scaling: str = "minmax", eps: float = 1e-7) -> np.ndarray:
    """Scale maps (..., T, H, W) to [0, 1] over the whole clip (``mode="clip"``) or each frame ("frame").

    ``scaling="minmax"``: (m - min) / (max - min), a constant clip or frame
    becomes zeros. ``scaling="max"``: m / max for non-negative maps (CAMs after
    ReLU), so zero stays zero and a constant positive frame becomes ones; an
    all-zero clip or frame stays zero.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if mode == "clip":
        axes = (-3, -2, -1)
    elif mode == "frame":
        axes = (-2, -1)
    else:
        raise ValueError(f"mode must be 'clip' or 'frame', got {mode!r}")
    if scaling == "minmax":
        low = maps.min(axis=axes, keepdims=True)
    elif scaling == "max":
        low = np.zeros_like(maps.min(axis=axes, keepdims=True))
    else:
        raise ValueError(f"scaling must be 'minmax' or 'max', got {scaling!r}")
    span = maps.max(axis=axes, keepdims=True) - low
    return np.where(span > eps, (maps - low) / np.maximum(span, eps), 0.0).astype(np.float32)


def clip_to_frames(clip: Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """One clip (3, T, H, W) (or a batch of one) -> frames (T, H, W, 3) in [0, 1].

    Undoes the normalisation with ``mean`` / ``std``; pass ``mean=None`` for a
    clip already in [0, 1] or min-max scaling of anything else.
    """
    clip = clip.detach().float().cpu()
    if clip.dim() == 5:
        if clip.shape[0] != 1:
            raise ValueError(f"pass one clip, got a batch of {clip.shape[0]}")
        clip = clip[0]
    if clip.dim() != 4 or clip.shape[0] != 3:
        raise ValueError(f"expected a clip (3, T, H, W), got {tuple(clip.shape)}")
    if mean is not None:
        clip = clip * torch.tensor(std)[:, None, None, None] + torch.tensor(mean)[:, None, None, None]
    elif clip.min() < 0 or clip.max() > 1:
        clip = (clip - clip.min()) / (clip.max() - clip.min()).clamp_min(1e-7)
    return clip.clamp(0, 1).permute(1, 2, 3, 0).numpy()


def colorize(heat: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Heat values in [0, 1] (..., H, W) -> RGB (..., H, W, 3) in [0, 1] with a matplotlib colormap."""
    from matplotlib import colormaps

    return colormaps[cmap](np.clip(heat, 0, 1))[..., :3].astype(np.float32)


def overlay(frames: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend heat maps (T, H, W) in [0, 1] over frames (T, H, W, 3) in [0, 1]: (1-alpha) frame + alpha colour."""
    frames, heat = np.asarray(frames, dtype=np.float32), np.asarray(heat, dtype=np.float32)
    if frames.shape[:-1] != heat.shape:
        raise ValueError(f"frames {frames.shape} and heat {heat.shape} do not match")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return np.clip((1 - alpha) * frames + alpha * colorize(heat, cmap), 0, 1)


def evidence_overlay(model: nn.Module, clip: Tensor, class_index="predicted", alpha: float = 0.5,
                     normalize: str = "clip", cmap: str = "jet", mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Evidence of one class for one clip (1, 3, T, H, W), upsampled and overlaid.

    Returns (overlaid frames (T, H, W, 3), heat (T, H, W) in [0, 1], class index).
    """
    if clip.dim() == 4:
        clip = clip[None]
    evidence, logits = class_evidence(model, clip, class_index)
    chosen = int(logits.argmax(-1)[0]) if class_index == "predicted" else int(class_index)
    heat = normalize_maps(upsample(evidence.cpu(), clip.shape[2:]).numpy()[0], normalize)
    frames = clip_to_frames(clip, mean, std)
    return overlay(frames, heat, alpha, cmap), heat, chosen
