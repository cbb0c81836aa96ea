"""Evaluation: K clips x crops per video, softmax scores averaged.

    lgd evaluate --checkpoint runs/tiny/best.pt                 # the run's validation set
    lgd evaluate --checkpoint CKPT --clips 10 --crops 3 --manifest data/videos/k400/manifest_val.csv

Reports clip-level accuracy (every view on its own) and video-level top-1 /
top-5 (averaged softmax over all views), per-class accuracy and the
confusion matrix; writes them with a predictions CSV to ``--out``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data.clips import ClipDataset
from .utils import progress as progress_bar

if TYPE_CHECKING:                                  # the config imports HEADS and AVERAGES from here
    from .config import Config


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

    def summary(self) -> str:
        return (f"{self.videos} videos x {self.views_per_video} views: clip top-1 {self.clip_acc1:.3f}, "
                f"video top-1 {self.video_acc1:.3f}, top-5 {self.video_acc5:.3f}")


def class_names(cfg: Config) -> list[str] | None:
    """The class names of a run's data (``classes.txt`` in its root), or None when there is no such file."""
    path = Path(cfg.data.classes) if cfg.data.classes else Path(cfg.data.root) / "classes.txt"
    return path.read_text().splitlines() if path.exists() else None


HEADS = ("combined", "local")           # the scores evaluated: local + global (the reconstruction), or local only
AVERAGES = ("softmax", "logits")        # what is averaged over a video's views


def view_scores(model, clips: torch.Tensor, head: str = "combined") -> torch.Tensor:
    """Logits of one head for a batch of views (N, C, T, H, W): ``combined`` (what the model returns) or
    ``local`` (the local head alone, as the release scores)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
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

    ``head`` picks the scores (``HEADS``), ``average`` how a video's views are combined (``AVERAGES``). The
    release's protocol is ``head="local", average="logits"`` on 3 full-height crops x 20 clips.
    """
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    num_classes = None
    rows, clip_hits, clip_total, failed = [], 0, 0, []
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
            rows.append({"path": str(dataset.paths[i]), "label": int(labels[k]), "pred": int(top.indices[k, 0]),
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
                      predictions=pred, failed=[str(dataset.paths[i]) for i in sorted(set(failed))])


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
