# %% [markdown]
# # 6. Scaling up to the full dataset
#
# Notebooks 1 to 5 trained on a few hundred synthetic clips. Kinetics-400 has about 240,000 training clips of
# 10 seconds; training LGD-3D on it is a job for many GPUs over days, and most of what goes wrong is not the
# model: downloads break off, videos do not decode, the GPUs wait for the CPUs, and the cluster stops the job.
# This notebook walks through the steps in the order you meet them, each on something small enough to run here.
#
# **What you will learn**
# - how `lgd prepare download` fetches the CVDF archives: resume with HTTP Range, checksums, extraction;
# - how `lgd prepare resize` and `lgd prepare validate` turn a folder of videos into a manifest you can trust;
# - how to plan throughput: the clips/s one decoding worker gives, the workers a GPU needs, the GPU-hours of
#   an epoch; and whether bfloat16 changes what the teaching model learns;
# - how the same training script runs under `torchrun` on one node, on many, and under SLURM;
# - what happens on pre-emption: a signal, a checkpoint, and an exact resume.
#
# **What it needs:** a CPU; no GPU, no download (a small local HTTP server stands in for
# the Kinetics mirror, generated videos for YouTube clips). With `LGD_PROFILE=gpu` the throughput benchmark
# runs at full size and the DDP run uses every local GPU with NCCL.
#
# **Where the parts come from:** the training recipe in `k400_full.yaml` (SGD with Nesterov momentum, base LR
# 0.04 for 256 clips, 128 epochs, 16 x 224 x 224 clips) follows the authors' later public release
# (`notebooks/PAPER.md`). Everything about data preparation, throughput planning and the cluster set-up is this
# project's own tooling, not the authors'.

# %%
import hashlib
import http.server
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from lgd_tutorial import CONFIG_DIR, checkpoints_in, load_checkpoint
from lgd_tutorial.data import (clip_filename, load_classes, open_video, pattern_frames, prepare, summarize_manifest,
                               synthetic, write_video)
from lgd_tutorial.experiments import bench_data
from lgd_tutorial.notebooks import figure_path, profile, shipped_path, show_figure, work_path
from lgd_tutorial.utils import amp_dtype

GPU = profile() == "gpu"
WORK = work_path("notebook06")                        # git-ignored, not runs/; rebuilt on every run
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
print("profile:", profile(), "| work folder:", WORK)

# %% tags=["parameters"]
GPU_CLIPS_PER_S = 50.0      # assumed training rate of ONE GPU for LGD-3D R50 on 16 x 224 x 224 clips
KINETICS_CLIPS = 240_000    # Kinetics-400 training clips (about; some YouTube videos are gone)
GPUS_PER_NODE = 8

# %% [markdown]
# `GPU_CLIPS_PER_S` is a **planning assumption**, not a measurement: a round number for one current data-centre
# GPU training LGD-3D R50 at 16 x 224 x 224 with bf16. Put your own in: `lgd train` writes the rate it reached
# into the `clips_per_s` column of `metrics.csv`.
#
# ## 6.1 Download: resume, verify, extract
#
# The Common Visual Data Foundation (CVDF) mirrors Kinetics as tar archives. For each version and split there
# is a list of archive URLs, `{base}/{version}/{split}/k{version}_{split}_path.txt`, and an annotation CSV.
# The real command is
#
# ```bash
# lgd prepare download --version 400 --split train --root data/videos/k400      # ~450 GB; run it again to resume
# ```
#
# It fetches the list, then each archive with `prepare.fetch`: bytes go to `NAME.part`; when the connection
# drops, the next attempt asks for the rest with an HTTP `Range: bytes=N-` header instead of starting again;
# the size is checked against the server's total and, when the list gives one, the MD5. A finished archive is
# extracted (members that would land outside the root, and links, are refused), its clips are sorted into
# `root/split/label/` from the annotations, and a `.done` marker makes a second run skip it.
#
# We cannot reach the mirror from here, so we build a tiny one: five generated videos, named like Kinetics
# clips (`{youtube_id}_{start:06d}_{end:06d}.mp4`), packed into two archives and served on 127.0.0.1 by a
# server that supports `Range` and, to show the resume, **cuts the first transfer of the first archive half-way**.

# %%
SIZE = (240, 320) if GPU else (96, 128)               # (height, width) of the "downloaded" videos
LABELS = ["abseiling", "air drumming", "archery"]
clips = [("demo-aaaa01", 0, 10, "abseiling"), ("demo-aaaa02", 3, 13, "abseiling"),
         ("demo-bbbb01", 0, 10, "air drumming"), ("demo-bbbb02", 20, 30, "air drumming"),
         ("demo-cccc01", 5, 15, "archery")]
