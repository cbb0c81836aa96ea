"""Data throughput: how fast clips can be decoded and loaded, and how many workers a GPU needs.

    lgd data bench [--smoke] [--target 200]

Generates 10-second test videos at 256p and 320p (short side), then measures
(1) decode + transform clips/s in one process for decord and PyAV, and
(2) the DataLoader rate with 0, 1 and 2 workers. Workers needed for a
training rate R clips/s = R / (per-worker clips/s), rounded up.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.clips import ClipDataset
from ..data.encode import write_video
from ..data.kinetics import build_manifest
from ..data.transforms import train_transform


def make_videos(folder: Path, short_side: int, count: int, seconds: float, fps: int = 25) -> pd.DataFrame:
    """``count`` 16:9-ish test videos with moving content; returns their manifest."""
    rng = np.random.default_rng(short_side)
    h = short_side
    w = int(round(short_side * 16 / 9 / 2)) * 2
    rows = []
    frames = int(seconds * fps)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(count):
        base = rng.integers(0, 255, (3,))
        video = np.empty((frames, h, w, 3), np.uint8)
        for t in range(frames):
            wave = 127 + 100 * np.sin((xx + 3 * t + 17 * k) / 23.0) * np.cos((yy - 2 * t) / 31.0)
            video[t] = np.clip(wave[..., None] * 0.6 + base * 0.4, 0, 255).astype(np.uint8)
        yid = f"bench{short_side:03d}{k:03d}"
        write_video(folder / "val" / "bench" / f"{yid}_000000_{int(seconds):06d}.mp4", video, fps=fps)
        rows.append({"label": "bench", "youtube_id": yid, "time_start": 0, "time_end": int(seconds), "split": "val"})
    return build_manifest(pd.DataFrame(rows), folder, ["bench"])


def decode_rate(manifest, root, backend: str, clips: int, num_frames=16, stride=2, crop=112) -> float:
    ds = ClipDataset(manifest, root, mode="train", num_frames=num_frames, stride=stride, backend=backend,
                     transform=train_transform(crop, scale=(128, 160)), short_side=128, strict=True)
    ds[0]                                                     # warm-up
    start = time.perf_counter()
    for i in range(clips):
        ds[i % len(ds)]
    return clips / (time.perf_counter() - start)


def loader_rate(manifest, root, workers: int, batches: int, batch_size=8, num_frames=16, stride=2) -> float:
    ds = ClipDataset(manifest, root, mode="train", num_frames=num_frames, stride=stride, strict=True,
                     transform=train_transform(112, scale=(128, 160)), short_side=128)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=True,
                                         persistent_workers=False, drop_last=False)
    it = iter(loader)
    next(it)                                                  # start-up is not throughput
    n = 0
    start = time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += batch[0].shape[0]
    return n / (time.perf_counter() - start)


def run(smoke: bool = False, target: float = 100.0, out: str | None = None, repeats: int = 3) -> pd.DataFrame:
    sizes = (64,) if smoke else (256, 320)
    count, seconds = (2, 2) if smoke else (6, 10)
    clips = 2 if smoke else 12
    repeats = 1 if smoke else repeats
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = Path(tmp) / f"{size}p"
            manifest = make_videos(folder, size, count, seconds)
            for backend in ("decord", "pyav"):
                rate = statistics.median(decode_rate(manifest, folder, backend, clips) for _ in range(repeats))
                rows.append({"test": "decode+transform", "video": f"{size}p", "backend": backend, "workers": 1,
                             "clips_per_s": rate, "workers_for_target": math.ceil(target / rate)})
            for workers in ((0,) if smoke else (0, 1, 2)):
                rate = loader_rate(manifest, folder, workers, batches=1 if smoke else 6)
                rows.append({"test": "DataLoader", "video": f"{size}p", "backend": "auto", "workers": workers,
                             "clips_per_s": rate, "workers_for_target": math.ceil(target / rate)})
    table = pd.DataFrame(rows)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    return table
