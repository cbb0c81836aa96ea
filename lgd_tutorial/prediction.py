"""Top-k classes for videos of one's own, from a training checkpoint or a shipped teaching model.

    lgd predict clip.mp4 holiday/ --checkpoint runs/k400_50/best.pt
    lgd predict my_videos/ --pretrained lgd3d_tiny_beacon_both --format csv --out runs/predict

Each video is read the way ``lgd evaluate`` reads one: ``clips`` evenly
spaced clips x ``crops`` crops at the model's clip size, softmax scores
averaged over the views. A folder is searched recursively for video files. A
file that cannot be decoded gets a line with its path and the reason, and the
others go on.

Two streams (``--flow-checkpoint`` or ``--flow-pretrained``): the flow of each
video is computed on the fly (DIS by default, stored and read back in 8 bits
exactly as ``lgd prepare flow`` stores it), only for the frames the views read
and at the views' short side (``data.flow.PairwiseFlow``: memory is set by the
views, not by the video's length or resolution), the flow model scores it, and
the video scores are fused as rgb + w x flow, as ``lgd evaluate`` fuses them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .builders import model_from_checkpoint
from .data import flow as optical_flow
from .data.clips import load_views
from .data.flow import METHODS
from .data.kinetics import VIDEO_EXTENSIONS
from .data.transforms import flow_test_transform, test_transform
from .data.video import Video, VideoDecodeError, open_video
from .evaluation import average_views, class_names, view_scores
from .models import load_pretrained
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
    modality: str = "rgb"               # flow: the video's optical flow, computed with flow_method
    flow_bound: float = 20.0
    flow_method: str = "dis"


@dataclass
class Predictor:
    """A model in eval mode, its class names, and how it reads a video; ``flow`` a second (flow) predictor
    whose video scores are added with weight ``flow_weight``."""

    model: nn.Module
    classes: list[str]
    views: Views
    source: str
    flow: "Predictor | None" = None
    flow_weight: float = 1.5


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)     # (class name, probability), best first
    views: int = 0
    seconds: float = 0.0
    error: str | None = None
    start: float | None = None          # a window of the video (predict_windows): its first and end second
    end: float | None = None


def from_checkpoint(path, device="cpu", clips: int | None = None, crops: int | None = None) -> Predictor:
    """The model of a checkpoint written by ``lgd train``, reading videos as its recipe's evaluation does."""
    model, cfg = model_from_checkpoint(path, device)
    d = cfg.data
    names = class_names(cfg) or [f"class {i}" for i in range(cfg.model.num_classes)]
    views = Views(d.num_frames, d.stride, d.test_crop_size or d.crop_size, d.test_short_side, clips or d.test_clips,
                  crops or d.test_crops, "tsn" if d.sampling == "tsn" else "clip", d.backend, d.test_head,
                  d.test_average, cfg.model.modality, d.flow_bound)
    return Predictor(model, names, views, str(path))


def two_stream(rgb: Predictor, flow: Predictor, flow_weight: float = 1.5, flow_method: str = "dis") -> Predictor:
    """``rgb`` with ``flow`` attached: videos are scored by both and fused as rgb + flow_weight x flow."""
    if rgb.views.modality != "rgb" or flow.views.modality != "flow":
        raise ValueError(f"two streams need an RGB and a flow model, got {rgb.views.modality} and "
                         f"{flow.views.modality}")
    if len(rgb.classes) != len(flow.classes):
        raise ValueError(f"the two models know {len(rgb.classes)} and {len(flow.classes)} classes")
    if flow_weight < 0 or flow_method not in METHODS:
        raise ValueError(f"flow_weight must be >= 0 and flow_method one of {METHODS}")
    flow.views.flow_method = flow_method
    rgb.flow, rgb.flow_weight = flow, flow_weight
    return rgb