staging = WORK / "made"
for k, (yid, start, end, label) in enumerate(clips):
    write_video(staging / clip_filename(yid, start, end), pattern_frames(24, *SIZE, seed=k), fps=12)


def tar_gz(paths) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in paths:
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


made = sorted(staging.glob("*.mp4"))
archives = {"/400/val/part_000.tar.gz": tar_gz(made[:3]), "/400/val/part_001.tar.gz": tar_gz(made[3:])}
# The annotations also list a clip that no archive holds (gone from YouTube): validation will report it.
annotation_rows = ["label,youtube_id,time_start,time_end,split"]
annotation_rows += [f'"{label}",{yid},{start},{end},val' for yid, start, end, label in clips]
annotation_rows.append('"archery",demo-gone001,0,10,val')
files = {"/400/annotations/val.csv": ("\n".join(annotation_rows) + "\n").encode(), **archives}
print({name: f"{len(data):,} bytes" for name, data in archives.items()})

# %%
class MirrorServer(http.server.ThreadingHTTPServer):
    """A stand-in for the CVDF mirror: serves ``files`` with HTTP Range support; the first transfer of each
    path in ``cut_first`` stops half-way, as a dropped connection would. ``requests`` logs (path, Range)."""

    daemon_threads = True

    def __init__(self, files, cut_first=()):
        self.files, self.cut, self.requests = files, set(cut_first), []
        super().__init__(("127.0.0.1", 0), MirrorHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        data = self.server.files.get(self.path)
        self.server.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.path in self.server.cut:
            self.server.cut.discard(self.path)
            body = body[: len(body) // 2]
            self.wfile.write(body)
            self.connection.shutdown(socket.SHUT_RDWR)     # the connection drops mid-file
            return
        self.wfile.write(body)


mirror = MirrorServer(files, cut_first={"/400/val/part_000.tar.gz"})
threading.Thread(target=mirror.serve_forever, daemon=True).start()
files["/400/val/k400_val_path.txt"] = "".join(
    f"{mirror.url}{path} {hashlib.md5(data).hexdigest()}\n" for path, data in archives.items()).encode()
print("mirror at", mirror.url)

# %% [markdown]
# First one archive by hand with `fetch`, allowing **no** retry, so we see the broken transfer: the call fails,
# and the bytes received so far stay in `part_000.tar.gz.part`.

# %%
url = f"{mirror.url}/400/val/part_000.tar.gz"
target = WORK / "by_hand" / "part_000.tar.gz"
try:
    prepare.fetch(url, target, retries=0)
except prepare.DownloadError as error:
    print("DownloadError:", error)
part = target.with_name(target.name + ".part")
print(f"kept {part.stat().st_size:,} of {len(archives['/400/val/part_000.tar.gz']):,} bytes in {part.name}")

# %% [markdown]
# Run it again (as you would run the command again after a network failure): it asks only for the rest, then
# checks the size and the MD5 before renaming `.part` to the archive's name.

# %%
md5 = hashlib.md5(archives["/400/val/part_000.tar.gz"]).hexdigest()
prepare.fetch(url, target, md5=md5)
print("requests for part_000:", [rng for path, rng in mirror.requests if path.endswith("part_000.tar.gz")])
print("verified:", hashlib.md5(target.read_bytes()).hexdigest() == md5, "->", target.name)

# %% [markdown]
# `download` does all of it for a whole split: the list, every archive (the first transfer of `part_000` is
# cut again, this time the built-in retries resume it), the checksums, extraction and sorting by label.

# %%
mirror.cut = {"/400/val/part_000.tar.gz"}
mirror.requests.clear()
raw_root = WORK / "k400_raw"
counts = prepare.download("400", "val", raw_root, base_url=mirror.url, progress=False)
print(counts)
for path, rng in mirror.requests:
    print(f"  GET {path:<32} Range: {rng}")
for video in sorted((raw_root / "val").rglob("*.mp4")):
    print("  ", video.relative_to(raw_root))
mirror.requests.clear()
print("second run:", prepare.download("400", "val", raw_root, base_url=mirror.url, progress=False),
      "| archives fetched again:", sum(p.endswith(".tar.gz") for p, _ in mirror.requests))
mirror.shutdown()

# %% [markdown]
# ## 6.2 Resize and validate
#
# Kinetics clips come at whatever resolution YouTube had, often 720p or more. Training crops 224 pixels from a
# short side of 256 to 320, so decoding full HD is wasted work: the first thing to do is re-encode every clip
# once to a short side of 320 (`lgd prepare resize`, the ffmpeg that `imageio-ffmpeg` ships, H.264, no audio).
# That makes the dataset several times smaller and decoding several times faster. Resizing is resumable:
# finished files are kept, and each is written to a temporary name first.
#
# ```bash
# lgd prepare resize --src data/videos/k400 --dst data/videos/k400_320 --short-side 320 --workers 32
# ```
#
# Here the "raw" videos are 96 x 128 and the target short side is 64 (320 and 240 x 320 with `LGD_PROFILE=gpu`).

# %%
SHORT_SIDE = 320 if GPU else 64
resized_root = WORK / f"k400_{SHORT_SIDE}"
print("resize:", prepare.resize(raw_root, resized_root, short_side=SHORT_SIDE, workers=2, progress=False))
print("again: ", prepare.resize(raw_root, resized_root, short_side=SHORT_SIDE, workers=2, progress=False))
with open_video(next((resized_root / "val").rglob("*.mp4"))) as video:
    print("a resized clip:", video.get_frames([0]).shape, "(frames, H, W, 3)")

# %% [markdown]
# At full scale some files are always broken: a truncated download, a video with no frames, a codec the
# decoder cannot read. A training job that meets one at hour 30 should not die, and it should not silently
# train on fewer clips either. `lgd prepare validate` decodes every annotated clip once (in parallel,
# resumable) and writes the **manifest** the training code reads: one row per annotated clip, `present`,
# `missing` or `unreadable`, with the reason. We damage one clip to see it caught.

# %%
victim = sorted((resized_root / "val" / "air drumming").glob("*.mp4"))[0]
victim.write_bytes(victim.read_bytes()[:300])                  # a truncated file
manifest = prepare.validate(raw_root / "annotations" / "val.csv", resized_root, classes=load_classes("kinetics400"),
                            out=resized_root / "manifest_val.csv", workers=2, progress=False)
print(summarize_manifest(manifest))
manifest[["label", "path", "status", "reason"]]

# %% [markdown]
# The training config points at the manifest (`data.val_manifest`); rows that are not `present` are left
# out and counted. A clip that fails later anyway (a disk error) is replaced by another and reported with its
# path at the end of the epoch (`failed_videos` in `metrics.csv`).
#
# ## 6.3 Planning throughput: decoders versus the GPU
#
# A GPU training step on a batch of clips takes a fixed time; the clips have to be decoded, cropped and
# normalised by CPU workers (`data.workers` DataLoader processes per GPU) at least as fast. If they are not,
# the GPU waits (the `data_wait_frac` column of `metrics.csv` says how much). `lgd data bench` measures the
# rate of one decoding worker on generated test videos; `--smoke` is the seconds-long version.

# %%
table = bench_data.run(smoke=not GPU, target=GPU_CLIPS_PER_S)
with pd.option_context("display.float_format", "{:.1f}".format):
    print(table.to_string(index=False))

# %% [markdown]
# The smoke test uses 64p videos, far smaller than the real thing. A resized Kinetics clip has a short side of
# 320, so we also time one worker on two short 320p videos with both decoders: 16 frames (stride 2) per clip,
# scaled to a short side of 128 and cropped to 112, as the benchmark does.

# %%
real = WORK / "bench320"
bench_manifest = bench_data.make_videos(real, 320, count=2, seconds=2 if not GPU else 10)
rates = {backend: bench_data.decode_rate(bench_manifest, real, backend, clips=4 if not GPU else 24)
         for backend in ("decord", "pyav")}
per_worker = max(rates.values())
for backend, rate in rates.items():
    print(f"{backend:<7} {rate:6.1f} clips/s per worker at 320p")
workers_per_gpu = math.ceil(GPU_CLIPS_PER_S / per_worker)
print(f"\none GPU at {GPU_CLIPS_PER_S:g} clips/s needs ceil({GPU_CLIPS_PER_S:g} / {per_worker:.1f}) = "
      f"{workers_per_gpu} decoding workers;")
print(f"a node of {GPUS_PER_NODE} GPUs needs {workers_per_gpu * GPUS_PER_NODE} CPU cores for decoding alone "
      f"(measured on this machine's cores).")

# %% [markdown]
# What a full epoch costs: 240,000 clips at a given rate per GPU. The release recipe runs 128 epochs.

# %%
epoch_gpu_hours = KINETICS_CLIPS / GPU_CLIPS_PER_S / 3600
print(f"one epoch of {KINETICS_CLIPS:,} clips at {GPU_CLIPS_PER_S:g} clips/s per GPU: "
      f"{epoch_gpu_hours:.2f} GPU-hours")
for gpus in (1, 8, 32):
    hours = epoch_gpu_hours / gpus
    print(f"  {gpus:>2} GPUs: {hours * 60:6.1f} min per epoch, {hours * 128:6.1f} h for 128 epochs "
          f"(perfect scaling, the GPUs never waiting for data)")

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
labels = [f"{r.video} {r.backend}" for r in table.itertuples() if r.test == "decode+transform"]
values = [r.clips_per_s for r in table.itertuples() if r.test == "decode+transform"]
labels += [f"320p {b}" for b in rates]
values += list(rates.values())
axes[0].barh(labels, values, color=["tab:gray"] * (len(labels) - len(rates)) + ["tab:blue"] * len(rates))
axes[0].axvline(GPU_CLIPS_PER_S, color="tab:red", linestyle="--", label=f"one GPU: {GPU_CLIPS_PER_S:g} clips/s")
axes[0].set_xlabel("clips/s of ONE decoding worker")
axes[0].set_title("Decoder rate vs model rate")
axes[0].legend(loc="lower right", fontsize=8)

targets = np.linspace(5, 400, 200)
for backend, rate in rates.items():
    axes[1].step(targets, np.ceil(targets / rate), where="post", label=f"{backend} ({rate:.0f} clips/s each)")
axes[1].axvline(GPU_CLIPS_PER_S, color="tab:red", linestyle="--")
axes[1].set_xlabel("training rate to feed (clips/s per GPU)")
axes[1].set_ylabel("decoding workers needed")
axes[1].set_title("Workers per GPU, 320p clips")
axes[1].legend(fontsize=8)

rates_per_gpu = np.linspace(10, 400, 200)
axes[2].plot(rates_per_gpu, KINETICS_CLIPS / rates_per_gpu / 3600)
axes[2].axvline(GPU_CLIPS_PER_S, color="tab:red", linestyle="--")
axes[2].set_yscale("log")
from matplotlib.ticker import LogLocator, ScalarFormatter

axes[2].yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))      # 1, 2, 5, 10, 20, ... GPU-hours: readable
axes[2].yaxis.set_major_formatter(ScalarFormatter())
axes[2].set_xlabel("clips/s per GPU")
axes[2].set_ylabel("GPU-hours per epoch")
axes[2].set_title(f"Cost of one Kinetics-400 epoch\n({KINETICS_CLIPS:,} clips)")
fig.tight_layout()
show_figure(fig, figure_path("06_throughput.png"))

