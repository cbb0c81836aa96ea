"""Decoded-frame cache: decode each video once with the real decoder, then read its frames from disk.

    cache = DecodedCache("data/synthetic/.decoded")
    with cache.open("data/synthetic/train/wait/x.mp4") as video:   # decodes and stores on the first call
        frames = video.get_frames([0, 2, 4])                          # uint8 (T, H, W, 3), as open_video gives

Decoding a short video costs milliseconds of probing, opening and decoding;
reading the same frames back from an uncompressed ``.npy`` file costs a
fraction of one. For a small dataset read many times (the synthetic teaching
set: 1,280 videos, every epoch, in every run) that is most of a CPU epoch.
For Kinetics it is not worth it: the decoded frames are tens of times larger
than the compressed video (the cache of the synthetic set is about 400 MB),
so the recipes turn it on only for the synthetic data (``data.decoded_cache``).

The frames come from ``open_video`` with the dataset's backend and decode
size, all frames at once, so a cached clip is the clip the decoder would
give. An entry is keyed by the file's resolved path, size and modification
time and by the decode settings: a changed video is decoded again. Entries are
written atomically (a killed run leaves no half file), so loader workers and
concurrent runs can share one folder. A video that fails to decode is not
cached: it raises ``VideoDecodeError`` every time, as it would without a cache.

``fill(paths)`` decodes whatever the cache lacks in one process per core before
training starts, instead of one video at a time inside the first epoch (on 2
cores that halves the time the first epoch spends decoding).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..utils import atomic_path
from .video import Video, VideoDecodeError, open_video


class CachedVideo(Video):
    """Frames of a decoded video held in a (memory-mapped) uint8 array (T, H, W, 3)."""

    backend = "cache"

    def __init__(self, path, frames: np.ndarray):
        super().__init__(path, None, None)
        self.frames = frames

    @property
    def fps(self) -> float:
        raise AttributeError(f"{self.path} is read from stored frames, which keep no timing; open the video for its fps")

    def __len__(self) -> int:
        return len(self.frames)

    def _read(self, indices: list[int]) -> np.ndarray:
        return np.ascontiguousarray(self.frames[indices])


class DecodedCache:
    """A folder of decoded videos, one ``.npy`` file each (see the module doc)."""

    MAPPED = 4096          # entries kept memory-mapped per process (opening a map costs more than reading a clip)

    def __init__(self, folder, backend: str = "auto", short_side: int | None = None):
        self.folder = Path(folder)
        self.backend, self.short_side = backend, short_side
        self._mapped: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._resolved: dict[str, Path] = {}     # resolving a path walks every folder of it: once per path

    def _map(self, entry: Path) -> np.ndarray:
        """The entry's frames as a read-only memory map, kept open for the next read of the same entry."""
        frames = self._mapped.pop(entry, None)
        if frames is None:
            frames = np.load(entry, mmap_mode="r")
            while len(self._mapped) >= self.MAPPED:
                self._mapped.popitem(last=False)
        self._mapped[entry] = frames
        return frames

    def entry(self, path) -> Path:
        """The cache file for ``path`` under the current decode settings (OSError if ``path`` is missing)."""
        path = self._resolved.get(str(path)) or self._resolved.setdefault(str(path), Path(path).resolve())
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{self.backend}|{self.short_side}"
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"

    def open(self, path) -> CachedVideo:
        """The video's frames, decoded now (and stored) unless the cache holds them."""
        try:
            entry = self.entry(path)
        except OSError as e:
            raise VideoDecodeError(path, f"{type(e).__name__}: {e}") from e
        if entry in self._mapped or entry.exists():
            try:
                return CachedVideo(path, self._map(entry))
            except (OSError, ValueError):      # a damaged entry (disk full, edited): decode again
                self._mapped.pop(entry, None)
                entry.unlink(missing_ok=True)
        with open_video(path, backend=self.backend, short_side=self.short_side) as video:
            frames = video.get_frames(range(len(video)))
        with atomic_path(entry) as tmp:
            np.save(tmp, frames)
        return CachedVideo(path, frames)

    def holds(self, path) -> bool:
        """Whether the cache has an entry for ``path`` under the current decode settings."""
        try:
            return self.entry(path).exists()
        except OSError:
            return False

    def fill(self, paths, workers: int | None = None) -> int:
        """Decode every video of ``paths`` the cache lacks, in ``workers`` processes (default: one per core);
        returns how many were decoded. A video that fails to decode is skipped here: the dataset reports it
        when it reads it, as it would without a cache."""
        missing = [str(p) for p in paths if not self.holds(p)]
        workers = max(1, min(workers or os.cpu_count() or 1, len(missing)))
        jobs = [(str(self.folder), self.backend, self.short_side, p) for p in missing]
        if workers == 1:
            return sum(map(_fill_one, jobs))
        with ProcessPoolExecutor(workers) as pool:
            return sum(pool.map(_fill_one, jobs, chunksize=16))

    def __repr__(self) -> str:
        return f"DecodedCache({str(self.folder)!r}, backend={self.backend!r}, short_side={self.short_side})"


def _fill_one(job) -> bool:
    """Decode one video into the cache (a worker of ``DecodedCache.fill``); False if it failed to decode."""
    folder, backend, short_side, path = job
    try:
        DecodedCache(folder, backend, short_side).open(path)
    except VideoDecodeError:
        return False
    return True
