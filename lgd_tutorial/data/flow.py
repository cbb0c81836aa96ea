"""Optical flow for the two-stream network: extraction, storage and reading (``lgd prepare flow``).

    lgd prepare flow --root data/synthetic --manifest manifest_train.csv --out data/synthetic_flow --method tvl1

Methods (OpenCV):
- ``tvl1``: dual TV-L1 (Zach, Pock and Bischof 2007), the flow two-stream video
  networks (TSN, I3D, LGD) were trained on. Needs OpenCV's contrib modules
  (``opencv-contrib-python-headless``; ``make`` installs it) and is slow.
- ``dis``: dense inverse search (Kroeger et al. 2016), OpenCV's fast method, in
  its "medium" preset. ``lgd data bench --flow`` measures both here, and how
  far DIS lies from TV-L1 (end-point error).

**Storage.** One file per video, ``<out>/<the video's path relative to the
root>`` with ``.flow.npz`` added to its full name (``x.avi.flow.npz``, so
``x.avi`` and ``x.mp4`` keep one each; NumPy's zip, deflate-compressed):

- ``flow``: uint8 (T - 1, H, W, 2), the x and y displacement in pixels from
  frame t to frame t + 1, clipped to [-bound, bound] and mapped linearly to
  0..255: q = round((f + bound) * 255 / (2 bound)). Reading back gives
  f' = q * 2 bound / 255 - bound, within bound / 255 of the clipped flow (half a
  step). The bound, 20 pixels by default as in TSN, is stored in the file;
- ``bound``, ``method``, ``short_side`` (0: as decoded) and ``frames`` (the
  video's frame count, T): a reader checks that the flow still matches the video
  it came from, and a rerun keeps a file only when it was made with the same
  settings (else it computes it again and the manifest says why).

Flow is computed on grey frames at the decode size (``--short-side``), a chunk
of frames at a time (memory does not grow with the video's length); a clip
of flow has one frame less than the video. Each file is written atomically, so
a killed run can be started again: finished videos are skipped, and the
manifest (``flow_manifest.csv``: path, flow_path, status done | skipped |
failed, reason, frames, seconds) says what happened to every video. A video
that cannot be decoded gets ``failed`` with the reason, and the run goes on.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_path
from ..utils import progress as progress_bar
from .kinetics import VIDEO_EXTENSIONS, load_manifest, safe_join
from .cache import CachedVideo
from .video import Video, VideoDecodeError, open_video

METHODS = ("tvl1", "dis")
DEFAULT_BOUND = 20.0
SUFFIX = ".flow.npz"
MANIFEST = "flow_manifest.csv"


class FlowUnavailable(RuntimeError):
    """The OpenCV build lacks the method (TV-L1 needs the contrib modules)."""


def estimator(method: str):
    """A function (previous grey frame, next grey frame) -> float32 flow (H, W, 2) for ``method``."""
    import cv2

    if method == "tvl1":
        optflow = getattr(cv2, "optflow", None)
        if optflow is None or not hasattr(optflow, "DualTVL1OpticalFlow_create"):
            raise FlowUnavailable("TV-L1 needs OpenCV's contrib modules: pip install --force-reinstall --no-deps "
                                  "opencv-contrib-python-headless==5.0.0.93 (make does this), or use --method dis")
        algorithm = optflow.DualTVL1OpticalFlow_create()
    elif method == "dis":
        algorithm = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cv2.setNumThreads(1)                    # one process per core does the parallel work

    def compute(previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        return algorithm.calc(previous, following, None)
    return compute


def grey(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (T, H, W, 3) -> uint8 grey (T, H, W) (ITU-R BT.601 weights, as OpenCV)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(frames.astype(np.float32) @ weights), 0, 255).astype(np.uint8)


def compute_flow(frames: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Flow between consecutive frames: uint8 RGB (T, H, W, 3) -> float32 (T - 1, H, W, 2), in pixels."""
    if len(frames) < 2:
        raise ValueError(f"flow needs at least 2 frames, got {len(frames)}")
    compute, g = estimator(method), grey(frames)
    return np.stack([compute(g[t], g[t + 1]) for t in range(len(g) - 1)]).astype(np.float32)


