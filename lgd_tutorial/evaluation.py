"""Evaluation: K clips x crops per video, softmax scores averaged.

    lgd evaluate --checkpoint runs/tiny/best.pt                 # the run's validation set
    lgd evaluate --checkpoint CKPT --clips 10 --crops 3 --manifest data/videos/k400/manifest_val.csv

Reports clip-level accuracy (every view on its own) and video-level top-1 /
top-5 (averaged softmax over all views), per-class accuracy and the
confusion matrix; writes them with a predictions CSV to ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Config
from .constants import AVERAGES, TEST_HEADS
from .data.clips import ClipDataset
from .data.flow import frame_mismatch, read_stored
from .data.video import VideoDecodeError, open_video
from .utils import progress as progress_bar


@dataclass
class EvalResult:
    clip_acc1: float
    video_acc1: float
    video_acc5: float
    videos: int
    views_per_video: int
    per_class: pd.DataFrame = field(repr=False)
    confusion: np.ndarray = field(repr=False)
    predictions: pd.DataFrame = field(repr=False)
    failed: list = field(default_factory=list, repr=False)
    scores: np.ndarray | None = field(default=None, repr=False)     # (videos, K) averaged scores, rows as predictions

    def summary(self) -> str:
        return (f"{self.videos} videos x {self.views_per_video} views: clip top-1 {self.clip_acc1:.3f}, "
                f"video top-1 {self.video_acc1:.3f}, top-5 {self.video_acc5:.3f}")


def class_names(cfg: Config) -> list[str] | None:
    """The class names of a run's data (``classes.txt`` in its root), or None when there is no such file."""
    path = Path(cfg.data.classes) if cfg.data.classes else Path(cfg.data.root) / "classes.txt"
    return path.read_text().splitlines() if path.exists() else None




def view_scores(model, clips: torch.Tensor, head: str = "combined") -> torch.Tensor:
    """Logits of one head for a batch of views (N, C, T, H, W): ``combined`` (what the model returns) or
    ``local`` (the local head alone, as the release scores)."""
    if head not in TEST_HEADS:
        raise ValueError(f"head must be one of {TEST_HEADS}, got {head!r}")
    if head == "combined":
        return model(clips)
    return model(clips, return_heads=True)["local_logits"]


def average_views(logits: torch.Tensor, n: int, views: int, average: str = "softmax") -> torch.Tensor:
    """(n * views, K) logits -> (n, K) video scores: the mean softmax or the mean logits over the views."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    per_view = logits.softmax(1) if average == "softmax" else logits
    return per_view.view(n, views, -1).mean(1)


@torch.no_grad()
def evaluate(model, dataset: ClipDataset, class_names: list[str] | None = None, batch_size: int = 4,
             device="cpu", progress: bool = False, head: str = "combined", average: str = "softmax") -> EvalResult:
    """Multi-view evaluation of ``model`` on a test-mode dataset (items (views, C, T, H, W)).

    ``head`` picks the scores (``TEST_HEADS``), ``average`` how a video's views are combined (``AVERAGES``). The
    release's protocol is ``head="local", average="logits"`` on 3 full-height crops x 20 clips.
    """
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    num_classes = None
    rows, clip_hits, clip_total, failed, scores = [], 0, 0, [], []
    loader = progress_bar(loader, progress, desc="evaluate", unit="batch")
    for clips, labels, index, bad in loader:
        failed += [int(i) for i in bad.flatten() if i >= 0]
        if clips.dim() == 5:                       # one view per video
            clips = clips[:, None]
        n, views = clips.shape[:2]
        logits = view_scores(model, clips.flatten(0, 1).to(device), head).float().cpu()
        num_classes = logits.shape[1]
        clip_hits += int((logits.view(n, views, -1).argmax(2) == labels[:, None]).sum())
        clip_total += n * views
        video = average_views(logits, n, views, average)
        top = video.topk(min(5, num_classes), dim=1)
        for k in range(n):
            i = int(index[k])
            if (bad[k] >= 0).any():            # the video failed to decode: left out, listed in ``failed``
                continue
            scores.append(video[k].numpy())
            rows.append({"index": i, "path": str(dataset.paths[i]), "label": int(labels[k]), "pred": int(top.indices[k, 0]),
                         "score": float(top.values[k, 0]), "top5": " ".join(map(str, top.indices[k].tolist())),
                         "correct": int(top.indices[k, 0] == labels[k]),
                         "correct5": int(labels[k] in top.indices[k].tolist())})
    pred = pd.DataFrame(rows)
    k = num_classes or 0
    names = class_names or [str(i) for i in range(k)]
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(pred["label"], pred["pred"]):
        confusion[t, p] += 1
    support = confusion.sum(1)
    per_class = pd.DataFrame({"class": names[:k], "videos": support,
                              "accuracy": np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)})
    pred["label_name"] = [names[i] for i in pred["label"]]
    pred["pred_name"] = [names[i] for i in pred["pred"]]
    return EvalResult(clip_acc1=clip_hits / max(1, clip_total), video_acc1=float(pred["correct"].mean()),
                      video_acc5=float(pred["correct5"].mean()), videos=len(pred),
                      views_per_video=clip_total // max(1, len(pred)), per_class=per_class, confusion=confusion,
                      predictions=pred, failed=[str(dataset.paths[i]) for i in sorted(set(failed))],
                      scores=np.stack(scores) if scores else np.zeros((0, k), dtype=np.float32))


# --------------------------------------------------------------------------- two streams

def evaluate_recipe(model, cfg: Config, dataset: ClipDataset, device="cpu") -> EvalResult:
    """``evaluate`` as the recipe ``cfg`` says: its class names, head and view averaging (8 videos a batch)."""
    return evaluate(model, dataset, class_names(cfg), batch_size=8, device=device, head=cfg.data.test_head,
                    average=cfg.data.test_average)


# The authors' test protocol: 20 clips x 3 crops of the full height (crop size = the test short side), the local
# head's logits averaged over a video's views (``lgd evaluate --protocol release``).
RELEASE_PROTOCOL = {"test_clips": 20, "test_crops": 3, "test_head": "local", "test_average": "logits"}


def use_release_protocol(cfg: Config) -> Config:
    """``cfg`` with its test views and scores set to the release's protocol (``RELEASE_PROTOCOL``)."""
    for key, value in RELEASE_PROTOCOL.items():
        setattr(cfg.data, key, value)
    cfg.data.test_crop_size = cfg.data.test_short_side
    return cfg