def from_pretrained(name: str, device="cpu", clips: int | None = None, crops: int | None = None) -> Predictor:
    """A shipped teaching model: clips of its training length and frame stride (consecutive frames unless its
    manifest says otherwise), scaled to its size; a flow model reads the video's flow as it was trained on."""
    model, info = load_pretrained(name)
    flow = {"modality": "flow", "flow_bound": info["flow_bound"], "flow_method": info["flow_method"]} \
        if info.get("modality") == "flow" else {}
    views = Views(info["frames"], info.get("stride", 1), info["size"], info["size"], clips or 1, crops or 1, **flow)
    return Predictor(model.to(device), list(info["classes"]), views, name)


# what a folder is searched for: the Kinetics layouts' extensions and the other containers FFmpeg decodes
FOLDER_EXTENSIONS = tuple(dict.fromkeys((*VIDEO_EXTENSIONS, ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".3gp",
                                         ".wmv", ".ogv", ".vob", ".asf")))
NOT_FOUND = "no such file or folder"
NO_VIDEOS = "no videos found in this folder"


def find_videos(inputs, skipped: list | None = None) -> tuple[list[Path], list[Prediction]]:
    """(video files, predictions that are already errors) for files and folders (searched recursively for
    ``FOLDER_EXTENSIONS``). A missing input, and a folder with no video in it, are errors; the other files
    found in folders are appended to ``skipped`` (when given), so nothing is left out silently."""
    found, errors = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            videos = [p for p in files if p.suffix.lower() in FOLDER_EXTENSIONS]
            if skipped is not None:
                skipped += [p for p in files if p.suffix.lower() not in FOLDER_EXTENSIONS]
            if not videos:
                errors.append(Prediction(str(item), error=f"{NO_VIDEOS} (searched recursively for "
                                                          f"{', '.join(FOLDER_EXTENSIONS)})"))
            found += videos
        elif item.is_file():
            found.append(item)
        else:
            errors.append(Prediction(str(item), error=NOT_FOUND))
    return found, errors


class FrameRange(Video):
    """Frames [start, end) of an open video, read as a video of their own (a window of a long video)."""

    def __init__(self, video: Video, start: int, end: int):
        super().__init__(video.path, video.short_side, video.info)
        if not 0 <= start < end <= len(video):
            raise ValueError(f"{video.path}: frames {start}..{end} outside 0..{len(video)}")
        self.video, self.start, self.end = video, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def _read(self, indices: list[int]) -> np.ndarray:
        return self.video.get_frames([self.start + i for i in indices])


def read_views(views: Views, path, span: tuple[int, int] | None = None) -> torch.Tensor:
    """The video's test views for a model that reads ``views.modality`` (flow: computed now, see module doc);
    with ``span`` = (first frame, end frame), the views of that window only (only its frames are decoded)."""
    mode = "tsn" if views.sampling == "tsn" else "test"
    if views.modality != "flow":
        transform = test_transform(views.crop_size, views.short_side, views.crops)
        if span is None:
            return load_views(path, mode, views.num_frames, views.stride, views.clips, transform,
                              backend=views.backend)
        with open_video(path, backend=views.backend) as video:
            return load_views(FrameRange(video, *span), mode, views.num_frames, views.stride, views.clips, transform)

    # Only the frames the views read, decoded at the views' short side; their flow is computed now.
    with open_video(path, backend=views.backend, short_side=views.short_side) as video:
        source = FrameRange(video, *span) if span is not None else video
        if len(source) < 2:
            raise ValueError(f"{path}: {len(source)} frame(s); optical flow needs at least 2")
        return load_views(optical_flow.PairwiseFlow(source, views.flow_method, views.flow_bound), mode,
                          views.num_frames, views.stride, views.clips,
                          flow_test_transform(views.crop_size, views.short_side, views.crops, views.flow_bound),
                          modality="flow")


