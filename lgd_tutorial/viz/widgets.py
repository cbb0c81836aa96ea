"""ipywidgets explorers: a frame slider, block and class pickers and an overlay-opacity slider.

Each explorer keeps its controls and an ``ipywidgets.Image`` (PNG bytes) and
redraws the image whenever a control changes; nothing needs a front end to
build or update, so they are testable headless. Display the explorer (the
last expression of a cell): JupyterLab shows the widget, and the output also
carries a PNG of the first view for viewers without widgets.

Maps are computed once per (block, class) and cached, so moving the frame or
opacity slider only re-blends an image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..utils import evaluating
from .evidence import class_evidence, clip_to_frames, normalize_maps, overlay, upsample
from .gradcam import gradcam_per_block
from .render import diffusion_rows, rgb_to_png
from .taps import lgd_blocks


class OverlayExplorer:
    """Generic explorer over ``get_map(block, class_index) -> heat (T, H, W) in [0, 1]``.

    ``blocks`` / ``classes``: option lists for the pickers (a picker is shown
    only if given); ``classes`` as [(label, index), ...] or labels.
    """

    def __init__(self, frames: np.ndarray, get_map, blocks=None, classes=None, alpha: float = 0.5,
                 cmap: str = "jet", scale: int = 4, description: str = ""):
        import ipywidgets as W

        self.frames = np.asarray(frames, dtype=np.float32)
        self.get_map, self.cmap, self.scale = get_map, cmap, scale
        self._cache: dict = {}
        num_frames = self.frames.shape[0]
        self.frame = W.IntSlider(value=0, min=0, max=num_frames - 1, step=1, description="frame",
                                 continuous_update=True)
        self.opacity = W.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="opacity")
        self.block = W.Dropdown(options=list(blocks), description="block") if blocks else None
        if classes is not None:
            options = [c if isinstance(c, tuple) else (str(c), i) for i, c in enumerate(classes)]
            self.klass = W.Dropdown(options=options, description="class")
        else:
            self.klass = None
        height, width = self.frames.shape[1:3]
        # Shown at its own size: in a VBox, JupyterLab would otherwise stretch it to the page width.
        self.image = W.Image(format="png", layout=W.Layout(width=f"{width * scale}px", height=f"{height * scale}px"))
        self.title = W.HTML(value=description)
        controls = [c for c in (self.frame, self.block, self.klass, self.opacity) if c is not None]
        for control in controls:
            control.observe(self._on_change, names="value")
        self.widget = W.VBox([self.title, W.HBox(controls[:2]), W.HBox(controls[2:]), self.image])
        self.update()

    def _on_change(self, change) -> None:
        self.update()

    def current_map(self) -> np.ndarray:
        key = (None if self.block is None else self.block.value, None if self.klass is None else self.klass.value)
        if key not in self._cache:
            self._cache[key] = np.asarray(self.get_map(*key), dtype=np.float32)
        return self._cache[key]

    def render(self) -> np.ndarray:
        """The current RGB image (H, W, 3): the chosen frame with the map blended in."""
        t = self.frame.value
        heat = self.current_map()
        return overlay(self.frames[t:t + 1], heat[t:t + 1], self.opacity.value, self.cmap)[0]

    def update(self) -> None:
        self.image.value = rgb_to_png(self.render(), self.scale)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The live widget, with the current view as a PNG beside it.

        JupyterLab shows the widget; a viewer without widgets (GitHub, an
        HTML export read offline) falls back to the PNG, so a saved notebook
        always shows the explorer's first view.
        """
        import base64

        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = f"OverlayExplorer ({self.title.value or 'map'}; interactive in JupyterLab)"
        return bundle


def _one_clip(clip: Tensor) -> Tensor:
    if clip.dim() == 4:
        clip = clip[None]
    if clip.shape[0] != 1:
        raise ValueError(f"explorers take one clip, got a batch of {clip.shape[0]}")
    return clip


def _class_options(num_classes: int, class_names=None):
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    return [(f"{i}: {name}", i) for i, name in enumerate(names)]


def diffusion_explorer(model: nn.Module, clip: Tensor, kind: str = "ratio", normalize: str = "shared",
                       alpha: float = 0.5, mean="imagenet") -> OverlayExplorer:
    """Frame slider, block picker and opacity over a diffusion map (``render.diffusion_rows``)."""
    clip = _one_clip(clip)
    rows = diffusion_rows(model, clip, kind, normalize)
    by_block = {label.split("\n")[0]: heat for label, heat in rows.items()}
    frames = clip_to_frames(clip) if mean == "imagenet" else clip_to_frames(clip, mean=None)
    return OverlayExplorer(frames, lambda block, _: by_block[block], blocks=list(by_block), alpha=alpha,
                           cmap="jet" if kind == "ratio" else "coolwarm",
                           description=f"<b>diffusion map</b>: {kind}")


def evidence_explorer(model: nn.Module, clip: Tensor, class_names=None, alpha: float = 0.5,
                      normalize: str = "clip", mean="imagenet") -> OverlayExplorer:
    """Frame slider, class picker and opacity over the kernel class evidence."""
    clip = _one_clip(clip)
    evidence, logits = class_evidence(model, clip)
    size = clip.shape[2:]

    def get_map(_, class_index):
        return normalize_maps(upsample(evidence[:1, class_index].cpu(), size).numpy()[0], normalize)

    frames = clip_to_frames(clip) if mean == "imagenet" else clip_to_frames(clip, mean=None)
    explorer = OverlayExplorer(frames, get_map, classes=_class_options(evidence.shape[1], class_names),
                               alpha=alpha, description="<b>kernel class evidence</b>")
    explorer.klass.value = int(logits.argmax(-1)[0])
    return explorer


def gradcam_explorer(model: nn.Module, clip: Tensor, class_names=None, method: str = "gradcam",
                     normalize: str = "frame", alpha: float = 0.5, mean="imagenet") -> OverlayExplorer:
    """Frame slider, block picker (each block's ``tap_local``), class picker and opacity over Grad-CAM."""
    clip = _one_clip(clip)
    with torch.no_grad(), evaluating(model):
        logits = model(clip)
    names = [name for name, _ in lgd_blocks(model)]

    def get_map(block, class_index):
        return gradcam_per_block(model, clip, [class_index], normalize=normalize, blocks=[block],
                                 method=method)[block][0]

    frames = clip_to_frames(clip) if mean == "imagenet" else clip_to_frames(clip, mean=None)
    explorer = OverlayExplorer(frames, get_map, blocks=names[::-1],
                               classes=_class_options(logits.shape[1], class_names), alpha=alpha,
                               description=f"<b>Grad-CAM</b> ({method}, {normalize} normalisation)")
    explorer.klass.value = int(logits.argmax(-1)[0])
    return explorer
