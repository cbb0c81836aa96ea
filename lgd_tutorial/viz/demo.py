"""``lgd viz``: render the visualisation figures.

``lgd viz`` (or ``lgd viz --demo``: it needs no data and no training) draws
the shipped teaching checkpoints (``models.load_pretrained``;
``--pretrained`` and ``--plain`` pick others) on one validation clip of the
diffusion study (``--clip``), and writes into ``--out``:
``viz_counterfactual.png`` (how much each local feature moves when only the
beacon moves, LGD against the plain network, the beacon's receptive-field
reach outlined), ``viz_cosine_grid.png`` (cosine of each local position to
the global vector) and ``viz_gradcam_strip.png`` (Grad-CAM of the predicted
class). ``--checkpoint PATH`` draws a model trained with ``lgd train``
instead, on a synthetic clip at its training size.

``lgd viz --video FILE`` (with ``--pretrained`` or ``--checkpoint``) draws the
model on a video of one's own (``render_video``): the diffusion maps, the
class evidence and Grad-CAM of the predicted class (or ``--class NAME``), and
a GIF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import synthetic
from ..data.clips import load_views
from ..data.transforms import test_transform, to_clips
from ..data.video import open_video
from ..utils import evaluating
from .causal import counterfactual_change, receptive_field_reach, swap_beacon
from .causal_plots import plot_counterfactual
from .evidence import clip_to_frames, evidence_overlay
from .gradcam import video_gradcam
from .render import diffusion_grid, export_animation, gradcam_strip, save_figure

VIZ_FILES = ("viz_counterfactual.png", "viz_cosine_grid.png", "viz_gradcam_strip.png")


def study_clip(info: dict, number: int):
    """(uint8 frames, beacon side, strip width, object track, object size) of validation clip ``number`` of the
    study that made ``info``."""
    recipe = info["recipe"]
    layout = {key: recipe[key] for key in ("size", "frames", "band", "object_size", "gap")}
    job = (number % len(synthetic.CLASSES), recipe["data_seed"], 1, number, layout)      # split 1: validation
    frames, side, track = synthetic.render_numbered(job)
    return frames, side, layout["band"] + synthetic.CAMERA_JITTER, track, layout["object_size"]


def checkpoint_clip(cfg, number: int):
    """A synthetic clip at a training checkpoint's clip size (default layout), as ``study_clip`` returns it."""
    size, count = cfg.data.crop_size, cfg.data.num_frames
    frames, info = synthetic.render(number % len(synthetic.CLASSES), np.random.default_rng([number, 7]), size, count,
                                    with_info=True)
    return frames, info["side"], info["band"] + synthetic.CAMERA_JITTER, info["track"], info["object_size"]


def render_models(out, models: dict, frames: np.ndarray, side: str, band: int, track, object_size: int,
                  title: str) -> list[Path]:
    """The three figures for ``models`` (name -> model; the first is drawn in the grid and strip) on one clip."""
    out = Path(out)
    first = next(iter(models.values()))
    frames_cf, region = swap_beacon(frames, side, band)
    clip, clip_cf = to_clips(torch.from_numpy(frames)[None]), to_clips(torch.from_numpy(frames_cf)[None])
    reach = receptive_field_reach(first, region, frames.shape[0])
    changes = {name: counterfactual_change(model, clip, clip_cf) for name, model in models.items()}
    y, x = track[len(track) // 2]
    fig = plot_counterfactual(frames, frames_cf, changes, reach, changes[next(iter(changes))].names,
                              object_box=(y, x, object_size))
    paths = [save_figure(fig, out / VIZ_FILES[0])]
    if first.diffusion != "none":
        grid = diffusion_grid(first, clip, kind="cosine", title=f"{title}: cosine(local position, global vector)")
        paths.append(save_figure(grid, out / VIZ_FILES[1]))
    with torch.no_grad():
        predicted = int(first(clip).argmax(-1)[0])
    cam = video_gradcam(first, clip, predicted, normalize="clip")
    strip = gradcam_strip(clip_to_frames(clip), cam[0], label=f"class {predicted}",
                          title=f"{title}: Grad-CAM, last block, clip-level weights and normalisation")
    paths.append(save_figure(strip, out / VIZ_FILES[2]))
    return paths


VIDEO_FILES = ("video_diffusion_ratio.png", "video_cosine.png", "video_class_evidence.png", "video_gradcam.png",
               "video_gradcam.gif")


def render_video(out, predictor, path, class_name: str | None = None) -> list[Path]:
    """The figures for one video of the user's: diffusion maps, class evidence, Grad-CAM and a GIF.

    ``predictor`` is a ``prediction.Predictor`` (a checkpoint or a teaching
    model with its clip size and class names); the video is read as one
    centre clip at that size. ``class_name`` picks the class drawn (default:
    the predicted one). Models without a global path get no diffusion maps.
    """
    v, model = predictor.views, predictor.model
    clip = load_views(path, "test", v.num_frames, v.stride, 1, test_transform(v.crop_size, v.short_side, 1),
                      backend=v.backend)[:1]
    with torch.no_grad(), evaluating(model):
        probs = model(clip).float().softmax(1)[0]
    names = predictor.classes
    if class_name is None:
        index = int(probs.argmax())
    elif class_name in names:
        index = names.index(class_name)
    else:
        raise ValueError(f"unknown class {class_name!r}; the model's classes: {', '.join(names[:20])}"
                         + (" ..." if len(names) > 20 else ""))
    label = f"{names[index] if index < len(names) else index} (p={float(probs[index]):.2f})"
    out, name = Path(out), Path(path).name
    notes = []
    with open_video(path, backend=v.backend) as video:
        available = len(video)
    if available < v.num_frames * v.stride:
        notes.append(f"the video has {available} frames: the clip's {v.num_frames} repeat them")
    if float(probs[index]) < 0.01:
        notes.append(f"p={float(probs[index]):.2f}: the model gives this class almost nothing, so its maps say little")
    note = ("\n(" + "; ".join(notes) + ")") if notes else ""
    paths = []
    if model.diffusion != "none":
        what = {"ratio": "size of U(W_xg g) beside the local activation (not evidence of use: notebook 7)",
                "cosine": "cosine(local position, global vector)"}
        for kind, file in (("ratio", VIDEO_FILES[0]), ("cosine", VIDEO_FILES[1])):
            grid = diffusion_grid(model, clip, kind=kind, title=f"{name}: {what[kind]}{note}")
            paths.append(save_figure(grid, out / file))
    frames, heat, _ = evidence_overlay(model, clip, index)
    fig = gradcam_strip(clip_to_frames(clip), heat, label=f"evidence: {label}", title=f"{name}: class evidence{note}",
                        colorbar="class evidence\n(scaled to [0, 1])")
    paths.append(save_figure(fig, out / VIDEO_FILES[2]))
    cam = video_gradcam(model, clip, index, normalize="clip")[0]
    fig = gradcam_strip(clip_to_frames(clip), cam, label=f"Grad-CAM: {label}",
                        title=f"{name}: Grad-CAM, last block{note}")
    paths.append(save_figure(fig, out / VIDEO_FILES[3]))
    paths.append(export_animation(clip_to_frames(clip), out / VIDEO_FILES[4], heat=cam, title=label))
    return paths