# %% [markdown]
# Read the left panel against the red line. How many workers one GPU needs follows from the two rates; the
# numbers below are this machine's, measured above:

# %%
for backend, rate in rates.items():
    workers = math.ceil(GPU_CLIPS_PER_S / rate)
    print(f"{backend}: one worker decodes {rate:.1f} clips/s of 320p video, {rate / GPU_CLIPS_PER_S:.2f}x what one "
          f"GPU trains on ({GPU_CLIPS_PER_S:g} clips/s): {workers} worker(s) per GPU, {8 * workers} cores for a "
          f"node of 8 GPUs")

# %% [markdown]
# Every worker is a core (or more) doing nothing but decoding, so at the release's rate a node of GPUs needs
# many cores just to feed them. That is why the release recipe and `k400_full.yaml` decode from the resized
# 320p files (`data.workers: 10` per GPU) and why `--cpus-per-task` matters in the SLURM script below. The
# rates here come from this machine's cores and a two-second test video; measure on the cluster's nodes before
# you book GPUs.
#
# ### The model side: `lgd bench`
#
# The decoders are one half of the plan; the other is how fast the network itself trains. `lgd bench` times
# forward and forward+backward steps of every model, interleaved so that a noisy machine slows them alike, and
# sets each against three references measured in the same run:
#
# - **the peak**: the best rate of several GEMM and convolution shapes at 1 and all threads, per dtype, beside
#   the theoretical peak from the vector width and clock Linux reports. "Fraction of peak" divides by the
#   larger of the two, so it cannot pass 1;
# - **the same backbone without diffusion**: the diffusion overhead t(LGD) / t(P3D), a median with a 95%
#   interval over the interleaved repeats, so a reader can tell noise from a difference;
# - **bf16 against fp32** where the CPU or GPU has bf16: the speed-up `run.amp=auto` would buy.
#
# A full CPU run of `lgd3d_r50` at 16 x 224 x 224 takes minutes; its tables are shipped in `figures/bench/`
# with the command and commit that made them, and read here.