def scores_of_views(predictor: Predictor, views_of: list[torch.Tensor]) -> list[torch.Tensor]:
    """Class probabilities of several videos from their views, in one forward pass per shape of view (videos
    whose views have one shape share a batch); each video's view scores averaged as ``views.average`` says."""
    v, model = predictor.views, predictor.model
    device = next(model.parameters()).device
    groups: dict[tuple, list[int]] = {}
    for i, views in enumerate(views_of):
        groups.setdefault(tuple(views.shape[1:]), []).append(i)
    probs: list[torch.Tensor | None] = [None] * len(views_of)
    with evaluating(model):
        for members in groups.values():
            logits = view_scores(model, torch.cat([views_of[i] for i in members]).to(device), v.head).float().cpu()
            for i, part in zip(members, logits.split([len(views_of[i]) for i in members])):
                scores = average_views(part, 1, len(part), v.average)[0]
                probs[i] = scores if v.average == "softmax" else scores.softmax(0)   # averaged logits -> probs
    return probs


def _streams(predictor: Predictor) -> list[Predictor]:
    return [predictor] + ([predictor.flow] if predictor.flow is not None else [])


def fused_scores(predictor: Predictor, views_of: list[list[torch.Tensor]]) -> list[tuple[torch.Tensor, int]]:
    """(class probabilities, views scored) of several videos, from each video's views per stream (``_streams``
    order): one forward pass per stream and shape of view; with a flow stream, rgb + w x flow renormalised."""
    streams = _streams(predictor)
    scored = [scores_of_views(stream, [views[k] for views in views_of]) for k, stream in enumerate(streams)]
    out = []
    for i, views in enumerate(views_of):
        probs = scored[0][i]
        if predictor.flow is not None:
            probs = (probs + predictor.flow_weight * scored[1][i]) / (1 + predictor.flow_weight)
        out.append((probs, sum(v.shape[0] for v in views)))
    return out


def video_scores(predictor: Predictor, path, span: tuple[int, int] | None = None) -> tuple[torch.Tensor, int]:
    """(class probabilities of one video, or of its frames ``span``; views scored); with a flow stream,
    rgb + w x flow renormalised."""
    return fused_scores(predictor, [[read_views(stream.views, path, span) for stream in _streams(predictor)]])[0]


def _top(predictor: Predictor, path, probs: torch.Tensor, count: int, top: int, seconds: float,
         **where) -> Prediction:
    best = probs.topk(min(top, probs.numel()))
    names = predictor.classes
    classes = [(names[i] if i < len(names) else f"class {i}", float(p)) for p, i in zip(best.values, best.indices)]
    return Prediction(str(path), classes, count, seconds, **where)


def _failure(path, error: Exception, seconds: float, **where) -> Prediction:
    reason = error.reason if isinstance(error, VideoDecodeError) else f"{type(error).__name__}: {error}"
    return Prediction(str(path), error=reason, seconds=seconds, **where)


READ_ERRORS = (VideoDecodeError, ValueError, IndexError, OSError)


@torch.no_grad()
def predict_batch(predictor: Predictor, paths, top: int = 5) -> list[Prediction]:
    """Several videos scored together: their views are read one video at a time, then the model runs once per
    shape of view (``scores_of_views``); a video that cannot be read gets its error and the others go on. The
    time of each Prediction is the batch's, shared out evenly."""
    start = time.perf_counter()
    read, failed = {}, {}
    for path in paths:
        try:
            read[path] = [read_views(stream.views, path) for stream in _streams(predictor)]
        except READ_ERRORS as e:
            failed[path] = e
    scored = dict(zip(read, fused_scores(predictor, list(read.values())))) if read else {}
    share = (time.perf_counter() - start) / max(1, len(paths))
    return [_failure(path, failed[path], share) if path in failed else _top(predictor, path, *scored[path], top, share)
            for path in paths]


