"""What training and validation count: top-k hits, running sums over clips, and the metrics log.

``metrics.csv`` in a run folder has one row per logged step (``split``
"train") and per validation (``split`` "val"), with the columns
``METRIC_FIELDS``; ``viz.plots.read_metrics`` reads it back.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import torch

from .distributed import Dist
from .utils import atomic_path

log = logging.getLogger("lgd_tutorial.metrics")
METRIC_FIELDS = ["time", "epoch", "step", "global_step", "split", "loss", "acc1", "acc5", "lr",
                 "clips_per_s", "data_wait_frac", "failed_videos"]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    k = min(max(ks), logits.shape[1])
    hits = logits.topk(k, dim=1).indices == labels[:, None]
    return [int(hits[:, :min(kk, k)].any(1).sum()) for kk in ks]


class Tally:
    """Running sums over clips (loss, top-1, top-5, count) and the time spent waiting for data."""

    def __init__(self):
        self.loss, self.correct1, self.correct5, self.clips, self.wait = 0.0, 0, 0, 0, 0.0
        self.start = time.perf_counter()

    def add(self, loss: float, logits: torch.Tensor, labels: torch.Tensor) -> None:
        c1, c5 = topk_correct(logits.detach().float(), labels)
        n = labels.shape[0]
        self.loss, self.correct1, self.correct5, self.clips = self.loss + loss * n, self.correct1 + c1, \
            self.correct5 + c5, self.clips + n

    def summed(self, d: Dist, device) -> dict:
        """Loss and accuracies over all processes, clips/s and the data-wait fraction of this one."""
        loss, c1, c5, n = d.all_sum([self.loss, self.correct1, self.correct5, self.clips], device)
        elapsed = max(1e-9, time.perf_counter() - self.start)
        n_ = max(1, n)
        return {"loss": loss / n_, "acc1": c1 / n_, "acc5": c5 / n_, "clips": n,
                "clips_per_s": n / elapsed, "data_wait_frac": self.wait / elapsed}


class MetricsLog:
    """Appends rows to ``folder/metrics.csv`` (and to TensorBoard when asked); ``MetricsLog(None)`` writes nothing."""

    def __init__(self, folder: Path | None, tensorboard: bool = False):
        self.path = None if folder is None else Path(folder) / "metrics.csv"
        self.tb = None
        if folder is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(Path(folder) / "tensorboard")
            except ImportError:
                log.warning("run.tensorboard: the tensorboard package is not installed; skipping")

    def write(self, row: dict, step: int) -> None:
        if self.path is None:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            # six significant digits, except the wall-clock time (seconds since 1970: milliseconds kept)
            w.writerow({k: (f"{v:.3f}" if k == "time" else f"{v:.6g}") if isinstance(v, float) else v
                        for k, v in row.items()})
        if self.tb is not None:
            for k in ("loss", "acc1", "acc5", "lr", "clips_per_s", "data_wait_frac"):
                if row.get(k) not in (None, ""):
                    self.tb.add_scalar(f"{row['split']}/{k}", float(row[k]), step)

    def truncate_after(self, step: int) -> int:
        """Drop the rows logged after ``step`` (a resume from an older checkpoint redoes them); returns how many."""
        if self.path is None or not self.path.exists():
            return 0
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if not r.get("global_step") or int(float(r["global_step"])) <= step]
        if len(keep) < len(rows):

            with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
                w.writeheader()
                w.writerows(keep)
        return len(rows) - len(keep)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def validation_curve(run_dir, **labels):
    """Validation top-1 (one centre clip per video) after every epoch of the run in ``run_dir``, as a
    DataFrame with ``labels`` as constant columns, then ``epoch`` (1-based), ``global_step`` and ``acc1``."""
    import pandas as pd

    metrics = pd.read_csv(Path(run_dir) / "metrics.csv")
    val = metrics[metrics["split"] == "val"]
    return pd.DataFrame({**labels, "epoch": val["epoch"].astype(int) + 1, "global_step": val["global_step"],
                         "acc1": val["acc1"]})
