"""Reading frames from video files: one small interface, two backends.

    video = open_video("clip.mp4")            # decord, PyAV when decord cannot
    len(video), video.fps                      # frame count, average frame rate
    frames = video.get_frames([0, 4, 8])       # uint8 numpy (T, H, W, 3), RGB

``short_side=`` decodes at a reduced size (the shorter side scaled to that
many pixels, aspect kept, even sizes). Frames come out as a viewer would show
them: rotation metadata (phones record portrait video as rotated landscape)
is applied by both backends.

What real files contain, and what happens here:
- rotation metadata: read with PyAV, applied to the frames of either backend;
- variable frame rate: frames are addressed by index; ``fps`` is the average;
- B-frames (packets out of presentation order): frames are ordered by
  presentation time;
- several video streams (e.g. a cover picture): the largest real video stream
  is used, as ffmpeg would choose;
- 10-bit or full-range colour: converted to 8-bit RGB by the backend;
- audio tracks: ignored.

A file that neither backend can read raises ``VideoDecodeError`` with the
path and the reason. decord raises ``RuntimeError`` and also
``decord.DECORDError``, which is not a subclass of it; both are caught here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import BACKENDS


class VideoDecodeError(RuntimeError):
    """A video that cannot be opened or decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path}: {reason}")


def _decord_errors() -> tuple[type[BaseException], ...]:
    try:
        import decord
        return (RuntimeError, decord.DECORDError, ValueError, IndexError)
    except ImportError:                                     # decord not installed
        return (RuntimeError, ValueError, IndexError)


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
        return True
    except ImportError:
        return False


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the chosen video stream (read with PyAV, no decoding)."""

    width: int            # as stored (before rotation)
    height: int
    rotation: int         # degrees counter-clockwise to turn the stored frame for display: 0, 90, 180, 270
    stream_index: int     # index among the file's video streams
    fps: float

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's own log lines ("[h264 @ 0x...] Invalid NAL unit size") out of the terminal: a damaged video is
    reported once, by the error this module raises, not by a screen of decoder messages. Only FFmpeg's own
    level is lowered (``av.logging.set_libav_level``); no Python callback is installed, which would take the
    GIL from FFmpeg's decoding threads. ``av.logging.set_libav_level(av.logging.WARNING)`` (and decord's
    ``decord.logging.set_level``) bring them back."""
    import av.logging

    if not getattr(quiet_ffmpeg, "done", False):
        av.logging.set_libav_level(av.logging.FATAL)
        if decord_available():                            # decord links its own FFmpeg, with its own level
            import decord.logging

            decord.logging.set_level(decord.logging.FATAL)
        quiet_ffmpeg.done = True


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoDecodeError(path, "no such file")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file (a directory?)")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


# FFmpeg demuxers that turn any text into "video" (ANSI art and its relatives): a .txt, .csv or log file opens
# as a video stream with them, and would be classified as if it were one.
TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})


def _choose_stream(streams) -> int:
    """The index (among video streams) of the largest stream that is not an attached picture."""
    best, best_area = None, -1
    for i, s in enumerate(streams):
        if s.disposition & 0x400:                       # AV_DISPOSITION_ATTACHED_PIC: cover art
            continue
        if s.codec_context is None:                     # a codec FFmpeg has no decoder for
            continue
        area = (s.codec_context.width or 0) * (s.codec_context.height or 0)
        if area > best_area:
            best, best_area = i, area
    if best is None:
        codecs = ", ".join(str(getattr(s, "codec_tag", "?")) for s in streams)
        raise ValueError(f"no decodable video stream (unknown codec: {codecs})")
    return best


def _rotation_of(container, stream) -> int:
    """Display rotation in degrees counter-clockwise, from the display matrix of the first frame."""
    angle = 0
    for frame in container.decode(stream):
        angle = int(getattr(frame, "rotation", 0) or 0)
        break
    if not angle:
        tag = stream.metadata.get("rotate")                 # older muxers: a "rotate" tag, clockwise
        if tag:
            angle = -int(float(tag))
    return (int(round(angle / 90)) * 90) % 360