# %%
from lgd_tutorial.experiments import bench_models as model_bench

BENCH_DIR = shipped_path("figures/bench")
shipped = {p.stem: pd.read_csv(p) for p in sorted(BENCH_DIR.glob("*.csv"))}
bench_meta = json.loads((BENCH_DIR / "bench.json").read_text())
print(f"made by: {bench_meta['command']} @ {bench_meta['commit']} ({bench_meta['seconds'] / 60:.0f} min, "
      f"{bench_meta['machine']})\n")
print(model_bench.report(shipped))

# %% [markdown]
# **What diffusion costs, and why.** The diffusion adds little arithmetic, and it costs in two ways. First, it
# moves whole feature maps through memory: per block, the pool P(x) reads the block's input, and the broadcast
# add of U(W_xg g) reads and writes its output; in the backward pass the output gradient is summed for W_xg
# and the pool's gradient is added into the input's. Second, its global path is a handful of small operations
# on C-vectors per block (two Linear layers per projection, a ReLU, an add), each with a fixed price for
# dispatch and autograd whatever its size. The `[traffic]` table counts the bytes (`bench.diffusion_passes`)
# and divides them by the machine's measured memory bandwidth (`predicted`), times the map-sized operations
# alone on tensors of the blocks' sizes (`ops_alone`) and the global path's vector operations alone
# (`vector_path`), and sets the sum (`model` = predicted + vector path) beside the overhead measured end to
# end. Whether those two ways account for the whole overhead is a question the table answers; the sentences
# below are computed from it:

