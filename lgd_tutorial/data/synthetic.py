"""A small synthetic video dataset that needs what LGD offers.

Real mp4 files (H.264 via PyAV) in the Kinetics layout, with official-format
CSVs and manifests, so the loader, the notebooks and the training code run on
it unchanged:

    OUT/train/<label>/<id>_000000_000002.mp4     OUT/annotations/train.csv
    OUT/val/<label>/...                          OUT/annotations/val.csv
    OUT/classes.txt    OUT/manifest_train.csv    OUT/manifest_val.csv

Every video shows a textured background, a *beacon* (a thick bar along one
edge of the frame: left, right, top or bottom, in one of three colours), a
small moving *object* (a square in one of the three colours) that travels
straight toward or away from the beacon's edge, and distractors: two still,
flickering squares in random colours, per-pixel noise and camera jitter.

The four classes are the relation between object and beacon:

    toward beacon (same colour)      the object moves toward a beacon of its own colour
    away from beacon (same colour)   ... away from a beacon of its own colour
    toward beacon (other colour)     ... toward a beacon of another colour
    away from beacon (other colour)  ... away from a beacon of another colour

Why a purely local network struggles:
- *Temporal order*: one frame shows where the object is, not where it goes:
  toward and away differ only in the order of frames.
- *Long-range context*: the object's own motion (say "moving left") means
  nothing alone; the beacon's side and colour vary per video and lie far
  from the object, so the label needs the relation between two far-apart
  regions: exactly what a global path carries to every position.
- *No shortcuts*: every colour, side and direction occurs in every class in
  equal measure; the distractors share the palette; horizontal flips keep
  the label (they flip the beacon too).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .encode import write_video
from .kinetics import build_manifest, clip_filename, save_manifest, write_annotations

CLASSES = [
    "away from beacon (other colour)",
    "away from beacon (same colour)",
    "toward beacon (other colour)",
    "toward beacon (same colour)",
]
PALETTE = np.array([(220, 50, 40), (40, 190, 60), (50, 90, 230)], dtype=np.float32)   # red, green, blue
SIDES = ("left", "right", "top", "bottom")
DEFAULTS = {"videos_per_class": 64, "val_per_class": 16, "size": 96, "frames": 24, "fps": 12}


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth grey texture (low-frequency noise), values around 110 +- 30."""
    coarse = rng.normal(0, 1, (size // 8 + 2, size // 8 + 2))
    smooth = np.kron(coarse, np.ones((8, 8)))[:size, :size]
    k = np.ones(5) / 5
    smooth = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, smooth)
    smooth = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, smooth)
    return (110 + 30 * smooth / (smooth.std() + 1e-6))[..., None].repeat(3, axis=2).astype(np.float32)


def render(label: int, rng: np.random.Generator, size: int = 96, frames: int = 24, with_info: bool = False):
    """Frames (T, size, size, 3) uint8 of one video of class ``label`` (an index into CLASSES).

    ``with_info=True`` also returns what was drawn: beacon side and colour, object
    colour and its top-left (y, x) per frame before camera jitter.
    """
    name = CLASSES[label]
    toward, same = name.startswith("toward"), "same" in name
    side = SIDES[rng.integers(4)]
    beacon_colour = int(rng.integers(3))
    object_colour = beacon_colour if same else int((beacon_colour + rng.integers(1, 3)) % 3)
    band = max(4, size // 5)                       # beacon thickness: survives a random crop
    obj = max(4, size // 10)
    background = _texture(rng, size)

    # Object path along the axis that points at the beacon, in "distance from the beacon edge".
    near, far = band + obj, size - obj - 2
    travel = (far - near) * rng.uniform(0.45, 0.7)
    start = rng.uniform(near + travel, far) if toward else rng.uniform(near, far - travel)
    end = start - travel if toward else start + travel
    across = rng.uniform(band + 2, size - band - obj - 2)       # position on the other axis

    distractors = [(rng.uniform(band, size - obj), rng.uniform(band, size - obj), int(rng.integers(3)))
                   for _ in range(2)]
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    track = []
    for t in range(frames):
        img = background.copy()
        if side == "left":
            img[:, :band] = PALETTE[beacon_colour]
        elif side == "right":
            img[:, size - band:] = PALETTE[beacon_colour]
        elif side == "top":
            img[:band] = PALETTE[beacon_colour]
        else:
            img[size - band:] = PALETTE[beacon_colour]
        for y, x, c in distractors:
            if rng.random() < 0.85:                                  # flicker
                y2, x2 = int(y + rng.integers(-1, 2)), int(x + rng.integers(-1, 2))
                img[max(0, y2): y2 + obj, max(0, x2): x2 + obj] = PALETTE[c] * rng.uniform(0.8, 1.0)
        d = start + (end - start) * t / max(1, frames - 1)          # distance from the beacon edge
        if side in ("left", "right"):
            x = d if side == "left" else size - d - obj
            y = across
        else:
            y = d if side == "top" else size - d - obj
            x = across
        y, x = int(round(y)), int(round(x))
        track.append((y, x))
        img[y: y + obj, x: x + obj] = PALETTE[object_colour]
        img += rng.normal(0, 8, img.shape).astype(np.float32)          # sensor noise
        dy, dx = rng.integers(0, 5, size=2)                              # camera jitter: +-2 px
        img = np.pad(img, ((2, 2), (2, 2), (0, 0)), mode="edge")[dy: dy + size, dx: dx + size]
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    if with_info:
        return out, {"side": side, "beacon_colour": beacon_colour, "object_colour": object_colour,
                     "track": track, "object_size": obj, "band": band}
    return out


def _video_id(seed: int, split: str, number: int) -> str:
    """An 11-character id like Kinetics' YouTube ids (may contain '_' and '-', as those do)."""
    return f"s{seed % 1000:03d}{'t' if split == 'train' else 'v'}-{number:05d}"


def _write_one(job) -> dict:
    out, split, label, number, seed, size, frames, fps = job
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, number])
    video = render(label, rng, size, frames)
    yid = _video_id(seed, split, number)
    end = max(1, round(frames / fps))
    path = Path(out, split, CLASSES[label], clip_filename(yid, 0, end))
    write_video(path, video, fps=fps, crf=20)
    return {"label": CLASSES[label], "youtube_id": yid, "time_start": 0, "time_end": end, "split": split}