def evaluate_streams(rgb: tuple, flow: tuple, class_names: list[str] | None = None, flow_weight: float = 1.5,
                     batch_size: int = 8, device="cpu", head: str = "combined", average: str = "softmax",
                     progress: bool = False) -> tuple[EvalResult, EvalResult, pd.DataFrame]:
    """Two streams on the same videos: ``rgb`` and ``flow`` are (model, dataset) pairs built from one manifest
    (``check_streams``); each is evaluated (``evaluate``) and their video scores fused (``fuse``). Returns
    (RGB result, flow result, the table of both streams and the fusion)."""
    rgb_data, flow_data = rgb[1], flow[1]
    check_streams(rgb_data, flow_data)
    results = [evaluate(model, data, class_names, batch_size, device, progress=progress, head=head, average=average)
               for model, data in (rgb, flow)]
    return results[0], results[1], fuse(results[0], results[1], flow_weight)


def check_streams(rgb: ClipDataset, flow: ClipDataset) -> None:
    """ValueError naming every video whose RGB and flow streams do not belong together: another video count,
    other labels, or flow computed from a video with another number of frames."""
    if len(rgb) != len(flow) or rgb.labels != flow.labels:
        raise ValueError(f"the RGB and flow datasets differ ({len(rgb)} and {len(flow)} videos, or their labels): "
                         "build both from the same manifest")
    wrong = []
    for video, flow_file in zip(rgb.paths, flow.paths):
        try:
            stored, = read_stored(flow_file, "frames")          # the count alone: the flow stays compressed
            with open_video(video, backend=rgb.backend) as v:
                if len(v) != stored:
                    wrong.append(f"{flow_file}: {frame_mismatch(stored, len(v))}")
        except VideoDecodeError:
            pass                              # a missing or unreadable file is replaced and reported when loaded
    if wrong:
        raise ValueError(f"{len(wrong)} flow file(s) do not match their videos (run `lgd prepare flow` again): "
                         + "; ".join(wrong[:5]))


def fuse(rgb: EvalResult, flow: EvalResult, flow_weight: float = 1.5) -> pd.DataFrame:
    """Late fusion: video scores rgb + flow_weight x flow (each averaged over its views), on the videos both
    streams scored. One row per stream and the fusion: videos and top-1 accuracy."""
    if flow_weight < 0:
        raise ValueError(f"flow_weight must be >= 0, got {flow_weight}")
    a, b = (r.predictions.assign(row=np.arange(len(r.predictions))).set_index("index") for r in (rgb, flow))
    common = sorted(set(a.index) & set(b.index))
    a, b = a.loc[common], b.loc[common]
    if not (a["label"].to_numpy() == b["label"].to_numpy()).all():
        raise ValueError("the two streams give different labels for the same video: not the same manifest")
    labels = a["label"].to_numpy()
    s_rgb, s_flow = rgb.scores[a["row"].to_numpy()], flow.scores[b["row"].to_numpy()]
    fused = s_rgb + flow_weight * s_flow
    table = [{"stream": name, "videos": len(common), "acc1": float((scores.argmax(1) == labels).mean())}
             for name, scores in (("rgb", s_rgb), ("flow", s_flow), (f"fused (flow weight {flow_weight:g})", fused))]
    return pd.DataFrame(table)


def save(result: EvalResult, out) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.predictions.to_csv(out / "predictions.csv", index=False)
    result.per_class.to_csv(out / "per_class.csv", index=False)
    names = list(result.per_class["class"])
    pd.DataFrame(result.confusion, index=names, columns=names).to_csv(out / "confusion.csv")
    (out / "metrics.json").write_text(json.dumps(
        {"clip_acc1": result.clip_acc1, "video_acc1": result.video_acc1, "video_acc5": result.video_acc5,
         "videos": result.videos, "views_per_video": result.views_per_video, "failed_videos": result.failed},
        indent=2) + "\n")
    return out
