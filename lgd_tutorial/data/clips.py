"""ClipDataset: clips from the videos of a manifest, ready for a model.

    ds = ClipDataset("data/synthetic/manifest_train.csv", mode="train", num_frames=8, stride=2)
    clip, label, index, failed = ds[0]          # clip (3, 8, 112, 112)

Modes (which frames are read):
- ``train``: one clip of ``num_frames`` frames, ``stride`` apart, at a random start;
- ``test``:  ``num_clips`` clips spread uniformly over the video; with the
  transform's crops this gives views (num_clips x crops, C, T, H, W);
- ``tsn``:   ``num_frames`` segments, one frame from each (random within the
  segment for training, the middle for testing: ``tsn_random``) for LGD-2D.

Every random choice comes from ``random.Random`` seeded by (seed, epoch,
index), so a sample is the same whichever worker loads it (and after a resume).

A video that fails to decode does not stop anything: the sample is replaced by
another (chosen deterministically from the same seed), a warning names the
file, and the failure travels with the batch (``failed``: indices of the
videos that failed, -1 padded) so the training loop can count and report them
at the end of the epoch (``FailureReport``). With ``strict=True`` the error is
raised instead, naming the file.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import DecodedCache
from .kinetics import load_manifest, safe_join
from .flow import SUFFIX as FLOW_SUFFIX
from .flow import FlowVideo, flow_path
from .transforms import (flow_test_transform, flow_to_tensor, flow_train_transform, test_transform, to_tensor,
                         train_transform)
from .video import Video, VideoDecodeError, open_video

log = logging.getLogger(__name__)
MODES = ("train", "test", "tsn")


# --------------------------------------------------------------------------- frame samplers

def random_clip_indices(num_video_frames: int, num_frames: int, stride: int, rng: random.Random) -> list[int]:
    """``num_frames`` indices ``stride`` apart at a random start; short videos repeat their last frame."""
    span = (num_frames - 1) * stride + 1
    start = rng.randint(0, max(0, num_video_frames - span))
    return [min(start + i * stride, num_video_frames - 1) for i in range(num_frames)]


def uniform_clip_indices(num_video_frames: int, num_frames: int, stride: int, num_clips: int) -> list[list[int]]:
    """``num_clips`` clips whose starts are spread evenly over the video (the test protocol)."""
    span = (num_frames - 1) * stride + 1
    room = max(0, num_video_frames - span)
    starts = [round(room * (k + 0.5) / num_clips) if num_clips > 1 else room // 2 for k in range(num_clips)]
    return [[min(s + i * stride, num_video_frames - 1) for i in range(num_frames)] for s in starts]


def tsn_indices(num_video_frames: int, segments: int, rng: random.Random | None) -> list[int]:
    """One frame from each of ``segments`` equal parts: random within it (rng), else its middle."""
    bounds = np.linspace(0, num_video_frames, segments + 1)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo, hi = int(a), max(int(a), int(np.ceil(b)) - 1)
        out.append(min(rng.randint(lo, hi) if rng else (lo + hi) // 2, num_video_frames - 1))
    return out


# --------------------------------------------------------------------------- the dataset

def load_views(path, mode: str, num_frames: int, stride: int, num_clips: int, transform,
               rng: random.Random | None = None, backend: str = "auto", short_side: int | None = None,
               tsn_random: bool = True, cache=None, modality: str = "rgb") -> torch.Tensor:
    """Decode the clips of one video and transform each: (views, C, T, H, W).

    ``mode`` "train": one random clip (needs ``rng``); "test": ``num_clips``
    evenly spaced clips (each giving one view per crop of ``transform``);
    "tsn": one frame per segment (random within the segment with
    ``tsn_random``, else its centre). ``rng`` also drives the random
    transforms. ``cache`` (a ``DecodedCache``) reads the frames from its folder. ``modality="flow"``:
    ``path`` is a stored flow file (``data.flow``), read as float flow in pixels. ``path`` may also be a
    ``Video`` already open (frames held in memory, for instance). Raises VideoDecodeError for a file that
    cannot be read.
    """
    as_tensor = flow_to_tensor if modality == "flow" else to_tensor
    if isinstance(path, Video):
        video = path
    elif modality == "flow":
        video = FlowVideo(path)
    else:
        video = cache.open(path) if cache is not None else open_video(path, backend=backend, short_side=short_side)
    with video:
        n = len(video)
        if mode == "train":
            clips = [random_clip_indices(n, num_frames, stride, rng)]
        elif mode == "test":
            clips = uniform_clip_indices(n, num_frames, stride, num_clips)
        else:
            clips = [tsn_indices(n, num_frames, rng if tsn_random else None)]
        wanted = sorted({i for c in clips for i in c})
        frames = video.get_frames(wanted)
    position = {f: k for k, f in enumerate(wanted)}
    views = []
    for c in clips:
        clip = transform(as_tensor(frames[[position[i] for i in c]]), rng)
        views.append(clip if clip.dim() == 5 else clip[None])
    return torch.cat(views)


def flow_paths(relative_paths, flow_root) -> list[Path]:
    """The stored flow file of every video; ValueError naming the folder when it holds no flow at all."""
    if flow_root is None:
        raise ValueError("modality='flow' needs flow_root, the folder `lgd prepare flow` wrote")
    flow_root = Path(flow_root)
    if not flow_root.is_dir() or next(flow_root.rglob("*" + FLOW_SUFFIX), None) is None:
        raise ValueError(f"no flow files ({FLOW_SUFFIX}) under {flow_root}: run `lgd prepare flow --out {flow_root}` "
                         "for this dataset first")
    return [flow_path(flow_root, p) for p in relative_paths]


class ClipDataset(Dataset):
    """Clips from the ``present`` videos of a manifest (DataFrame or CSV path).

    Args:
        manifest: a manifest (see ``kinetics.build_manifest``); rows whose status
            is not ``present`` are left out (and counted in ``skipped``).
        root: the dataset root the manifest's paths are relative to (default:
            the manifest file's folder).
        mode: "train" | "test" | "tsn" (see the module doc).
        num_frames, stride: frames per clip and the step between them.
        num_clips: clips per video in test mode.
        transform: called as ``transform(clip (C, T, H, W), rng)``; default: the
            train or test transform at ``crop_size``.
        short_side: decode at this short side (saves decoding time).
        strict: raise on a bad video instead of replacing it.
        modality: "rgb" (the videos) or "flow" (their stored optical flow under ``flow_root``, one
            ``.flow.npz`` per video; see ``data.flow``; a flow clip has 2 channels).
        flow_root: the folder ``lgd prepare flow`` wrote (flow only).
        cache: a folder for decoded frames (``data.cache.DecodedCache``): each video is decoded once
            and read from there afterwards; None decodes every time.
        max_retries: replacements tried before giving up on a sample.
    """

    def __init__(self, manifest, root=None, mode: str = "train", num_frames: int = 8, stride: int = 2,
                 num_clips: int = 1, transform=None, crop_size: int = 112, backend: str = "auto",
                 short_side: int | None = None, strict: bool = False, seed: int = 0,
                 max_retries: int = 4, tsn_random: bool | None = None, cache=None, modality: str = "rgb",
                 flow_root=None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if num_frames < 1 or stride < 1 or num_clips < 1:
            raise ValueError(f"num_frames, stride and num_clips must be positive, got {num_frames}, {stride}, {num_clips}")
        if isinstance(manifest, (str, Path)):
            root = Path(root) if root is not None else Path(manifest).parent
            manifest = load_manifest(manifest)
        if root is None:
            raise ValueError("root is needed when the manifest is a DataFrame")
        self.root = Path(root)
        present = manifest["status"] == "present"
        self.skipped = int((~present).sum())
        self.items = manifest[present].reset_index(drop=True)
        if len(self.items) == 0:
            raise ValueError(f"no present videos in the manifest (root {self.root}); {self.skipped} missing or unreadable")
        self.paths = [safe_join(self.root, p, f"manifest row {i}") for i, p in enumerate(self.items["path"])]
        self.modality = modality
        if modality == "flow":
            self.paths = flow_paths(self.items["path"], flow_root)
        elif modality != "rgb":
            raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")
        self.labels = [int(x) for x in self.items["label_index"]]
        self.mode, self.num_frames, self.stride, self.num_clips = mode, num_frames, stride, num_clips
        random_views = mode == "train" or (mode == "tsn" and bool(tsn_random))
        if modality == "flow":
            default = flow_train_transform(crop_size) if random_views else flow_test_transform(crop_size)
        else:
            default = train_transform(crop_size) if random_views else test_transform(crop_size)
        self.transform = transform or default
        self.tsn_random = (mode == "tsn") if tsn_random is None else tsn_random
        self.backend, self.short_side = backend, short_side
        self.cache = DecodedCache(cache, backend, short_side) if cache else None
        self.strict, self.seed, self.max_retries = strict, seed, max_retries
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws for a new epoch (call before iterating, in every process)."""
        self.epoch = epoch

    def _rng(self, index: int, attempt: int) -> random.Random:
        return random.Random(f"{self.seed}-{self.epoch}-{index}-{attempt}")

    def load(self, index: int, rng: random.Random) -> torch.Tensor:
        """Decode and transform video ``index``. Raises VideoDecodeError."""
        views = load_views(self.paths[index], self.mode, self.num_frames, self.stride, self.num_clips,
                           self.transform, rng, self.backend, self.short_side, self.tsn_random, self.cache,
                           self.modality)
        return views[0] if self.mode != "test" else views

    def __getitem__(self, index: int):
        failed = []
        current = index
        for attempt in range(self.max_retries + 1):
            rng = self._rng(index, attempt)
            try:
                clip = self.load(current, rng)
                break
            except (VideoDecodeError, IndexError, ValueError, OSError) as e:
                if self.strict:
                    if isinstance(e, VideoDecodeError):
                        raise
                    raise VideoDecodeError(self.paths[current], f"{type(e).__name__}: {e}") from e
                log.warning("skipping %s (%s); using another video instead", self.paths[current], e)
                failed.append(current)
                current = rng.randrange(len(self))
        else:
            raise VideoDecodeError(self.paths[index], f"this and {self.max_retries} replacement videos failed: "
                                   + ", ".join(str(self.paths[i]) for i in failed))
        failed_t = torch.full((self.max_retries + 1,), -1, dtype=torch.long)
        failed_t[: len(failed)] = torch.tensor(failed, dtype=torch.long)
        return clip, self.labels[current], index, failed_t


class FailureReport:
    """Counts the videos that failed to decode during an epoch (from each batch's ``failed``)."""

    def __init__(self, dataset: ClipDataset):
        self.dataset = dataset
        self.failed: dict[int, int] = {}

    def update(self, failed: torch.Tensor) -> None:
        for i in failed.flatten().tolist():
            if i >= 0:
                self.failed[i] = self.failed.get(i, 0) + 1

    @property
    def count(self) -> int:
        return sum(self.failed.values())

    def paths(self) -> list[str]:
        return [str(self.dataset.paths[i]) for i in sorted(self.failed)]

    def summary(self) -> str:
        if not self.failed:
            return "no video failed to decode"
        return (f"{self.count} failed decode(s) in {len(self.failed)} video(s), replaced by others: "
                + ", ".join(self.paths()))

    def reset(self) -> None:
        self.failed.clear()
