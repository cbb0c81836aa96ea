"""What ``lgd predict`` costs (``lgd data bench --predict``): the peak memory and time of on-the-fly optical flow
on a long high-resolution video, and videos/s with several videos per forward pass against one by one."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import synthetic
from ..data.encode import write_video
from ..prediction import from_pretrained, predict


RUN_MEASURED = ("import resource, subprocess, sys, time\n"
                "start = time.perf_counter()\n"
                "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start, "
                "done.returncode, repr(done.stderr[-400:]))")


def panning_video(path, seconds: float = 10.0, height: int = 1080, width: int = 1920, fps: int = 25,
                  speed: int = 4, seed: int = 0) -> Path:
    """An H.264 video of a camera panning ``speed`` pixels a frame across a textured strip: real motion for the
    flow, written from a strided view of one wide image (no frame array is held in memory)."""
    from numpy.lib.stride_tricks import as_strided      # a NumPy helper, only needed here

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


def batch_rates(folder, model: str = "lgd3d_tiny_beacon_both", batches=(1, 8), rounds: int = 3,
                videos: int = 32, seed: int = 0) -> list[dict]:
    """Videos/s of ``lgd predict`` (in this process) on ``videos`` short synthetic clips, for each batch size,
    measured in turn over ``rounds`` rounds (so drift in the machine's speed falls on all alike); the median."""
    per_class = max(1, videos // len(synthetic.CLASSES))
    root = synthetic.generate(Path(folder) / "clips", seed=seed, videos_per_class=per_class, val_per_class=0,
                              progress=False)
    paths = sorted(Path(root).rglob("*.mp4"))
    predictor = from_pretrained(model)
    times = {b: [] for b in batches}
    for _ in range(rounds):
        for b in batches:
            start = time.perf_counter()
            predict(predictor, paths, show_progress=False, batch=b)
            times[b].append(time.perf_counter() - start)
    return [{"what": f"{model}, {len(paths)} videos, batch {b}", "videos_per_s": len(paths) / statistics.median(t)}
            for b, t in times.items()]


def report(folder) -> str:
    """The README's paragraph on lgd predict's cost, from a folder ``lgd data bench --predict`` wrote (and the
    measurement of the code before, ``before.csv``, where there is one)."""
    folder = Path(folder)
    now = pd.read_csv(folder / "predict.csv").set_index("what")
    rates = pd.read_csv(folder / "predict_batch.csv")
    meta = json.loads((folder / "predict_bench.json").read_text())
    alone, both = now.loc["flow model alone"], now.loc["two streams"]
    _, height, length = Path(alone["video"]).stem.split("_")
    text = (f"On a generated {height} panning video of {length[:-1]} s, `lgd predict` with the shipped flow model "
            f"alone peaks at {alone['peak_mb']:,.0f} MB (the whole process) and takes {alone['seconds']:.1f} s; "
            f"with the RGB model as two streams, {both['peak_mb']:,.0f} MB and {both['seconds']:.1f} s")
    if (folder / "before.csv").is_file():
        before = pd.read_csv(folder / "before.csv").iloc[0]
        text += (f" (the code before, at commit {before['commit']}, decoded every frame at full size and computed "
                 f"the whole video's flow: {before['peak_mb']:,.0f} MB and {before['seconds']:.1f} s)")
    one, eight = rates["videos_per_s"].iloc[0], rates["videos_per_s"].iloc[-1]
    text += (f". Several videos per forward pass: {eight:.1f} videos/s at batch 8 against {one:.1f} one by one "
             f"({eight / one:.2f}x; {rates['what'].iloc[0].split(',')[1].strip()}, medians of rounds taken in turn). "
             f"Measured by `{meta['command']}` at commit {meta['commit']} ({meta['machine']}).")
    return text
