"""Top-k classes for videos of one's own, from a training checkpoint or a shipped teaching model.

    lgd predict clip.mp4 holiday/ --checkpoint runs/k400_50/best.pt
    lgd predict my_videos/ --pretrained lgd3d_tiny_beacon_both --format csv --out runs/predict

Each video is read the way ``lgd evaluate`` reads one: ``clips`` evenly
spaced clips x ``crops`` crops at the model's clip size, softmax scores
averaged over the views. A folder is searched recursively for video files. A
file that cannot be decoded gets a line with its path and the reason, and the
others go on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data.clips import load_views
from .data.kinetics import VIDEO_EXTENSIONS
from .data.transforms import test_transform
from .data.video import VideoDecodeError
from .evaluation import average_views, view_scores
from .utils import evaluating, progress


@dataclass
class Views:
    """How a video becomes the model's input: ``clips`` clips of ``num_frames`` frames ``stride`` apart,
    the short side scaled to ``short_side``, then ``crops`` crops of ``crop_size``; and how the views'
    scores become the video's (``head`` and ``average``, as in ``evaluation.evaluate``)."""

    num_frames: int
    stride: int
    crop_size: int
    short_side: int
    clips: int = 1
    crops: int = 1
    sampling: str = "clip"
    backend: str = "auto"
    head: str = "combined"
    average: str = "softmax"


@dataclass
class Predictor:
    """A model in eval mode, its class names, and how it reads a video."""

    model: nn.Module
    classes: list[str]
    views: Views
    source: str


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)     # (class name, probability), best first
    views: int = 0
    seconds: float = 0.0
    error: str | None = None


def from_checkpoint(path, device="cpu", clips: int | None = None, crops: int | None = None) -> Predictor:
    """The model of a checkpoint written by ``lgd train``, reading videos as its recipe's evaluation does."""
    from .builders import model_from_checkpoint
    from .evaluation import class_names

    model, cfg = model_from_checkpoint(path, device)
    d = cfg.data
    names = class_names(cfg) or [f"class {i}" for i in range(cfg.model.num_classes)]
    views = Views(d.num_frames, d.stride, d.test_crop_size or d.crop_size, d.test_short_side, clips or d.test_clips,
                  crops or d.test_crops, "tsn" if d.sampling == "tsn" else "clip", d.backend, d.test_head,
                  d.test_average)
    return Predictor(model, names, views, str(path))


def from_pretrained(name: str, device="cpu", clips: int | None = None, crops: int | None = None) -> Predictor:
    """A shipped teaching model: clips of its training length, consecutive frames, scaled to its size."""
    from .models import load_pretrained

    model, info = load_pretrained(name)
    views = Views(info["frames"], 1, info["size"], info["size"], clips or 1, crops or 1)
    return Predictor(model.to(device), list(info["classes"]), views, name)


def find_videos(inputs) -> tuple[list[Path], list[Prediction]]:
    """(video files, predictions that are already errors) for files and folders (searched recursively)."""
    found, errors = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                            and not any(part.startswith(".") for part in p.relative_to(item).parts))
        elif item.is_file():
            found.append(item)
        else:
            errors.append(Prediction(str(item), error="no such file or folder"))
    return found, errors


@torch.no_grad()
def predict_video(predictor: Predictor, path, top: int = 5) -> Prediction:
    """One video's top-``top`` classes; a video that cannot be read gives a Prediction with ``error``."""
    v, start = predictor.views, time.perf_counter()
    mode = "tsn" if v.sampling == "tsn" else "test"
    try:
        views = load_views(path, mode, v.num_frames, v.stride, v.clips,
                           test_transform(v.crop_size, v.short_side, v.crops), backend=v.backend)
    except (VideoDecodeError, ValueError, IndexError, OSError) as e:
        reason = e.reason if isinstance(e, VideoDecodeError) else f"{type(e).__name__}: {e}"
        return Prediction(str(path), error=reason, seconds=time.perf_counter() - start)
    model = predictor.model
    device = next(model.parameters()).device
    with evaluating(model):
        logits = view_scores(model, views.to(device), v.head).float().cpu()
    scores = average_views(logits, 1, logits.shape[0], v.average)[0]
    probs = scores if v.average == "softmax" else scores.softmax(0)     # averaged logits -> probabilities
    k = min(top, probs.numel())
    best = probs.topk(k)
    names = predictor.classes
    classes = [(names[i] if i < len(names) else f"class {i}", float(p)) for p, i in zip(best.values, best.indices)]
    return Prediction(str(path), classes, views.shape[0], time.perf_counter() - start)


def predict(predictor: Predictor, inputs, top: int = 5, show_progress: bool = True) -> list[Prediction]:
    """Predictions for every video under ``inputs``, in order; missing inputs and broken videos included."""
    paths, results = find_videos(inputs)
    bar = progress(paths, show_progress and len(paths) > 1, desc="predict", unit="video", leave=False)
    for path in bar:
        results.append(predict_video(predictor, path, top))
    return sorted(results, key=lambda r: r.path)


def as_table(results: list[Prediction]) -> str:
    """One block per video: its path and time, then one line per class (or the reason it failed)."""
    lines = []
    for r in results:
        if r.error:
            lines.append(f"{r.path}: FAILED: {r.error}")
            continue
        lines.append(f"{r.path}  ({r.views} view{'s' if r.views != 1 else ''}, {r.seconds:.2f} s)")
        lines += [f"  {p:6.1%}  {name}" for name, p in r.top]
    return "\n".join(lines)


def as_rows(results: list[Prediction]) -> list[dict]:
    """Flat rows (one per video and rank; failed videos one row with the error) for CSV."""
    rows = []
    for r in results:
        if r.error:
            rows.append({"path": r.path, "rank": "", "class": "", "probability": "", "views": 0,
                         "seconds": f"{r.seconds:.3f}", "error": r.error})
        for rank, (name, p) in enumerate(r.top, start=1):
            rows.append({"path": r.path, "rank": rank, "class": name, "probability": f"{p:.6f}",
                         "views": r.views, "seconds": f"{r.seconds:.3f}", "error": ""})
    return rows


def as_json(results: list[Prediction]) -> str:
    return json.dumps([{**asdict(r), "top": [{"class": n, "probability": p} for n, p in r.top]} for r in results],
                      indent=2)