def probe(path) -> VideoInfo:
    """Read stream metadata with PyAV (no decoding). Raises VideoDecodeError."""
    import av
    quiet_ffmpeg()
    path = Path(path)
    _check_file(path)
    try:
        with av.open(str(path)) as container:
            if container.format.name in TEXT_FORMATS:
                raise VideoDecodeError(path, f"not a video: FFmpeg reads this file as text ({container.format.name} "
                                             "demuxer), not as a video container")
            streams = container.streams.video
            if not streams:
                raise VideoDecodeError(path, "the file has no video stream")
            index = _choose_stream(streams)
            s = streams[index]
            rate = s.average_rate or s.guessed_rate or s.base_rate
            return VideoInfo(width=s.codec_context.width, height=s.codec_context.height,
                             rotation=_rotation_of(container, s), stream_index=index,
                             fps=float(rate) if rate else 0.0)
    except VideoDecodeError:
        raise
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError) as e:
        raise VideoDecodeError(path, f"{type(e).__name__}: {e}") from e


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side at ``short_side`` (even numbers), or unchanged."""
    if not short_side:
        return width, height
    if short_side < 2:
        raise ValueError(f"short_side must be at least 2, got {short_side}")
    if width <= height:
        w, h = short_side, height * short_side / width
    else:
        w, h = width * short_side / height, short_side
    even = lambda v: max(2, int(round(v / 2)) * 2)  # noqa: E731
    return even(w), even(h)


def rotate(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn (T, H, W, 3) frames counter-clockwise by ``rotation`` degrees (a multiple of 90)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frames, k=k, axes=(1, 2))) if k else frames


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"decord: {type(e).__name__}: {text[0] if text else ''}"


class Video:
    """The interface both backends provide."""

    backend = ""

    def __init__(self, path, short_side: int | None, info: VideoInfo):
        self.path = Path(path)
        self.short_side = short_side
        self.info = info

    @property
    def fps(self) -> float:
        return self.info.fps

    def __len__(self) -> int:
        raise NotImplementedError

    def _read(self, indices: list[int]) -> np.ndarray:
        raise NotImplementedError

    def get_frames(self, indices) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 (T, H, W, 3) RGB."""
        indices = [int(i) for i in indices]
        n = len(self)
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise IndexError(f"{self.path}: frame indices {bad[:5]} outside 0..{n - 1}")
        if not indices:
            raise ValueError("get_frames needs at least one index")
        return self._read(indices)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={len(self)}, fps={self.fps:.2f})"


class DecordVideo(Video):
    """decord's VideoReader: fast random access, resizing inside the decoder.

    decord2 applies the rotation metadata itself, so sizes given to it are display sizes.
    """

    backend = "decord"

    def __init__(self, path, short_side: int | None = None, info: VideoInfo | None = None):
        path = Path(path)
        info = info or probe(path)
        super().__init__(path, short_side, info)
        self._size = scaled_size(*info.display_size, short_side) if short_side else None
        self._reader = self._open(self._size)
        self._length = len(self._reader)
        if self._length <= 0:
            raise VideoDecodeError(path, "decord: no frames")

    def _open(self, size):
        import decord
        kwargs = {"width": size[0], "height": size[1]} if size else {}
        try:
            return decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1, **kwargs)
        except _decord_errors() as e:
            raise VideoDecodeError(self.path, _reason(e)) from e

    def __len__(self) -> int:
        return self._length

    def _read(self, indices):
        try:
            return self._reader.get_batch(indices).asnumpy()
        except _decord_errors() as e:
            if "size must exactly match" not in str(e):
                raise VideoDecodeError(self.path, _reason(e)) from e
        # decord2 3.4 hands out rows padded to an aligned stride for some frame widths (96 px, say),
        # and then its batch copy fails; frame by frame, the padding can be cut off.
        try:
            return np.stack([self._unpad(self._reader[i].asnumpy()) for i in indices])
        except _decord_errors() as e:
            raise VideoDecodeError(self.path, _reason(e)) from e

    def _unpad(self, frame: np.ndarray) -> np.ndarray:
        width, height = self._size or self.info.display_size
        rows = frame.reshape(height, -1)
        if rows.shape[1] < width * 3:
            raise VideoDecodeError(self.path, f"decord: a {frame.shape} frame cannot hold {width}x{height} RGB")
        return np.ascontiguousarray(rows[:, : width * 3].reshape(height, width, 3))

    def close(self) -> None:
        self._reader = None


