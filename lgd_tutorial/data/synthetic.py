"""A small synthetic video dataset that needs what LGD offers.

Real mp4 files (H.264 via PyAV) in the Kinetics layout, with official-format
CSVs and manifests, so the loader, the notebooks and the training code run on
it unchanged:

    OUT/train/<label>/<id>_000000_000002.mp4     OUT/annotations/train.csv
    OUT/val/<label>/...                          OUT/annotations/val.csv
    OUT/classes.txt    OUT/manifest_train.csv    OUT/manifest_val.csv

Every video shows a textured background, a *beacon* (a thick bar along one
edge of the frame: left, right, top or bottom, in a random colour) and a
small *object* (a square in a random colour), with distractors: two still,
flickering squares, per-pixel noise and camera jitter. The four classes are
what the object does relative to the beacon:

    approach beacon   it moves straight toward the beacon's edge
    leave beacon      it moves straight away from it
    pass beacon       it moves parallel to the beacon's edge (either way)
    wait              it stays where it is

Why a purely local network struggles:
- *Temporal order*: one frame shows where the object is, not where it goes;
  approach and leave differ only in the order of the frames, and "wait"
  differs from the others only over time.
- *Long-range context*: the object's own motion ("moving left") means
  nothing alone: whether that is approach, leave or pass depends on which
  edge the beacon is on, which varies per video and lies far from the
  object. The object keeps a distance of at least ``gap`` pixels from the
  beacon in every frame, inside a central square that is the same for every
  side (``geometry``), so no small neighbourhood sees both. A rule that sees
  the object alone can tell "wait" from "moving" and no more: given a motion
  direction, approach, leave and pass are equally likely, so its best
  accuracy is 1/4 + 3/4 * 1/3 = 50%.
- *No shortcuts*: every side, colour and direction occurs in every class;
  colours carry no information; horizontal and vertical flips keep the label
  (they flip the beacon too).
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import progress as progress_bar
from .encode import write_video
from .kinetics import build_manifest, clip_filename, save_manifest, write_annotations

log = logging.getLogger("lgd_tutorial.data.synthetic")
CLASSES = ["approach beacon", "leave beacon", "pass beacon", "wait"]
PALETTE = np.array([(220, 50, 40), (40, 190, 60), (50, 90, 230), (230, 200, 40)], dtype=np.float32)
SIDES = ("left", "right", "top", "bottom")
TEXTURE_CONTRAST = 12          # grey levels of background texture (standard deviation)
CAMERA_JITTER = 1              # pixels the whole frame shifts, at most, from frame to frame
# x264's macroblock-tree rate control gives slightly different bytes from run to run here; without it the same
# seed writes the same files. "veryfast" encodes these small clips in half the time of the default preset.
ENCODER = {"x264-params": "mbtree=0", "preset": "veryfast"}
DEFAULTS = {"videos_per_class": 320, "val_per_class": 32, "size": 80, "frames": 16, "fps": 8}


def texture(rng: np.random.Generator, height: int, width: int | None = None) -> np.ndarray:
    """A smooth grey texture (low-frequency noise), values around 110 +- 30: float32 (height, width, 3)."""
    width = height if width is None else width
    coarse = rng.normal(0, 1, (height // 8 + 2, width // 8 + 2))
    smooth = np.kron(coarse, np.ones((8, 8)))[:height, :width]
    k = np.ones(5) / 5
    smooth = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, smooth)
    smooth = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, smooth)
    return (110 + TEXTURE_CONTRAST * smooth / (smooth.std() + 1e-6))[..., None].repeat(3, axis=2).astype(np.float32)


def geometry(size: int, band: int | None = None, object_size: int | None = None,
             gap: int | None = None) -> dict:
    """Sizes in pixels for a ``size`` x ``size`` frame; ``None`` picks the default for that size.

    ``band``: the beacon's thickness (default size // 5, so it survives a random
    crop); ``object_size``: the object's side (size // 8); ``gap``: the least
    distance between the object and the beacon, in every frame (size // 8).
    The object stays inside the central square ``[margin, size - margin -
    object_size]`` with ``margin = band + gap`` on both axes, whichever edge holds
    the beacon: where the object is says nothing about the beacon's side, and it
    never comes close enough to the beacon for a small neighbourhood to see both.
    """
    band = max(4, size // 5) if band is None else band
    obj = max(4, size // 8) if object_size is None else object_size
    gap = size // 8 if gap is None else gap
    margin = band + gap
    room = size - 2 * margin - obj
    if room < 4:
        raise ValueError(f"size {size} leaves no room for the object to move (band {band}, object {obj}, "
                         f"gap {gap}): need size >= 2 * (band + gap) + object_size + 4")
    return {"band": band, "object_size": obj, "gap": gap, "margin": margin, "room": room}


def _object_path(name: str, rng: np.random.Generator, near: float, far: float, room: float,
                 frames: int) -> list[tuple[float, float | None]]:
    """(distance from the beacon edge, position along it or None for "wherever") per frame, for class ``name``."""
    travel = room * rng.uniform(0.6, 1.0)
    steps = max(1, frames - 1)
    if name == "approach beacon":
        d0 = rng.uniform(near + travel, far)
        return [(d0 - travel * t / steps, None) for t in range(frames)]
    if name == "leave beacon":
        d0 = rng.uniform(near, far - travel)
        return [(d0 + travel * t / steps, None) for t in range(frames)]
    if name == "pass beacon":
        d = rng.uniform(near, far)
        a0 = rng.uniform(near, far - travel)
        forward = rng.random() < 0.5
        return [(d, a0 + travel * (t / steps if forward else 1 - t / steps)) for t in range(frames)]
    return [(rng.uniform(near, far), None)] * frames


def _beacon_slice(side: str, band: int, size: int) -> tuple[slice, ...]:
    """The pixels the beacon covers on an image (H, W, 3)."""
    return {"left": (slice(None), slice(0, band)), "right": (slice(None), slice(size - band, size)),
            "top": (slice(0, band),), "bottom": (slice(size - band, size),)}[side]


def _corner(side: str, distance: float, along: float, size: int, obj: int) -> tuple[int, int]:
    """The object's top-left (y, x) at ``distance`` from the beacon's edge and ``along`` it."""
    if side in ("left", "right"):
        y, x = along, (distance if side == "left" else size - distance - obj)
    else:
        y, x = (distance if side == "top" else size - distance - obj), along
    return int(round(y)), int(round(x))


def render(label: int, rng: np.random.Generator, size: int = 96, frames: int = 24, with_info: bool = False,
           band: int | None = None, object_size: int | None = None, gap: int | None = None):
    """Frames (T, size, size, 3) uint8 of one video of class ``label`` (an index into CLASSES).

    ``band``, ``object_size`` and ``gap`` set the layout (see ``geometry``).
    ``with_info=True`` also returns what was drawn: beacon side and colour, object
    colour and its top-left (y, x) per frame before camera jitter, and the layout.
    The jitter shifts each frame by up to ``CAMERA_JITTER`` pixels, so the beacon
    can cover ``band + CAMERA_JITTER`` pixels from its edge.
    """
    name = CLASSES[label]
    layout = geometry(size, band, object_size, gap)
    band, obj, margin, room = layout["band"], layout["object_size"], layout["margin"], layout["room"]
    side = SIDES[rng.integers(len(SIDES))]
    beacon_colour = int(rng.integers(len(PALETTE)))
    object_colour = int(rng.integers(len(PALETTE)))
    background = texture(rng, size)

    # The object's path in (distance from the beacon edge, position along it), both
    # inside [margin, margin + room]: the same square for every side.
    path = _object_path(name, rng, margin, margin + room, room, frames)
    along = rng.uniform(margin, margin + room)

    low, high = band, size - band - obj // 2 - 2                   # clear of a beacon on any side
    distractors = [(rng.uniform(low, high), rng.uniform(low, high), int(rng.integers(len(PALETTE))))
                   for _ in range(2)]
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    track = []
    for t in range(frames):
        img = background.copy()
        img[_beacon_slice(side, band, size)] = PALETTE[beacon_colour]
        for y, x, c in distractors:                                 # still, flickering in brightness
            y2, x2 = int(y), int(x)
            img[y2: y2 + obj // 2 + 2, x2: x2 + obj // 2 + 2] = PALETTE[c] * rng.uniform(0.7, 1.0)
        d, a = path[t]
        y, x = _corner(side, d, along if a is None else a, size, obj)
        track.append((y, x))
        img[y: y + obj, x: x + obj] = PALETTE[object_colour]
        img += rng.normal(0, 6, img.shape).astype(np.float32)          # sensor noise
        dy, dx = rng.integers(0, 2 * CAMERA_JITTER + 1, size=2)          # camera jitter
        j = CAMERA_JITTER
        img = np.pad(img, ((j, j), (j, j), (0, 0)), mode="edge")[dy: dy + size, dx: dx + size]
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    if with_info:
        return out, {"side": side, "beacon_colour": beacon_colour, "object_colour": object_colour,
                     "track": track, **layout}
    return out


def motion_of(track) -> str:
    """What the object does in a drawn track (a list of (y, x)): "still", "left", "right", "up" or "down"."""
    (y0, x0), (y1, x1) = track[0], track[-1]
    dy, dx = y1 - y0, x1 - x0
    if max(abs(dy), abs(dx)) < 1:
        return "still"
    if abs(dx) > abs(dy):
        return "left" if dx < 0 else "right"
    return "up" if dy < 0 else "down"


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
    write_video(path, video, fps=fps, crf=20, options=ENCODER)
    return {"label": CLASSES[label], "youtube_id": yid, "time_start": 0, "time_end": end, "split": split}


def generate(out, seed: int = 0, videos_per_class: int = DEFAULTS["videos_per_class"],
             val_per_class: int = DEFAULTS["val_per_class"], size: int = DEFAULTS["size"],
             frames: int = DEFAULTS["frames"], fps: int = DEFAULTS["fps"], workers: int | None = None,
             progress: bool = True) -> Path:
    """Write the dataset under ``out`` (deterministic for a seed); returns ``out``.

    Existing files are kept only when the stored settings match (a ``settings.json``).
    """
    out = Path(out)
    if size % 2:
        raise ValueError(f"size must be even (H.264), got {size}")
    if videos_per_class < 1 or val_per_class < 0:
        raise ValueError("videos_per_class must be positive and val_per_class non-negative")
    settings = {"seed": seed, "videos_per_class": videos_per_class, "val_per_class": val_per_class,
                "size": size, "frames": frames, "fps": fps, "classes": CLASSES, "encoder": ENCODER}
    marker = out / "settings.json"
    if marker.exists() and json.loads(marker.read_text()) == settings and (out / "manifest_val.csv").exists():
        return out
    count = (videos_per_class + val_per_class) * len(CLASSES)
    log.info("generating the synthetic set (%d videos of %d frames at %d x %d, seed %d) into %s: it is not there "
             "yet with these settings; this happens once (data.root / lgd data synthetic --out choose the folder)",
             count, frames, size, size, seed, out.resolve())
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
            rows = list(progress_bar(pool.map(_write_one, jobs, chunksize=8), progress, total=len(jobs),
                                     desc="synthetic videos", unit="video"))
    else:
        rows = list(progress_bar(map(_write_one, jobs), progress, total=len(jobs), desc="synthetic videos",
                                 unit="video"))
    annotations = pd.DataFrame(rows)
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    for split in ("train", "val"):
        part = annotations[annotations["split"] == split].reset_index(drop=True)
        write_annotations(part, out / "annotations" / f"{split}.csv")
        save_manifest(build_manifest(part, out, CLASSES), out / f"manifest_{split}.csv")
    marker.write_text(json.dumps(settings, indent=2) + "\n")
    return out


def render_numbered(job):
    """Clip ``number`` of a split as the studies draw it, from ``job`` = (label, data seed, split id, number,
    layout dict): (uint8 frames (T, H, W, 3), beacon side, object track). The same job gives the same clip."""
    label, seed, split_id, number, layout = job
    rng = np.random.default_rng([seed, split_id, number])
    video, info = render(label, rng, layout["size"], layout["frames"], with_info=True,
                         band=layout["band"], object_size=layout["object_size"], gap=layout["gap"])
    return video, info["side"], info["track"]