class PairwiseFlow(Video):
    """The optical flow of an open video, computed only for the flow frames asked for.

    Flow frame t is the flow from video frame t to t + 1, so a video of T frames has T - 1 flow frames.
    ``get_frames(indices)`` decodes just frames t and t + 1 of each index (at the open video's short side),
    computes their flow with ``method`` and returns it quantized to 8 bits and back, as ``lgd prepare flow``
    stores it: memory and time are set by the frames a model's views read, not by the video's length.
    """

    backend = "flow"

    def __init__(self, video: Video, method: str = "dis", bound: float = DEFAULT_BOUND):
        super().__init__(video.path, video.short_side, video.info)
        self.video, self.method, self.bound = video, method, bound

    def __len__(self) -> int:
        return max(0, len(self.video) - 1)

    def _read(self, indices: list[int]) -> np.ndarray:
        unique = sorted(set(indices))
        needed = sorted(set(unique) | {t + 1 for t in unique})
        g = grey(self.video.get_frames(needed))
        position = {t: k for k, t in enumerate(needed)}
        compute = estimator(self.method)
        flows = {t: compute(g[position[t]], g[position[t + 1]]) for t in unique}
        q = quantize(np.stack([flows[t] for t in indices]).astype(np.float32), self.bound)
        return dequantize(q, self.bound)


def quantize(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """float flow -> uint8: clipped to [-bound, bound], mapped linearly to 0..255 (see the module doc)."""
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound}")
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize(q: np.ndarray, bound: float) -> np.ndarray:
    """uint8 -> float32 flow in pixels, within bound / 255 of the clipped flow that was quantized."""
    return q.astype(np.float32) * np.float32(2 * bound / 255.0) - np.float32(bound)


def flow_path(flow_root, relative) -> Path:
    """Where the flow of the video at ``relative`` (relative to the dataset root) is stored: its full file name
    plus ``.flow.npz``, so ``x.avi`` and ``x.mp4`` in one folder keep two files."""
    relative = Path(relative)
    return Path(flow_root) / relative.parent / (relative.name + SUFFIX)