# %%
traffic = shipped["traffic"]
bandwidth = shipped["machine"]["memory_gb_per_s"].iloc[0]
for row in traffic.itertuples():
    print(f"{row.model} {row.size} {row.mode:>7}: {row.extra_mb:5.0f} MB -> {row.predicted_pct:4.1f}% at {bandwidth:.0f} "
          f"GB/s; vector path {row.vector_path_pct:4.1f}%; model {row.model_pct:4.1f}%; measured "
          f"{row.measured_pct:4.1f}% [{row.measured_low_pct:.1f}, {row.measured_high_pct:.1f}]")
for mode in ("forward", "train"):
    row = traffic[(traffic["model"] == "lgd3d_r50") & (traffic["mode"] == mode)].iloc[0]
    inside = row["measured_low_pct"] <= row["model_pct"] <= row["measured_high_pct"]
    print(f"lgd3d_r50 {row['size']} {mode}: the model's {row['model_pct']:.1f}% is "
          + ("inside" if inside else "outside") + f" the measured interval; bytes alone give {row['predicted_pct']:.1f}%, "
          f"the vector path {row['vector_path_pct']:.1f}%")
small = traffic[traffic["size"] == traffic["size"].iloc[-1]]
print(f"at {small['size'].iloc[0]} the plain step is shorter, so the fixed per-operation cost weighs more: vector path "
      f"{small['vector_path_pct'].max():.1f}% at most, measured overhead up to {small['measured_pct'].max():.1f}%")
inside = (traffic["measured_low_pct"] <= traffic["model_pct"]) & (traffic["model_pct"] <= traffic["measured_high_pct"])
below = traffic["model_pct"] < traffic["measured_low_pct"]
print(f"In all, the model lands inside the measured interval in {int(inside.sum())} of {len(traffic)} rows and below it "
      f"in {int(below.sum())}: " + ("bytes and per-operation costs explain the overhead." if inside.all() else
      "bytes and per-operation costs explain part of the overhead, not all of it; what is left (for example, "
      "caches and operations fused differently with and without diffusion) this model does not measure."))

# %% [markdown]
# The same measurement, live, on the two teaching models (seconds on a CPU, in float32; `figures/bench/` is the
# full run, with bfloat16):

# %%
if GPU:
    speed = model_bench.run(models=("lgd3d_r50", "p3d_r50"), sizes=("16x224",), repeats=5, batch=16,
                            device="cuda", data=False, out=WORK / "bench_models", figure=None, log=None)
else:
    speed = model_bench.run(models=("lgd3d_tiny", "p3d_tiny"), sizes=("8x112",), repeats=7, batch=4,
                            dtypes=("fp32",), data=False, out=WORK / "bench_models", figure=None, log=None)
print(model_bench.report(speed))

# %%
for row in speed["overhead"].itertuples():
    print(f"live, {row.mode}: LGD's step takes {row.time_ratio:.2f} x the plain one's, 95% interval "
          f"[{row.ratio_low:.2f}, {row.ratio_high:.2f}] over {row.repeats} interleaved repeats")
    if row.ratio_low <= 1 <= row.ratio_high:
        print("   the interval holds 1: this short live run cannot tell the two apart on this machine (a busy or "
              "small machine spreads the repeats); read the shipped full run above for the overhead")
    else:
        print(f"   the interval excludes 1: LGD's {row.mode} step is measurably "
              + ("slower" if row.ratio_low > 1 else "faster") + " here")

