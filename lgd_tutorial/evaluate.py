"""Evaluation: K clips x crops per video, softmax scores averaged.

    lgd evaluate --checkpoint runs/tiny/best.pt                 # the run's validation set
    lgd evaluate --checkpoint CKPT --clips 10 --crops 3 --manifest data/videos/k400/manifest_val.csv

Reports clip-level accuracy (every view on its own) and video-level top-1 /
top-5 (averaged softmax over all views), per-class accuracy and the
confusion matrix; writes them with a predictions CSV to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import ConfigError, from_dict
from .data.clips import ClipDataset
from .data.transforms import test_transform
from .models import build_model
from .train import CheckpointError, load_checkpoint


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


def model_from_checkpoint(path, device="cpu"):
    """(model in eval mode, its Config) from a checkpoint written by ``lgd train``."""
    state = load_checkpoint(path)
    cfg = from_dict(state.get("config") or {})
    m = cfg.model
    model = build_model(m.arch, m.num_classes, diffusion=m.diffusion, kernel=m.kernel, dropout=m.dropout)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


@torch.no_grad()
def evaluate(model, dataset: ClipDataset, class_names: list[str] | None = None, batch_size: int = 4,
             device="cpu", progress: bool = False) -> EvalResult:
    """Multi-view evaluation of ``model`` on a test-mode dataset (items (views, C, T, H, W))."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    num_classes = None
    rows, clip_hits, clip_total, failed = [], 0, 0, []
    if progress:
        from tqdm.auto import tqdm
        loader = tqdm(loader, desc="evaluate", unit="batch")
    for clips, labels, index, bad in loader:
        failed += [int(i) for i in bad.flatten() if i >= 0]
        if clips.dim() == 5:                       # one view per video
            clips = clips[:, None]
        n, views = clips.shape[:2]
        logits = model(clips.flatten(0, 1).to(device)).float().cpu()
        num_classes = logits.shape[1]
        probs = logits.softmax(1).view(n, views, -1)
        clip_hits += int((probs.argmax(2) == labels[:, None]).sum())
        clip_total += n * views
        video = probs.mean(1)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lgd evaluate", description="Multi-view evaluation of a checkpoint.")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--manifest", default=None, help="manifest CSV (default: the run's validation manifest)")
    parser.add_argument("--root", default=None, help="dataset root (default: the manifest's folder)")
    parser.add_argument("--clips", type=int, default=None, help="clips per video (default: data.test_clips)")
    parser.add_argument("--crops", type=int, default=None, choices=[1, 3], help="crops per clip")
    parser.add_argument("--batch-size", type=int, default=4, help="videos per forward pass")
    parser.add_argument("--out", default=None, help="folder for the CSVs (default: next to the checkpoint)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    try:
        model, cfg = model_from_checkpoint(args.checkpoint, device)
        d = cfg.data
        manifest = Path(args.manifest) if args.manifest else Path(d.root) / d.val_manifest
        if not manifest.exists():
            raise FileNotFoundError(f"no manifest {manifest}; pass --manifest")
        dataset = ClipDataset(manifest, args.root, mode="tsn" if d.sampling == "tsn" else "test",
                              num_frames=d.num_frames, stride=d.stride, num_clips=args.clips or d.test_clips,
                              transform=test_transform(d.crop_size, d.test_short_side, args.crops or d.test_crops),
                              backend=d.backend, short_side=d.decode_short_side or None, tsn_random=False)
    except (CheckpointError, ConfigError, FileNotFoundError, ValueError) as e:
        print(f"lgd evaluate: error: {e}", file=sys.stderr)
        return 2
    classes_file = Path(d.root) / "classes.txt"
    names = classes_file.read_text().splitlines() if classes_file.exists() else None
    result = evaluate(model, dataset, names, args.batch_size, device, progress=True)
    out = save(result, args.out or Path(args.checkpoint).parent / "eval")
    print(result.summary())
    if result.failed:
        print(f"{len(result.failed)} video(s) failed to decode and were replaced: {', '.join(result.failed)}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
