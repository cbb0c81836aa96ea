"""What optical flow costs (``lgd data bench --flow``): frames/s per core of each OpenCV method, how far each
lies from TV-L1, and what extracting Kinetics-400's flow would take at that rate."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..data.flow import METHODS, FlowUnavailable, estimator, grey
from ..data.synthetic import render


def flow_rates(sizes=(80, 256), methods=METHODS, pairs: int = 4, seed: int = 0) -> pd.DataFrame:
    """Frames/s on one core for each method and frame size, on synthetic frames with a moving object; how
    far each method lies from TV-L1 (mean end-point error, pixels); and what Kinetics-400 would cost at that
    rate (``kinetics_core_hours``). One OpenCV thread: per-core rates."""
    rows = []
    for size in sizes:
        frames = render(0, np.random.default_rng(seed), size=size, frames=pairs + 1)
        g = grey(frames)
        fields = {}
        for method in methods:
            try:
                compute = estimator(method)
            except FlowUnavailable as e:
                rows.append({"method": method, "size": size, "frames_per_s_per_core": float("nan"), "note": str(e)})
                continue
            compute(g[0], g[1])                                  # warm-up
            start = time.perf_counter()
            fields[method] = np.stack([compute(g[t], g[t + 1]) for t in range(pairs)])
            rows.append({"method": method, "size": size, "frames_per_s_per_core": pairs / (time.perf_counter() - start),
                         "note": ""})
        for row in rows[-len(methods):]:
            if "tvl1" in fields and row["method"] in fields:
                row["epe_vs_tvl1"] = float(np.linalg.norm(fields[row["method"]] - fields["tvl1"], axis=-1).mean())
    table = pd.DataFrame(rows)
    table["kinetics400_core_hours"] = [kinetics_core_hours(r.frames_per_s_per_core, r.size)
                                       for r in table.itertuples()]
    return table


KINETICS400_VIDEOS = 246_535 + 19_907      # training + validation clips of the official lists
KINETICS_FRAMES_PER_VIDEO = 250           # 10-second clips at 25 fps (many are 30 fps: 300)


def kinetics_core_hours(frames_per_s_per_core: float, size: int, target=(340, 256)) -> float:
    """Core-hours to extract Kinetics-400's flow at ``target`` (w, h), from a rate measured on size x size
    frames, scaled by the pixel count (TV-L1's and DIS's work grows about linearly with it)."""
    rate = frames_per_s_per_core * (size * size) / (target[0] * target[1])
    return KINETICS400_VIDEOS * KINETICS_FRAMES_PER_VIDEO / rate / 3600