# %% [markdown]
# ### Exercise 1 (warm-up): workers for a target rate
#
# Write `workers_needed(target_clips_per_s, clips_per_s_per_worker)`: the smallest whole number of workers
# whose combined rate reaches the target (at least one).

# %% tags=["exercise:workers_needed"]
def workers_needed(target_clips_per_s, clips_per_s_per_worker):
    ### BEGIN SOLUTION
    return max(1, math.ceil(target_clips_per_s / clips_per_s_per_worker))
    ### END SOLUTION

# %% tags=["exercise:workers_needed"]
from lgd_tutorial.exercises import check_workers_needed

check_workers_needed(workers_needed)

# %% [markdown]
# ### Precision: does bfloat16 change what the teaching model learns?
#
# Mixed precision is the cheapest speed-up when scaling up, and which precision a run uses depends on the
# machine (`run.amp=auto`, notebook 5), so its accuracy could depend on the machine too. `lgd precision` answers that: it trains the teaching recipe in float32 and in bf16
# autocast for each seed, evaluates every best checkpoint the same way (float32, the recipe's test views),
# and pairs the two runs of a seed. Whole runs one after another are a poor clock (a shared machine's speed
# drifts within a minute), so it measures the speed apart: a few training steps of one precision, then of
# the other, in alternating order, for many rounds, and the median of the per-round ratios. Its results,
# made on a CPU with native bf16, are shipped in `figures/precision/` with the command, commit and machine;
# the verdicts below are computed from them.

# %%
precision_dir = shipped_path("figures/precision")
precision_meta = json.loads((precision_dir / "precision.json").read_text())
precision_runs = pd.read_csv(precision_dir / "runs.csv")
precision_summary = pd.read_csv(precision_dir / "summary.csv").set_index("what")
print(f"made by: {precision_meta['command']} @ {precision_meta['commit']} on {precision_meta['cpu']} "
      f"(bf16 GEMMs {precision_meta['bf16_gemm_speedup']:.2f}x float32; run.amp=auto picks "
      f"{precision_meta['auto_picks']} there); on this machine it picks "
      f"{amp_dtype('auto', torch.device('cuda' if GPU else 'cpu')) or 'float32'}")
gap = precision_summary.loc["acc1_bf16_minus_fp32"]
speed = precision_summary.loc["speedup"]
print(f"top-1, bf16 - float32 over {int(gap.n)} seeds: {gap['mean']:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]: "
      + ("the interval holds 0: no accuracy lost or gained that these seeds can detect" if gap.low <= 0 <= gap.high
         else "bf16 is ahead" if gap.low > 0 else "bf16 loses accuracy"))
print(f"training clips/s, bf16 / float32, median of {int(speed.n)} interleaved rounds: {speed['mean']:.2f}x "
      f"[{speed.low:.2f}, {speed.high:.2f}]: "
      + ("bf16 is faster" if speed.low > 1 else "bf16 is slower" if speed.high < 1 else "no difference shown"))
precision_runs.pivot(index="seed", columns="precision", values=["acc1", "epoch_at_target", "train_clips_per_s"]).round(3)

# %% [markdown]
# ## 6.4 Data-parallel training with `torchrun`
#
# `lgd train` (the module `lgd_tutorial.training`) is one script for every scale. Started by `torchrun`, which sets `RANK`, `WORLD_SIZE`,
# `LOCAL_RANK` and the rendezvous address in each worker's environment, it joins a process group, wraps the
# model in `DistributedDataParallel` (NCCL on GPUs, gloo on CPUs), gives each process its own shard of every
# epoch and lets rank 0 alone log and write checkpoints. Gradients are averaged over processes in every
# backward pass, so N processes with B clips each take the same step as one process with N x B clips.
#
# ```bash
# torchrun --standalone --nproc-per-node 8 -m lgd_tutorial train --config k400_full          # one node, 8 GPUs
# # many nodes: the same command on every node, with one rendezvous address
# torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HEAD:29500 --rdzv-id lgd \
#          -m lgd_tutorial train --config k400_full
# ```
#
# The learning rate in a recipe is given for `optim.lr_batch` clips and scaled linearly with the global batch
# (clips per process x processes x accumulation steps). What that means for `k400_full` on 32 GPUs (the
# package's own rule, `lr_at`, after warm-up):

# %%
from lgd_tutorial import load_config, lr_at

k400 = load_config("k400_full")
o = k400.optim
after_warmup = int(o.warmup_epochs * 100)                       # a step just past warm-up, 100 steps per epoch
print(f"k400_full: base LR {o.lr:g} for {o.lr_batch} clips, {k400.data.batch_size} clips per GPU; on 32 GPUs "
      f"(global batch {32 * k400.data.batch_size * o.accumulate}) it starts its schedule at "
      f"{lr_at(after_warmup, 100, k400, world=32):.4g}")