def save_flow(path, q: np.ndarray, bound: float, method: str, frames: int, short_side: int | None = None) -> None:
    """Write one video's quantized flow atomically (a killed run leaves no half file), with the settings that
    made it (``short_side`` 0: computed at the size the video decoded to)."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, flow=q, bound=np.float32(bound), method=np.str_(method), frames=np.int32(frames),
                            short_side=np.int32(short_side or 0))


def settings_text(method: str, bound: float, short_side: int | None) -> str:
    return f"{method}, bound {bound:g}, " + (f"short side {short_side}" if short_side else "short side as decoded")


def frame_mismatch(stored: int, video: int) -> str:
    return f"frame count mismatch: the flow was computed from {stored} frames, the RGB video has {video}"


def read_stored(path, *keys):
    """The named entries of a flow file (only those are inflated); VideoDecodeError naming the file when it
    is missing or is not one."""
    try:
        with np.load(path) as data:
            values = [data[k] for k in keys]
    except FileNotFoundError:
        raise VideoDecodeError(path, "no flow file: run `lgd prepare flow` for this dataset") from None
    except (OSError, ValueError, KeyError) as e:
        raise VideoDecodeError(path, f"not a flow file ({type(e).__name__}: {e})") from e
    kinds = {"bound": float, "method": str, "frames": int, "short_side": int}
    return [kinds[k](v) if k in kinds else v for k, v in zip(keys, values)]


class FlowVideo(CachedVideo):
    """A stored flow file read like a video: ``get_frames`` gives float32 (T, H, W, 2) in pixels.

    ``expected_frames`` (the RGB video's frame count, when known) must match the count stored with the
    flow, else VideoDecodeError names both: flow computed from another version of the video.
    """

    backend = "flow"

    def __init__(self, path, expected_frames: int | None = None):
        q, self.bound, self.method, self.source_frames = read_stored(path, "flow", "bound", "method", "frames")
        if q.ndim != 4 or q.shape[-1] != 2 or len(q) != self.source_frames - 1:
            raise VideoDecodeError(path, f"flow of shape {q.shape} does not hold {self.source_frames} - 1 "
                                         "frames of (H, W, 2)")
        if expected_frames is not None and expected_frames != self.source_frames:
            raise VideoDecodeError(path, frame_mismatch(self.source_frames, expected_frames))
        super().__init__(path, q)

    def _read(self, indices: list[int]) -> np.ndarray:
        return dequantize(self.frames[indices], self.bound)


# --------------------------------------------------------------------------- extraction

def _newer(target, source) -> bool:
    """Whether ``target`` was written after ``source`` changed (False when ``source`` cannot be read)."""
    try:
        return Path(target).stat().st_mtime >= Path(source).stat().st_mtime
    except OSError:
        return False


CHUNK = 32             # flow frames computed per decoded chunk of a video (lgd prepare flow)


def extract_one(job: tuple) -> dict:
    """Compute and store the flow of one video; a row of the manifest (never raises for a bad video)."""
    source, target, relative, method, bound, short_side = job
    row = {"path": relative, "flow_path": str(target), "status": "done", "reason": "", "frames": 0, "seconds": 0.0}
    wanted = settings_text(method, bound, short_side)
    if Path(target).exists() and _newer(target, source):      # a video written after its flow: compute it again
        try:
            made = settings_text(*read_stored(target, "method", "bound", "short_side"))
            if made == wanted:
                row["frames"] = FlowVideo(target).source_frames
                return {**row, "status": "skipped", "reason": "already extracted"}
            row["reason"] = f"recomputed: the file held {made}; this run asks for {wanted}"
        except VideoDecodeError:
            row["reason"] = "recomputed: the file was damaged or made by an older version"
    start = time.perf_counter()
    try:
        with open_video(source, short_side=short_side) as video:
            count = len(video)
            if count < 2:
                raise ValueError(f"{count} frame(s); optical flow needs at least 2")
            parts = []                                      # a chunk of frames at a time: memory set by CHUNK
            for first in range(0, count - 1, CHUNK):
                frames = video.get_frames(range(first, min(count, first + CHUNK + 1)))
                parts.append(quantize(compute_flow(frames, method), bound))
        save_flow(target, np.concatenate(parts), bound, method, count, short_side)
    except (VideoDecodeError, ValueError, OSError) as e:
        return {**row, "status": "failed", "reason": f"{type(e).__name__}: {e}"}
    return {**row, "frames": count, "seconds": time.perf_counter() - start}


def folder_manifest(root) -> pd.DataFrame:
    """Every video file under ``root`` (recursively, by extension) as a manifest of present videos, for
    ``extract`` (``lgd prepare flow --videos``: folder in, folder out); ValueError when there is none."""
    root = Path(root)
    videos = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise ValueError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {root}")
    return pd.DataFrame({"path": [p.relative_to(root).as_posix() for p in videos], "status": "present"})


def extract(manifest, root, out, method: str = "tvl1", bound: float = DEFAULT_BOUND,
            short_side: int | None = None, workers: int = 1, progress: bool = True,
            manifest_name: str = MANIFEST) -> pd.DataFrame:
    """Flow for every ``present`` video of a dataset manifest (see the module doc); returns the flow manifest,
    also written to ``out / manifest_name``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "tvl1":
        estimator("tvl1")                                   # fail at once, not once per video
    if isinstance(manifest, (str, Path)):
        manifest = load_manifest(manifest)
    rows = manifest[manifest["status"] == "present"]
    out = Path(out)
    jobs = [(safe_join(root, p, f"manifest row {i}"), flow_path(out, p), p, method, bound, short_side)
            for i, p in zip(rows.index, rows["path"])]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            results = list(progress_bar(pool.map(extract_one, jobs, chunksize=1), progress, total=len(jobs),
                                        desc=f"flow ({method})"))
    else:
        results = [extract_one(job) for job in progress_bar(jobs, progress, desc=f"flow ({method})")]
    table = pd.DataFrame(results, columns=["path", "flow_path", "status", "reason", "frames", "seconds"])
    with atomic_path(out / manifest_name) as tmp:
        table.to_csv(tmp, index=False)
    return table


def status_counts(table: pd.DataFrame) -> str:
    counts = table["status"].value_counts()
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "skipped", "failed"))