def generate(out, seed: int = 0, videos_per_class: int = DEFAULTS["videos_per_class"],
             val_per_class: int = DEFAULTS["val_per_class"], size: int = DEFAULTS["size"],
             frames: int = DEFAULTS["frames"], fps: int = DEFAULTS["fps"], workers: int | None = None,
             progress: bool = True) -> Path:
    """Write the dataset under ``out`` (deterministic for a seed); returns ``out``.

    Existing files are kept only when the stored settings match (a ``settings.json``).
    """
    import json
    out = Path(out)
    if size % 2:
        raise ValueError(f"size must be even (H.264), got {size}")
    if videos_per_class < 1 or val_per_class < 0:
        raise ValueError("videos_per_class must be positive and val_per_class non-negative")
    settings = {"seed": seed, "videos_per_class": videos_per_class, "val_per_class": val_per_class,
                "size": size, "frames": frames, "fps": fps, "classes": CLASSES}
    marker = out / "settings.json"
    if marker.exists() and json.loads(marker.read_text()) == settings and (out / "manifest_val.csv").exists():
        return out
    jobs = []
    for split, per_class in (("train", videos_per_class), ("val", val_per_class)):
        number = 0
        for _ in range(per_class):
            for label in range(len(CLASSES)):
                jobs.append((str(out), split, label, number, seed, size, frames, fps))
                number += 1
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(_progress(pool.map(_write_one, jobs, chunksize=8), len(jobs), progress))
    else:
        rows = list(_progress(map(_write_one, jobs), len(jobs), progress))
    annotations = pd.DataFrame(rows)
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    for split in ("train", "val"):
        part = annotations[annotations["split"] == split].reset_index(drop=True)
        write_annotations(part, out / "annotations" / f"{split}.csv")
        save_manifest(build_manifest(part, out, CLASSES), out / f"manifest_{split}.csv")
    marker.write_text(json.dumps(settings, indent=2) + "\n")
    return out


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc="synthetic videos", unit="video")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lgd data synth", description="Write the synthetic LGD dataset (mp4 + CSVs).")
    parser.add_argument("out", help="output folder, e.g. data/synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos-per-class", type=int, default=DEFAULTS["videos_per_class"])
    parser.add_argument("--val-per-class", type=int, default=DEFAULTS["val_per_class"])
    parser.add_argument("--size", type=int, default=DEFAULTS["size"])
    parser.add_argument("--frames", type=int, default=DEFAULTS["frames"])
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = generate(args.out, args.seed, args.videos_per_class, args.val_per_class, args.size, args.frames,
                   workers=args.workers)
    size = sum(p.stat().st_size for p in out.rglob("*.mp4"))
    count = sum(1 for _ in out.rglob("*.mp4"))
    print(f"{count} videos, {size / 1e6:.1f} MB, in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0