class PyAVVideo(Video):
    """PyAV (FFmpeg): slower for random access, but reads almost anything FFmpeg can.

    The frame count comes from demuxing the packets (no decoding). Reading
    decodes from the start of the stream up to the last requested frame,
    ordering frames by presentation time.
    """

    backend = "pyav"

    def __init__(self, path, short_side: int | None = None, info: VideoInfo | None = None):
        path = Path(path)
        info = info or probe(path)
        super().__init__(path, short_side, info)
        w, h = scaled_size(*info.display_size, short_side)
        self._size = (h, w) if info.rotation in (90, 270) else (w, h)      # stored orientation
        self._length = self._count_frames()
        if self._length <= 0:
            raise VideoDecodeError(path, "pyav: the video stream has no frames")

    def __len__(self) -> int:
        return self._length

    def _open(self):
        import av
        quiet_ffmpeg()
        container = av.open(str(self.path))
        return container, container.streams.video[self.info.stream_index]

    def _count_frames(self) -> int:
        import av
        quiet_ffmpeg()
        try:
            container, stream = self._open()
            with container:
                return sum(1 for p in container.demux(stream) if p.size > 0)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoDecodeError(self.path, f"pyav: {type(e).__name__}: {e}") from e

    def _read(self, indices):
        import av
        quiet_ffmpeg()
        wanted = set(indices)
        last = max(wanted)
        frames: dict[int, np.ndarray] = {}
        try:
            container, stream = self._open()
            with container:
                stream.thread_type = "AUTO"
                decoded = []
                for frame in container.decode(stream):
                    decoded.append(frame)
                    if len(decoded) > last + 16:    # decoders emit in presentation order; a margin for odd files
                        break
                decoded.sort(key=lambda f: (f.pts if f.pts is not None else 0))
                w, h = self._size
                for i in wanted:
                    if i < len(decoded):
                        frames[i] = decoded[i].to_ndarray(format="rgb24", width=w, height=h)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoDecodeError(self.path, f"pyav: {type(e).__name__}: {e}") from e
        if not frames:
            raise VideoDecodeError(self.path, "pyav: no frame could be decoded")
        # Packets counted but not decodable at the end of a damaged file: repeat the last good frame.
        last_good = frames[max(frames)]
        return rotate(np.stack([frames.get(i, last_good) for i in indices]), self.info.rotation)


class FallbackVideo(Video):
    """backend="auto": decord, and PyAV for the files (or reads) decord fails on."""

    def __init__(self, path, short_side: int | None = None):
        path = Path(path)
        info = probe(path)
        super().__init__(path, short_side, info)
        self._video: Video
        try:
            if not decord_available():
                raise VideoDecodeError(path, "decord is not installed")
            self._video = DecordVideo(path, short_side, info)
        except VideoDecodeError as first:
            try:
                self._video = PyAVVideo(path, short_side, info)
            except VideoDecodeError as second:
                raise VideoDecodeError(path, f"{first.reason}; {second.reason}") from second

    @property
    def backend(self) -> str:
        return self._video.backend

    def __len__(self) -> int:
        return len(self._video)

    def _read(self, indices):
        try:
            return self._video._read(indices)
        except VideoDecodeError:
            if isinstance(self._video, PyAVVideo):
                raise
            self._video = PyAVVideo(self.path, self.short_side, self.info)
            return self._video._read(indices)

    def close(self) -> None:
        self._video.close()


def open_video(path: str | os.PathLike, backend: str = "auto", short_side: int | None = None) -> Video:
    """Open a video for frame access. ``backend``: "auto" (decord, else PyAV), "decord" or "pyav"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = Path(path)
    if backend == "decord":
        return DecordVideo(path, short_side)
    if backend == "pyav":
        return PyAVVideo(path, short_side)
    try:
        return FallbackVideo(path, short_side)
    except VideoDecodeError as e:
        raise VideoDecodeError(path, e.reason) from e
