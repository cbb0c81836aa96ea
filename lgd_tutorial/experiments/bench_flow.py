"""What optical flow costs (``lgd data bench --flow``): frames/s per core of each OpenCV method, how far each
lies from TV-L1, and what extracting Kinetics-400's flow would take at that rate."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.encode import write_video
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


# --------------------------------------------------------------------------- on-the-fly flow in lgd predict

RUN_MEASURED = ("import resource, subprocess, sys, time\n"
                "start = time.perf_counter()\n"
                "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start, "
                "done.returncode, repr(done.stderr[-400:]))")


def panning_video(path, seconds: float = 10.0, height: int = 1080, width: int = 1920, fps: int = 25,
                  speed: int = 4, seed: int = 0) -> Path:
    """An H.264 video of a camera panning ``speed`` pixels a frame across a textured strip: real motion for the
    flow, written from a strided view of one wide image (no frame array is held in memory)."""
    from numpy.lib.stride_tricks import as_strided

    count = int(round(seconds * fps))
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 1, (width + speed * count) // 8 + 1, 3), dtype=np.uint8)
    strip = np.ascontiguousarray(coarse.repeat(8, axis=0).repeat(8, axis=1)[:height, :width + speed * count])
    frames = as_strided(strip, shape=(count, height, width, 3),
                        strides=(speed * strip.strides[1], *strip.strides), writeable=False)
    return write_video(path, frames, fps=fps)


def predict_cost(video, models=("lgd3d_tiny_beacon_both", "lgd3d_tiny_synthetic_flow"), python: str | None = None,
                 env: dict | None = None) -> dict:
    """Peak memory (resident set of the whole ``lgd predict`` process) and wall time of ``lgd predict`` on
    ``video`` with shipped teaching models, in a fresh process: ``models`` = (RGB, flow) for two streams, or
    one model alone (the flow model alone computes flow too). ``python``/``env`` run another interpreter or
    checkout (to measure a version before a change in the same session)."""
    import subprocess
    import sys

    command = [python or sys.executable, "-m", "lgd_tutorial", "predict", "--pretrained", models[0],
               *(["--flow-pretrained", models[1]] if len(models) > 1 else []), "--device", "cpu", str(video)]
    out = subprocess.run([python or sys.executable, "-c", RUN_MEASURED, *command], capture_output=True, text=True,
                         env=env, check=True).stdout.split(maxsplit=3)
    return {"peak_mb": int(out[0]) / 1024, "seconds": float(out[1]), "status": int(out[2]), "stderr": out[3]}