@torch.no_grad()
def predict_video(predictor: Predictor, path, top: int = 5, span: tuple[int, int] | None = None,
                  fps: float | None = None) -> Prediction:
    """One video's top-``top`` classes (of its frames ``span`` only, given); a video that cannot be read gives a
    Prediction with ``error``."""
    start = time.perf_counter()
    where = {"start": span[0] / fps, "end": span[1] / fps} if span is not None and fps else {}
    try:
        probs, count = video_scores(predictor, path, span)
    except READ_ERRORS as e:
        return _failure(path, e, time.perf_counter() - start, **where)
    return _top(predictor, path, probs, count, top, time.perf_counter() - start, **where)


def windows(frame_count: int, fps: float, window: float, stride: float) -> list[tuple[int, int]]:
    """Frame spans [start, end) of ``window`` seconds every ``stride`` seconds; a video shorter than one window
    is one span of all its frames, and the last window ends at the last frame."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"--window and --stride must be positive seconds, got {window} and {stride}")
    size, step = max(2, round(window * fps)), max(1, round(stride * fps))
    if frame_count <= size:
        return [(0, frame_count)]
    starts = list(range(0, frame_count - size + 1, step))
    if starts[-1] + size < frame_count:
        starts.append(frame_count - size)
    return [(s, s + size) for s in starts]


def video_windows(path, backend: str, window: float, stride: float) -> tuple[list[tuple[int, int]], float]:
    """(the frame spans of ``windows``, the video's frame rate): the video is opened for its length only."""
    with open_video(path, backend=backend) as video:
        count, fps = len(video), video.fps
    return windows(count, fps, window, stride), fps


def predict_windows(predictor: Predictor, path, window: float, stride: float, top: int = 5) -> list[Prediction]:
    """Predictions over time: one per window of ``window`` seconds every ``stride`` seconds, each from the
    model's views inside that window (memory is set by one window's views, whatever the video's length)."""
    try:
        spans, fps = video_windows(path, predictor.views.backend, window, stride)
    except (VideoDecodeError, OSError) as e:
        return [Prediction(str(path), error=e.reason if isinstance(e, VideoDecodeError) else str(e))]
    return [predict_video(predictor, path, top, span, fps) for span in spans]


def predict(predictor: Predictor, inputs, top: int = 5, show_progress: bool = True,
            skipped: list | None = None, window: float | None = None, stride: float | None = None,
            batch: int = 1) -> list[Prediction]:
    """Predictions for every video under ``inputs``, in order; missing inputs, folders without videos and broken
    videos included (as errors). Files in folders that are not videos by extension go to ``skipped``. With
    ``window`` (seconds), one prediction per window every ``stride`` seconds (default: the window); with
    ``batch`` > 1, that many videos are scored per forward pass (``predict_batch``)."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    paths, results = find_videos(inputs, skipped)
    if window:
        for path in progress(paths, show_progress and len(paths) > 1, desc="predict", unit="video", leave=False):
            results += predict_windows(predictor, path, window, stride or window, top)
    else:
        chunks = [paths[i:i + batch] for i in range(0, len(paths), batch)]
        for chunk in progress(chunks, show_progress and len(chunks) > 1, desc="predict", unit="batch", leave=False):
            results += (predict_batch(predictor, chunk, top) if len(chunk) > 1
                        else [predict_video(predictor, chunk[0], top)])
    return sorted(results, key=lambda r: (r.path, r.start or 0.0))


def as_table(results: list[Prediction]) -> str:
    """One block per video: its path and time, then one line per class (or the reason it failed)."""
    lines = []
    for r in results:
        if r.error:
            lines.append(f"{r.path}: FAILED: {r.error}")
            continue
        where = f"  {r.start:.1f}-{r.end:.1f} s" if r.start is not None else ""
        lines.append(f"{r.path}{where}  ({r.views} view{'s' if r.views != 1 else ''}, {r.seconds:.2f} s)")
        lines += [f"  {p:6.1%}  {name}" for name, p in r.top]
    return "\n".join(lines)


def as_rows(results: list[Prediction]) -> list[dict]:
    """Flat rows (one per video and rank; failed videos one row with the error) for CSV."""
    rows = []
    for r in results:
        where = {"start_s": f"{r.start:.3f}", "end_s": f"{r.end:.3f}"} if r.start is not None else {}
        if r.error:
            rows.append({"path": r.path, **where, "rank": "", "class": "", "probability": "", "views": 0,
                         "seconds": f"{r.seconds:.3f}", "error": r.error})
        for rank, (name, p) in enumerate(r.top, start=1):
            rows.append({"path": r.path, **where, "rank": rank, "class": name, "probability": f"{p:.6f}",
                         "views": r.views, "seconds": f"{r.seconds:.3f}", "error": ""})
    return rows


def as_json(results: list[Prediction]) -> str:
    return json.dumps([{**{k: v for k, v in asdict(r).items() if not (k in ("start", "end") and v is None)},
                        "top": [{"class": n, "probability": p} for n, p in r.top]} for r in results], indent=2)


# --------------------------------------------------------------------------- features

def block_position(model: nn.Module, block: str | None) -> int:
    """The index of the LGD block ``block`` ("layer3.1"; None: the last) among the model's blocks; ValueError
    listing them when there is no such block."""
    names = [name for name, _ in model.named_lgd_blocks()]
    if block is None:
        return len(names) - 1
    if block not in names:
        raise ValueError(f"no block {block!r}; the model's blocks: {', '.join(names)}")
    return names.index(block)


@torch.no_grad()
def video_features(predictor: Predictor, path, block: str | None = None,
                   span: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """What linear probes and retrieval start from, for one video (or its frames ``span``): ``local``, the block's
    local map pooled over time and space, and ``global``, its global vector g (absent without a global path),
    each averaged over the model's views. ``block`` names an LGD block ("layer3.1"; default: the last)."""
    model = predictor.model
    position = block_position(model, block)
    views = read_views(predictor.views, path, span).to(next(model.parameters()).device)
    with evaluating(model):
        _, _, taps = model.forward_features(views, return_taps=True)
    tap = taps[position]
    out = {"local": tap.local.float().mean((2, 3, 4)).mean(0).cpu().numpy()}
    if tap.global_ is not None:
        out["global"] = tap.global_.float().mean(0).cpu().numpy()
    return out


def extract_features(predictor: Predictor, inputs, out, block: str | None = None, window: float | None = None,
                     stride: float | None = None, show_progress: bool = True) -> tuple[Path, list[Prediction]]:
    """Features of every video under ``inputs`` (or of each window) into ``out/features.npz`` (arrays ``local``
    and, with a global path, ``global``: one row per video or window) and ``out/index.csv`` (row, path, start_s,
    end_s). Returns (the npz path, the videos that failed, as Predictions with ``error``)."""
    block_position(predictor.model, block)                       # a bad block name stops the run before any video
    paths, failed = find_videos(inputs)
    rows, arrays = [], {"local": [], "global": []}
    for path in progress(paths, show_progress and len(paths) > 1, desc="features", unit="video", leave=False):
        try:
            spans, fps = (video_windows(path, predictor.views.backend, window, stride or window) if window
                          else ([None], None))
            for span in spans:
                features = video_features(predictor, path, block, span)
                for key in arrays:
                    if key in features:
                        arrays[key].append(features[key])
                rows.append({"row": len(rows), "path": str(path),
                             "start_s": round(span[0] / fps, 3) if span else "",
                             "end_s": round(span[1] / fps, 3) if span else ""})
        except READ_ERRORS as e:
            failed.append(Prediction(str(path), error=e.reason if isinstance(e, VideoDecodeError) else str(e)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = {key: np.stack(values) for key, values in arrays.items() if values}
    np.savez(out / "features.npz", **saved)
    pd.DataFrame(rows, columns=["row", "path", "start_s", "end_s"]).to_csv(out / "index.csv", index=False)
    return out / "features.npz", failed