# %% [markdown]
# ### Exercise 2 (warm-up): the linearly scaled learning rate

# %% tags=["exercise:scaled_lr"]
def scaled_lr(base_lr, lr_batch, batch_per_process, processes, accumulate):
    ### BEGIN SOLUTION
    return base_lr * batch_per_process * processes * accumulate / lr_batch
    ### END SOLUTION

# %% tags=["exercise:scaled_lr"]
from lgd_tutorial.exercises import check_scaled_lr

check_scaled_lr(scaled_lr)

# %% [markdown]
# Now live: two processes on this CPU with the gloo backend, on a small generated synthetic set (16 training
# videos), the teaching model on 4 x 32 x 32 clips, two epochs of two steps. The command is the one above; only
# the recipe's overrides make it small. (`python -m torch.distributed.run` is `torchrun`, started with this
# notebook's interpreter.) With `LGD_PROFILE=gpu` it starts one process per local GPU, with NCCL.

# %%
NPROC = max(1, torch.cuda.device_count()) if GPU else 2
DDP_DIR = WORK / "ddp"
SMALL = [f"data.root={WORK / 'synthetic'}", "data.synthetic_seed=6", "data.synthetic_videos_per_class=4",
         "data.synthetic_val_per_class=1", "data.num_frames=4", "data.crop_size=32", "data.scale=[32,40]",
         "data.test_short_side=32", "data.batch_size=4", "optim.lr_batch=8", "optim.warmup_epochs=0.5",
         "run.progress=false", "run.log_every=1"]
ENV = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                       "MASTER_PORT")}
ENV.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
# Generate the data once, before the processes start (otherwise every rank would try to write it).
synthetic.generate(WORK / "synthetic", seed=6, videos_per_class=4, val_per_class=1, progress=False)


def torchrun(*overrides, nproc=NPROC) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "lgd_tutorial", "train", "--config", "tiny_synthetic_cpu", *SMALL, *overrides]
    print("$ torchrun --standalone --nproc-per-node", nproc, "-m lgd_tutorial train --config tiny_synthetic_cpu",
          " ".join(overrides), "...")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=WORK, env=ENV, capture_output=True, text=True, timeout=300)
    lines = [line for line in (done.stdout + done.stderr).splitlines()
             if line.startswith(("epoch", "done", "INFO lgd_tutorial.training: resumed"))]
    print("\n".join(lines), f"\n(exit status {done.returncode}, {time.perf_counter() - start:.0f} s)")
    if "done:" not in done.stdout:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    if done.returncode != 0:            # gloo sometimes aborts a worker while tearing down, after the last checkpoint
        print("training finished and its checkpoint is written, but a worker exited abnormally on shutdown")
    return done


torchrun("optim.epochs=2", f"run.out_dir={DDP_DIR}")
metrics = pd.read_csv(DDP_DIR / "metrics.csv")
metrics[["epoch", "step", "global_step", "split", "loss", "acc1", "lr", "clips_per_s", "data_wait_frac"]]

# %% [markdown]
# One row per step from rank 0 only; loss and accuracy are already averaged over both processes (an
# all-reduce). The checkpoint records the world size it was written with:

# %%
state = load_checkpoint(checkpoints_in(DDP_DIR)[0])
print({key: state[key] for key in ("epoch", "step_in_epoch", "global_step", "world")})
print("files:", sorted(p.name for p in DDP_DIR.iterdir()))

# %% [markdown]
# Run the same command again with more epochs and the same `run.out_dir`: the trainer finds the newest good
# checkpoint there and continues from it instead of starting over (the log says `resumed from`). A resume with
# settings that differ from the checkpoint's is refused with the list of differences, so a typo cannot silently
# change a run halfway; here the change is the point, so `run.resume_changed=true` says so (and the log lists it).

# %%
torchrun("optim.epochs=3", "run.resume_changed=true", f"run.out_dir={DDP_DIR}")
metrics = pd.read_csv(DDP_DIR / "metrics.csv")
print("global steps logged:", metrics.loc[metrics.split == "train", "global_step"].tolist())

# %% [markdown]
# ## 6.5 SLURM: many nodes
#
# On a SLURM cluster, `srun` starts one task per node and each task runs one `torchrun`, which starts one
# worker per GPU; the first node of the allocation hosts the c10d rendezvous. The script ships with the
# package (a test runs it with stand-ins for `srun` and `scontrol`):

# %%
sbatch = CONFIG_DIR / "slurm_train.sbatch"
print(f"# {sbatch.relative_to(CONFIG_DIR.parents[1])}\n")
print(sbatch.read_text())

