"""Writing small videos with PyAV: used by the synthetic dataset, the benchmarks and the tests."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..utils import atomic_path
from .kinetics import clip_filename


def write_video(path, frames: np.ndarray, fps: float = 25, codec: str = "libx264",
                pix_fmt: str = "yuv420p", crf: int = 23, bframes: int | None = None,
                rotation: int = 0, audio: bool = False, color_range: str | None = None,
                extra_stream: bool = False, options: dict | None = None) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) into ``path`` (written atomically).

    H.264 needs even sizes. ``rotation``: display rotation metadata in degrees
    counter-clockwise (a player turns the stored frames by it). ``audio`` adds
    a silent AAC track; ``extra_stream`` a second, smaller video stream;
    ``color_range="pc"`` marks full-range colour.
    """
    import av
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if codec in ("libx264", "h264", "libx265") and (h % 2 or w % 2):
        raise ValueError(f"{codec} needs even frame sizes, got {w}x{h}")
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    opts = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
    if bframes is not None:
        opts["bf"] = str(bframes)
    opts.update(options or {})
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4" if path.suffix == ".mp4" else None) as out:
        stream = out.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if color_range == "pc":
            stream.codec_context.color_range = 2          # AVCOL_RANGE_JPEG: full range
        if rotation:
            stream.set_display_rotation(rotation)
        small = None
        if extra_stream:
            small = out.add_stream(codec, rate=rate, options=opts)
            small.width, small.height, small.pix_fmt = max(2, w // 4 // 2 * 2), max(2, h // 4 // 2 * 2), "yuv420p"
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=22050)
            sound.layout = "mono"
        _encode_frames(out, stream, small, frames, pix_fmt, color_range)
        if sound is not None:
            _encode_silence(out, sound, int(22050 * t / float(rate)))
    return path


def _encode_frames(out, stream, small, frames: np.ndarray, pix_fmt: str, color_range: str | None) -> None:
    """Every frame into ``stream`` (and, scaled down, into the second stream ``small``), then flush both."""
    import av

    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if color_range == "pc":
            frame.color_range = 2
        out.mux(stream.encode(frame.reformat(format=pix_fmt)))
        if small is not None:
            f2 = frame.reformat(width=small.width, height=small.height, format="yuv420p")
            f2.pts = i
            out.mux(small.encode(f2))
    out.mux(stream.encode())
    if small is not None:
        out.mux(small.encode())


def _encode_silence(out, sound, samples: int, rate: int = 22050, chunk: int = 1024) -> None:
    """``samples`` zero samples into the mono audio stream ``sound``, then flush it."""
    import av

    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, n), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(sound.encode(frame))
    out.mux(sound.encode())


def pattern_frames(num_frames: int = 16, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Frames whose content identifies the frame: a bar at a position that moves with the index,
    plus a fixed corner mark (top-left red) so orientation can be checked."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 80, size=(height, width, 3), dtype=np.uint8)
    out = np.repeat(base[None], num_frames, axis=0)
    out[:, : height // 4, : width // 4] = (230, 20, 20)
    for i in range(num_frames):
        x = int((i + 0.5) * width / num_frames)
        out[i, height // 2:, max(0, x - 2): x + 2] = 255
    return out


def _write_clip(job) -> Path:
    path, frames, height, width, fps, seed = job
    return write_video(path, pattern_frames(frames, height, width, seed=seed), fps=fps)


def write_clip_videos(annotations, root, frames: int = 32, height: int = 120, width: int = 160, fps: float = 25,
                      workers: int = 1) -> list[Path]:
    """A generated video for every row of ``annotations`` (label, youtube_id, time_start, time_end), written where
    a Kinetics download puts it, ``root/label/{youtube_id}_{start:06d}_{end:06d}.mp4``: stand-ins that let the
    real-data path (validation, manifests, decoding, training) run where the videos cannot be fetched. The frames
    are ``pattern_frames`` (seeded by the row's position): they carry no sign of the label. Files already there
    are kept. Returns the paths, in the rows' order."""
    root = Path(root)
    jobs, paths = [], []
    for seed, row in enumerate(annotations.itertuples(index=False)):
        path = root / str(row.label) / clip_filename(row.youtube_id, row.time_start, row.time_end)
        paths.append(path)
        if not path.exists():
            jobs.append((path, frames, height, width, fps, seed))
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_clip, jobs, chunksize=8))
    else:
        for job in jobs:
            _write_clip(job)
    return paths
