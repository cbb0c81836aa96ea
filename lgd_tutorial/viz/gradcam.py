"""Video Grad-CAM for LGD networks with the ``grad-cam`` package (pytorch_grad_cam 1.5.7).

Target layers must return one 5D tensor: use the blocks' ``nn.Identity`` taps
(``tap_local``, ``tap_global_to_local``; ``tap_layers(model, "local")``), never
the block itself (it returns ``(local, global)``).

What the package does on 5D (read from its source): ``GradCAM`` averages the
gradients over (T, H, W) to one weight per channel and clip, sums the weighted
activations over channels, applies ReLU, resizes with ``scipy.ndimage.zoom`` to
the input's (T, H, W) and min-max scales each clip: it returns (N, T, H, W),
always min-max normalised over the whole clip.

Here:
- ``ClipGradCAM``: the package's clip-level weights, with the normalisation
  chosen explicitly: ``normalize="clip"`` (divide by the clip's maximum),
  ``"frame"`` (divide each frame by its own maximum: every frame with any
  positive evidence reaches 1) or ``None`` (raw ReLU'd CAM, no scaling).
  Dividing by the maximum (not min-max) keeps zero meaning "no evidence" and
  keeps a spatially uniform frame (e.g. a 1x1 deep map) at its value.
- ``FrameGradCAM``: one weight per channel *and frame* (gradients averaged over
  (H, W) only), so each frame is explained by its own channel weights.
- ``make_video_cam`` / ``video_gradcam``: build by name; ScoreCAM and
  AblationCAM (which assume 4D activations in grad-cam 1.5.7) are refused
  with a ValueError.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from .evidence import normalize_maps
from ..utils import evaluating
from .taps import lgd_blocks, tap_layers

NORMALIZATIONS = ("clip", "frame", None)
REFUSED = {"scorecam": ScoreCAM, "ablationcam": AblationCAM}


def _check_normalize(normalize) -> None:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be 'clip', 'frame' or None, got {normalize!r}")


def _scale(cams: np.ndarray, normalize) -> np.ndarray:
    return cams.astype(np.float32) if normalize is None else normalize_maps(cams, normalize, scaling="max")


class ClipGradCAM(GradCAM):
    """Grad-CAM with the package's clip-level weights on 5D targets; normalisation chosen explicitly.

    Args:
        model, target_layers: as for ``pytorch_grad_cam.GradCAM`` (5D-output layers).
        normalize: "clip", "frame" or None (required, no default).
        output_size: "input" (resize to the clip's (T, H, W), trilinear) or
            "feature" (keep the target layer's resolution; one layer, or layers of one size).

    Calling it returns a numpy array (N, T, H, W). With several target layers
    each layer's CAM is normalised, the CAMs are averaged, and the mean is
    normalised again (as the package does, but with the chosen mode).
    """

    def __init__(self, model: nn.Module, target_layers, *, normalize, output_size: str = "input",
                 reshape_transform=None):
        _check_normalize(normalize)
        if output_size not in ("input", "feature"):
            raise ValueError(f"output_size must be 'input' or 'feature', got {output_size!r}")
        super().__init__(model, target_layers, reshape_transform)
        self.normalize = normalize
        self.output_size = output_size

    def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
        activations = [a.cpu().data.numpy() for a in self.activations_and_grads.activations]
        grads = [g.cpu().data.numpy() for g in self.activations_and_grads.gradients]
        if len(activations) != len(self.target_layers) or len(grads) != len(self.target_layers):
            raise RuntimeError("a target layer gave no activation or gradient: each must return one "
                               "tensor that the score depends on (use the blocks' tap_* modules)")
        cams = []
        for layer, acts, grad in zip(self.target_layers, activations, grads):
            if acts.ndim != 5:
                raise ValueError(f"video Grad-CAM needs 5D activations (N, C, T, H, W); got {acts.shape}")
            cam = np.maximum(self.get_cam_image(input_tensor, layer, targets, acts, grad, eigen_smooth), 0)
            if self.output_size == "input":
                cam = F.interpolate(torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[:, None],
                                    size=tuple(input_tensor.shape[2:]), mode="trilinear",
                                    align_corners=False)[:, 0].numpy()
            cams.append(_scale(cam, self.normalize)[:, None])
        return cams

    def aggregate_multi_layers(self, cam_per_target_layer):
        shapes = {c.shape for c in cam_per_target_layer}
        if len(shapes) > 1:
            raise ValueError(f"target layers give CAMs of different sizes {sorted(shapes)}; "
                             "use output_size='input' to combine them")
        cams = np.maximum(np.concatenate(cam_per_target_layer, axis=1), 0).mean(axis=1)
        return _scale(cams, self.normalize)

    def __del__(self):
        # The package's __del__ assumes __init__ completed; a refused argument stops it earlier.
        if hasattr(self, "activations_and_grads"):
            super().__del__()

    def forward_augmentation_smoothing(self, *args, **kwargs):
        raise ValueError("aug_smooth uses 2D test-time augmentation and does not apply to video clips")


class FrameGradCAM(ClipGradCAM):
    """Grad-CAM with one weight per channel and frame: gradients averaged over (H, W) only."""

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        if grads.ndim != 5:
            raise ValueError(f"per-frame weights need 5D gradients (N, C, T, H, W); got {grads.shape}")
        return grads.mean(axis=(3, 4))                                   # (N, C, T)

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth=False):
        if eigen_smooth:
            raise ValueError("eigen_smooth is not supported with per-frame weights")
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        return (weights[:, :, :, None, None] * activations).sum(axis=1)


METHODS = {"gradcam": ClipGradCAM, "gradcam_frame": FrameGradCAM}


def check_cam_method(method) -> type:
    """The CAM class for ``method`` (a name in METHODS, or a class); ValueError for ScoreCAM/AblationCAM."""
    if isinstance(method, str):
        key = method.lower().replace("-", "").replace("_", "")
        for name, cls in REFUSED.items():
            if key == name:
                method = cls
                break
        else:
            if method not in METHODS:
                raise ValueError(f"unknown CAM method {method!r}; choose from {', '.join(METHODS)}")
            return METHODS[method]
    if isinstance(method, type):
        for cls in REFUSED.values():
            if issubclass(method, cls):
                raise ValueError(
                    f"{method.__name__} does not work on 5D (video) activations in grad-cam 1.5.7: it "
                    "upsamples and masks the input as 2D images. Use 'gradcam' (clip-level weights) "
                    "or 'gradcam_frame' (per-frame weights) instead.")
        return method
    raise ValueError(f"method must be a name or a CAM class, got {method!r}")


def make_video_cam(method, model: nn.Module, target_layers, *, normalize, output_size: str = "input"):
    """Build a video CAM: ``method`` "gradcam" | "gradcam_frame" (or one of their classes)."""
    cls = check_cam_method(method)
    if not issubclass(cls, ClipGradCAM):
        raise ValueError(f"{cls.__name__} is not a video CAM here; use {', '.join(METHODS)}")
    return cls(model, target_layers, normalize=normalize, output_size=output_size)


def _targets(classes, batch: int):
    if classes is None:
        return None
    if isinstance(classes, int):
        classes = [classes] * batch
    classes = [int(c) for c in classes]
    if len(classes) != batch:
        raise ValueError(f"need one class per clip ({batch}), got {len(classes)}")
    return [ClassifierOutputTarget(c) for c in classes]


def video_gradcam(model: nn.Module, clip: Tensor, classes=None, *, normalize, target_layers=None,
                  method: str = "gradcam", output_size: str = "input") -> np.ndarray:
    """Grad-CAM maps (N, T, H, W) for ``clip`` (N, 3, T, H, W).

    ``classes``: None (each clip's predicted class), an int, or one int per clip.
    ``target_layers`` default to the last block's ``tap_local``. The model runs
    in eval mode (the package sets it); its previous mode is restored and the
    hooks are removed afterwards.
    """
    if clip.dim() != 5:
        raise ValueError(f"expected a clip batch (N, 3, T, H, W), got {tuple(clip.shape)}")
    layers = tap_layers(model, "local", [-1]) if target_layers is None else list(target_layers)
    with evaluating(model), make_video_cam(method, model, layers, normalize=normalize,
                                           output_size=output_size) as cam:
        return cam(clip, _targets(classes, clip.shape[0]))


def gradcam_per_block(model: nn.Module, clip: Tensor, classes=None, *, normalize, blocks=None,
                      method: str = "gradcam", tap: str = "local") -> dict[str, np.ndarray]:
    """{block name: (N, T, H, W)}: one Grad-CAM per block's tap (all blocks by default), same class each."""
    names = [name for name, _ in lgd_blocks(model)] if blocks is None else list(blocks)
    if classes is None:
        with torch.no_grad(), evaluating(model):
            classes = model(clip).argmax(-1).tolist()
    out = {}
    for name in names:
        out[name] = video_gradcam(model, clip, classes, normalize=normalize, method=method,
                                  target_layers=tap_layers(model, tap, [name]))
    return out