# %% [markdown]
# ```bash
# sbatch lgd_tutorial/configs/slurm_train.sbatch                                   # k400_full on 4 x 8 GPUs
# CONFIG=k600_full sbatch --nodes 8 lgd_tutorial/configs/slurm_train.sbatch run.out_dir=runs/k600
# ```
#
# Three lines do the pre-emption work: `--signal=TERM@120` asks SLURM to send SIGTERM two minutes before it
# stops the job, `--requeue` puts the job back in the queue, and `run.out_dir` is the same on the next start,
# so the trainer resumes. `OMP_NUM_THREADS` shares the node's CPUs among its GPU workers.
#
# ## 6.6 Pre-emption: a signal, a checkpoint, an exact resume
#
# Shared clusters stop jobs: a time limit, a higher-priority job, a maintenance window. The trainer treats
# SIGTERM and SIGUSR1 the same way: finish the current step, write a checkpoint (atomically: a temporary file,
# then a rename), exit with status 75 ("temporary failure, run me again"). The checkpoint holds the model, the
# optimizer, the GradScaler, the epoch and the step inside it, and the random number generators' states; the
# data order depends only on (seed, epoch, index). So the resumed run sees exactly the batches the first run
# would have seen next.
#
# We start a longer single-process run, send it SIGTERM once it has logged a few steps, and start it again.

# %%
PREEMPT_DIR = WORK / "preempt"
command = [sys.executable, "-m", "lgd_tutorial", "train", "--config", "tiny_synthetic_cpu", *SMALL,
           "optim.epochs=12", "data.batch_size=8", f"run.out_dir={PREEMPT_DIR}"]
job = subprocess.Popen(command, cwd=WORK, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
log_file = PREEMPT_DIR / "metrics.csv"
deadline = time.time() + 180
while time.time() < deadline and job.poll() is None and (
        not log_file.exists() or len(log_file.read_text().splitlines()) < 4):
    time.sleep(0.1)
job.send_signal(signal.SIGTERM)
output, _ = job.communicate(timeout=180)
print("exit status:", job.returncode, "(75: pre-empted, checkpoint written)")
print("\n".join(line for line in output.splitlines() if "SIGTERM" in line))
stopped_at = load_checkpoint(checkpoints_in(PREEMPT_DIR)[0])
print("checkpoint:", checkpoints_in(PREEMPT_DIR)[0].name, {k: stopped_at[k] for k in ("epoch", "step_in_epoch")})

# %%
resumed = subprocess.run(command, cwd=WORK, env=ENV, capture_output=True, text=True, timeout=300)
print("exit status:", resumed.returncode)
print("\n".join(line for line in resumed.stderr.splitlines() if "resumed" in line))
print(resumed.stdout.strip().splitlines()[-1])
steps = pd.read_csv(log_file).query("split == 'train'")["global_step"].tolist()
print("global steps logged across both runs:", steps)
print("each step exactly once:", steps == list(range(1, len(steps) + 1)))

# %% [markdown]
# The metrics file continues where the first run stopped, with no step repeated or skipped. That the resumed
# weights are *bit for bit* those of an uninterrupted run is checked by the test suite
# (`tests/test_train.py::test_exact_resume_after_preemption`); a truncated newest checkpoint is skipped in
# favour of the previous one.
#
# ## Summary
#
# - `lgd prepare download` resumes broken transfers with HTTP Range, verifies sizes and MD5s, extracts safely
#   and sorts clips by label; every step can be run again and continues where it stopped.
# - Resize once to a short side of 320, then validate: the manifest records every clip as present, missing or
#   unreadable, and training reads only the present ones.
# - Plan throughput before booking GPUs: workers per GPU = ceil(GPU rate / one worker's rate); one Kinetics-400
#   epoch costs 240,000 / (clips/s) GPU-seconds.
# - One script runs alone, under `torchrun` on one node or many, and under SLURM with `srun torchrun`; the LR
#   scales with the global batch.
# - SIGTERM or SIGUSR1 -> checkpoint -> exit 75 -> requeue -> exact resume.
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. With `data.workers=2` and `data.workers=0`, compare `data_wait_frac` in `metrics.csv` of the DDP run.
# 2. Send SIGUSR1 instead of SIGTERM to the pre-emption run; then damage the newest checkpoint (truncate it)
#    before resuming, and read the warning.
# 3. Your cluster gives 16 cores per GPU and a worker decodes 12 clips/s: what is the highest training rate per
#    GPU the input pipeline can sustain, and how many GPU-hours would 128 epochs of Kinetics-400 take at it?
