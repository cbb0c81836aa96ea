"""The GPU check (``lgd gpu-check``): the CUDA side of the workbook measured in one unattended run.

    lgd gpu-check --out runs/gpu_check              # one GPU: about 8 minutes, four steps
    lgd gpu-check --dry-run --out /tmp/gpu_dry      # any machine: every step with tiny sizes (also without CUDA)
    lgd gpu-check --report figures/gpu              # the README's GPU section from a finished report

GPU time tends to come in short windows, so the check is one command that needs no one at the keyboard and
fits in one: each step runs in a process of its own with a time limit taken from a total budget (``--budget``,
470 s), and a step that crashes, hangs or runs out of memory is recorded as such while the next one still runs.

1. ``device``: the GPU's name, memory and compute capability; torch, CUDA, cuDNN and driver versions; whether it
   has bf16 and TF32; its dense bf16 peak from ``BF16_PEAK_TFLOPS`` (NVIDIA's datasheets, per device), and a
   measured bf16 matrix product beside it.
2. ``throughput``: ``lgd3d_r50``, ``p3d_r50`` and torchvision's ``r2plus1d_18`` (the peer a user would pick
   instead) on 16 x 224 x 224 clips. For each, the largest training batch that fits (doubling until a step runs
   out of memory, then bisection), then training steps (forward, backward, SGD) in bf16 autocast with
   ``channels_last_3d``, eager and with ``torch.compile``: steps/s, clips/s and the model FLOPs utilisation
   (MFU = model FLOPs per step x steps/s / the dense bf16 peak). LGD and P3D run interleaved at the same batch,
   so the diffusion overhead t(LGD) / t(P3D) comes with a 95% interval over the repeats, eager and compiled.
3. ``ddp``: ``torchrun --nproc-per-node 1`` (a process group over NCCL even for one process) trains the
   ``k400_subset_gpu`` recipe on generated videos in the Kinetics layout (``data.write_clip_videos``): once
   straight through, once stopped by SIGTERM to ``torchrun`` part-way and started again. The resumed run must
   log every step once and end with the straight run's weights; both run with ``run.deterministic=true``, and
   the first step where the two differ (if any) tells GPU non-determinism (before the stop) from a resume bug.
4. ``notebooks``: notebook 5 with ``LGD_PROFILE=gpu``, in a *reduced* GPU profile: the same cells and code
   paths (validation of the whole subset, the recipe on CUDA, multi-view evaluation, the twin without
   diffusion), on the generated videos, one epoch of a few steps (``Settings.notebook_overrides``). Notebook 7
   has no GPU-specific path (``notebooks=("05", "07")`` adds it).

``--dry-run`` (automatic without CUDA) runs the same four steps with tiny models and sizes on whatever device
there is (``torch.compile`` with the ``aot_eager`` backend, which traces like inductor but generates no
kernels), to show that every step starts and writes its files; its numbers measure nothing worth keeping.

Everything goes into ``--out``: each step's CSV/JSON, ``steps.csv`` (status, seconds, limit, error of every
step), ``gpu_check.json`` (provenance and settings) and the Markdown summary (``SUMMARY``, made by ``markdown``:
what ``--report`` prints).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checkpoint import checkpoints_in, load_checkpoint
from .data.encode import write_clip_videos
from .data.prepare import validate
from .data.subsets import SUBSETS_DIR
from .experiments.bench_models import NUM_CLASSES, build, interleave, kernel_rate, parse_size, timed, training_flops
from .experiments.results import provenance, write_results
from .notebooks import list_notebooks, repository_root, run_notebook
from .stats import median_interval
from .utils import cpu_name, cpu_native_bf16

STEPS = ("device", "throughput", "ddp", "notebooks")

# Dense bf16 tensor-core peak in TFLOP/s (no sparsity), from NVIDIA's datasheets. The first name contained in
# the device's name wins, so the more specific names come first ("H100 PCIe" before "H100", "A100" before "A10",
# "L40S" before "L40" before "L4"). A device missing here is set against its measured bf16 matrix product.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, "H100 PCIe datasheet"),
    ("H100 NVL", 835.0, "H100 NVL datasheet"),
    ("GH200", 989.0, "GH200 datasheet"),
    ("H100", 989.0, "H100 SXM datasheet"),
    ("H200", 989.0, "H200 datasheet"),
    ("A100", 312.0, "A100 datasheet"),
    ("L40S", 362.0, "L40S datasheet"),
    ("L40", 181.0, "L40 datasheet"),
    ("L4", 121.0, "L4 datasheet"),
    ("A10", 125.0, "A10 datasheet"),
)


@dataclass
class Settings:
    """What the check runs; ``Settings.for_run(dry_run)`` gives the real or the dry-run preset."""

    dry_run: bool = False
    budget: float = 470.0                         # seconds for all steps together (the command: about 8 minutes)
    limits: dict = field(default_factory=lambda: {"device": 30, "throughput": 220, "ddp": 130, "notebooks": 90})
    reserve: dict = field(default_factory=lambda: {"ddp": 110, "notebooks": 70})  # kept back for later steps
    models: tuple = ("lgd3d_r50", "p3d_r50", "r2plus1d_18")
    pair: tuple = ("lgd3d_r50", "p3d_r50")        # the diffusion overhead: LGD against its backbone without it
    clip: str = "16x224"
    max_batch: int = 512
    repeats: int = 10                             # timed training steps per model and mode, interleaved
    compile_backend: str = "inductor"
    matmul_size: int = 8192
    recipe: str = "k400_subset_gpu"
    classes: int = 50                             # of the subset's classes, the first ones
    train_per_class: int = 8                      # generated training videos per class
    val_per_class: int = 1
    video: tuple = (40, 120, 160)                 # frames, height, width of a generated video
    ddp_overrides: tuple = ("data.batch_size=8", "data.workers=8", "optim.epochs=4")      # 50 steps an epoch
    ddp_stop_at: int = 110                        # SIGTERM once this step is logged: inside an epoch, not at its end
    # Notebook 7 has no GPU-specific code (its models are the teaching ones, on a CPU): `make test` runs it, and
    # --notebooks 05 07 adds it here.
    notebooks: tuple = ("05",)
    notebook_overrides: tuple = ("optim.epochs=1", "run.max_steps_per_epoch=4", "data.batch_size=16",
                                 "data.workers=8", "data.test_clips=1", "run.cudnn_benchmark=false",
                                 "run.progress=false")

    @classmethod
    def for_run(cls, dry_run: bool) -> "Settings":
        if not dry_run:
            return cls()
        tiny = ("model.arch=lgd3d_tiny", "data.num_frames=4", "data.crop_size=32", "data.scale=[32,40]",
                "data.decode_short_side=40", "data.test_short_side=32", "data.batch_size=4", "data.workers=1")
        return cls(dry_run=True, budget=900.0,
                   limits={"device": 120, "throughput": 300, "ddp": 300, "notebooks": 420}, reserve={},
                   models=("lgd3d_tiny", "p3d_tiny", "r2plus1d_18"), pair=("lgd3d_tiny", "p3d_tiny"), clip="4x32",
                   max_batch=4, repeats=3, compile_backend="aot_eager", matmul_size=512, classes=4,
                   train_per_class=3, val_per_class=1, video=(12, 48, 64),
                   ddp_overrides=(*tiny, "optim.epochs=3"), ddp_stop_at=4, notebooks=("05",),
                   notebook_overrides=(*tiny, "optim.epochs=1", "run.max_steps_per_epoch=2", "data.test_clips=1"))

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------- processes

def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (its children, theirs, ...), read from /proc; empty where there is no /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])      # "pid (name) state ppid ..."
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(job: subprocess.Popen) -> None:
    """SIGKILL ``job`` and every process below it. ``torchrun`` starts its workers in sessions of their own, so
    killing a process group would leave them running, and holding the GPU, after their parent is gone."""
    for pid in [*descendants(job.pid), job.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    job.wait()


def run_command(command: list[str], log_path: Path, timeout: float, env: dict | None = None) -> int | None:
    """Run ``command`` with its output in ``log_path``; its exit status, or None when it was killed (with every
    process it started) at ``timeout`` seconds."""
    with open(log_path, "w") as log:
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            return job.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            kill_tree(job)
            return None
        finally:
            if job.poll() is None:
                kill_tree(job)


# --------------------------------------------------------------------------- step 1: the device

def peak_from_table(name: str) -> tuple[float, str] | None:
    """(dense bf16 TFLOP/s, source) for a GPU name from ``BF16_PEAK_TFLOPS``; None for a device not listed."""
    for key, tflops, source in BF16_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return tflops, source
    return None


def driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it; None without nvidia-smi."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def device_info(settings: Settings) -> dict:
    """What the device is and can do, and the bf16 peak the MFU divides by (``peak_tflops``, ``peak_source``)."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    info = {"device": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
            "numpy": np.__version__, "pandas": pd.__version__, "cpus": os.cpu_count(),
            "shm_gib": shutil.disk_usage("/dev/shm").total / 2 ** 30 if Path("/dev/shm").is_dir() else None}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        capability = (props.major, props.minor)
        info.update(name=props.name, gpus=torch.cuda.device_count(), memory_gib=props.total_memory / 2 ** 30,
                    capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                    bf16=torch.cuda.is_bf16_supported(), tf32=capability >= (8, 0), driver=driver_version())
    else:
        info.update(name=cpu_name(), gpus=0, memory_gib=None, capability=None, multiprocessors=os.cpu_count(),
                    bf16=cpu_native_bf16(), tf32=False, driver=None)
    dtype = torch.bfloat16 if info["bf16"] else torch.float16 if cuda else torch.float32
    info["matmul_dtype"] = str(dtype).replace("torch.", "")
    n = settings.matmul_size
    info["measured_matmul_tflops"] = kernel_rate("matmul", (n, n, n), dtype, device, repeats=5)[1] / 1e3
    listed = peak_from_table(info["name"]) if cuda else None
    if listed:
        info["peak_tflops"], info["peak_source"] = listed[0], f"dense bf16, {listed[1]}"
    else:
        info["peak_tflops"] = info["measured_matmul_tflops"]
        info["peak_source"] = (f"measured {info['matmul_dtype']} {settings.matmul_size}^3 matrix product; no "
                               "datasheet entry for this device")
    return info


def step_device(out: Path, settings: Settings, deadline: float) -> None:
    write_results(out, {}, "device.json", device_info(settings))


# --------------------------------------------------------------------------- step 2: throughput

def autocast_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device has it; fp16 on older GPUs; bf16 on a CPU (the dry run)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class Runner:
    """One model's training step on a fixed batch: bf16 autocast, channels_last_3d, SGD with momentum (as the
    recipes train), eager or through ``torch.compile``."""

    def __init__(self, name: str, device: torch.device, backend: str):
        self.name, self.device, self.backend = name, device, backend
        self.model = build(name).to(device).to(memory_format=torch.channels_last_3d).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9, nesterov=True,
                                         weight_decay=1e-4)
        self.compiled = None
        self.dtype = autocast_dtype(device)

    def step(self, batch: int, frames: int, size: int, compiled: bool = False):
        """A function running one training step on a random batch (made once, here)."""
        clip = torch.randn(batch, 3, frames, size, size, device=self.device)
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
        labels = torch.randint(0, NUM_CLASSES, (batch,), device=self.device)
        if compiled and self.compiled is None:
            self.compiled = torch.compile(self.model, backend=self.backend, dynamic=False)
        net = self.compiled if compiled else self.model

        def run():
            with torch.autocast(self.device.type, dtype=self.dtype):
                loss = nn.functional.cross_entropy(net(clip).float(), labels)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return run


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device ran out of memory (CUDA's error, cuDNN's and the CPU allocator's)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(s in text for s in (
        "out of memory", "cudnn_status_alloc_failed", "cudnn_status_not_enough_workspace", "can't allocate memory"))


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def largest_batch(runner: Runner, frames: int, size: int, cap: int) -> tuple[int, list[dict]]:
    """The largest training batch that runs, found by trying: doubling from 1 until a step runs out of memory
    (or ``cap`` is reached), then bisection between the last batch that ran and the first that did not, until
    the two are within an eighth of each other. Returns it with one row per batch tried."""
    tried = []

    def fits(batch: int) -> bool:
        free_memory(runner.device)
        reset_peak(runner.device)
        start = time.perf_counter()
        try:
            timed(runner.step(batch, frames, size), runner.device)
            ok = True
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            if not out_of_memory(error):
                raise
            ok = False
        runner.optimizer.zero_grad(set_to_none=True)
        tried.append({"model": runner.name, "batch": batch, "fits": ok, "seconds": time.perf_counter() - start,
                      "peak_memory_gib": peak_memory_gib(runner.device) if ok else None})
        free_memory(runner.device)
        return ok

    good, bad, batch = 0, None, 1
    while batch <= cap:
        if not fits(batch):
            bad = batch
            break
        good, batch = batch, batch * 2
    while bad is not None and good and bad - good > max(1, good // 8):
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, tried


def throughput_row(name: str, mode: str, batch: int, seconds: list[float], flops: int, peak_tflops: float,
                   settings: Settings, device: torch.device, dtype: torch.dtype, **extra) -> dict:
    """One table row from the per-step seconds of one model and mode: medians with 95% intervals."""
    step, low, high = median_interval(seconds)
    return {"model": name, "mode": mode, "clip": settings.clip, "batch": batch,
            "dtype": str(dtype).replace("torch.", ""), "channels_last_3d": True, "device": device.type,
            "repeats": len(seconds), "ms_per_step": 1e3 * step, "ms_low": 1e3 * low, "ms_high": 1e3 * high,
            "steps_per_s": 1 / step, "clips_per_s": batch / step, "clips_per_s_low": batch / high,
            "clips_per_s_high": batch / low, "gflop_per_clip": flops / 1e9,
            "achieved_tflops": flops * batch / step / 1e12, "peak_tflops": peak_tflops,
            "mfu": flops * batch / step / 1e12 / peak_tflops, **extra}


def alloc_retries(device: torch.device) -> int:
    """How often the CUDA allocator has had to free its cache and try again (it slows steps near the limit)."""
    return torch.cuda.memory_stats(device).get("num_alloc_retries", 0) if device.type == "cuda" else 0


def measure_group(runners: dict, group: list[str], mode: str, batch: int, frames: int, size: int,
                  settings: Settings, device: torch.device) -> tuple[dict, dict]:
    """Per-step seconds of every model of ``group`` at ``batch``, interleaved (A B, B A, ...), after two warm-up
    steps each (the first, with compilation and cuDNN's autotuning, timed on its own); and per model its first
    step's seconds, peak memory and the allocator's retries while timed."""
    runs, extra = {}, {}
    for name in group:
        runs[name] = runners[name].step(batch, frames, size, compiled=mode == "compiled")
        free_memory(device)
        reset_peak(device)
        first = timed(runs[name], device)
        timed(runs[name], device)
        extra[name] = {"first_step_s": first, "peak_memory_gib": peak_memory_gib(device)}
    before = alloc_retries(device)
    times = interleave(runs, settings.repeats, device)
    for name in group:
        extra[name]["alloc_retries"] = alloc_retries(device) - before
    return times, extra


COMPILE_GUESS_S = 75.0          # seconds to compile one model's training step before any was measured


def step_throughput(out: Path, settings: Settings, deadline: float) -> None:
    """Largest batch, then training steps: the LGD pair eager and compiled (interleaved), then the peer eager
    and compiled. Every stage rewrites the CSVs, so a step stopped at its limit keeps what it measured."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = device_peak(out, settings, device)
    frames, size = parse_size(settings.clip)
    searches, batches, rows, overheads, skipped = [], {}, [], [], []
    runners, flops = {}, {}

    def save():
        write_results(out, {"batch_search.csv": pd.DataFrame(searches), "throughput.csv": pd.DataFrame(rows),
                            "overhead.csv": pd.DataFrame(overheads), "skipped.csv": pd.DataFrame(
                                skipped, columns=["model", "mode", "reason"])})

    def skip(names, mode, reason):
        skipped.extend({"model": name, "mode": mode, "reason": reason} for name in names)

    def unskip(names, mode):
        skipped[:] = [r for r in skipped if not (r["model"] in names and r["mode"] == mode)]

    # The search runs with cuDNN's heuristics: autotuning every batch size tried would cost more than the search.
    torch.backends.cudnn.benchmark = False
    for name in settings.models:
        try:
            runners[name] = Runner(name, device, settings.compile_backend)
            flops[name] = training_flops(runners[name].model, frames, size, device)
            batches[name], tried = largest_batch(runners[name], frames, size, settings.max_batch)
            searches.extend(tried)
        except Exception as error:                              # noqa: BLE001 - recorded; the next model runs
            runners.pop(name, None)
            skip([name], "eager", f"{type(error).__name__}: {first_line(error)}")
            skip([name], "compiled", "not measured eager")
        save()
    torch.backends.cudnn.benchmark = device.type == "cuda"        # as the Trainer trains (run.cudnn_benchmark)
    pair = [name for name in settings.pair if name in runners]
    groups = ([pair] if len(pair) == 2 else [[name] for name in pair]) + [[n] for n in runners if n not in pair]
    compile_seconds = []
    for group in groups:
        for mode in ("eager", "compiled"):
            batch = min(batches[name] for name in group)
            if batch == 0:
                skip(group, mode, "not even one clip fits")
                continue
            if any(r["model"] in group for r in skipped):                   # eager failed: nothing to compare
                continue
            if mode == "compiled":
                needed = 1.2 * (max(compile_seconds) if compile_seconds else COMPILE_GUESS_S) * len(group)
                if time.time() + needed > deadline:
                    skip(group, mode, f"time: about {needed:.0f} s of compilation, {max(0, deadline - time.time()):.0f}"
                                      " s left in the step")
                    save()
                    continue
                skip(group, mode, f"compiling when the step ended (started with {deadline - time.time():.0f} s left)")
                save()
            note, times = "", None
            for attempt in range(2):
                try:
                    times, extra = measure_group(runners, group, mode, batch, frames, size, settings, device)
                    break
                except Exception as error:                      # noqa: BLE001 - recorded; the next group runs
                    # keep words, not the exception: its traceback would hold the step's tensors
                    memory, reason = out_of_memory(error), f"{type(error).__name__}: {first_line(error)}"
                free_memory(device)
                # a retry at a smaller batch, eager only: a compiled model would compile all over again
                if attempt == 0 and memory and batch > 1 and mode == "eager":
                    note = f"out of memory at batch {batch} with cuDNN autotuning; measured at {batch * 7 // 8}"
                    batch = batch * 7 // 8
                    continue
                unskip(group, mode)
                skip(group, mode, reason)
                break
            free_memory(device)
            if times is None:
                save()
                continue
            unskip(group, mode)
            if mode == "compiled":
                compile_seconds += [extra[name]["first_step_s"] for name in group]
            else:
                batches.update({name: batch for name in group})          # compiled runs at what eager ran
            for name in group:
                rows.append(throughput_row(name, mode, batch, times[name], flops[name], peak, settings, device,
                                           runners[name].dtype, largest_batch=max(t["batch"] for t in searches
                                                                                  if t["model"] == name and t["fits"]),
                                           note=note, cudnn_benchmark=torch.backends.cudnn.benchmark,
                                           **extra[name]))
            if len(group) == 2:
                lgd, plain = group
                ratio, low, high = median_interval([a / b for a, b in zip(times[lgd], times[plain])])
                overheads.append({"mode": mode, "model": lgd, "without_diffusion": plain, "batch": batch,
                                  "time_ratio": ratio, "ratio_low": low, "ratio_high": high,
                                  "overhead_pct": 100 * (ratio - 1), "repeats": len(times[lgd])})
            save()
    save()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "no message"


def device_peak(out: Path, settings: Settings, device: torch.device) -> float:
    """The peak the MFU divides by: the device step's, else worked out here the same way."""
    path = out / "device.json"
    if path.is_file():
        return json.loads(path.read_text())["peak_tflops"]
    return device_info(settings)["peak_tflops"]


# --------------------------------------------------------------------------- step 3: DDP, SIGTERM and resume

def generated_kinetics(out: Path, settings: Settings) -> tuple[Path, list[str], pd.DataFrame, pd.DataFrame]:
    """Generated videos for the first ``classes`` classes of the shipped 50-class subset, in the Kinetics
    layout under ``out/videos`` (kept between steps), split per class into training and validation rows:
    (root, classes, train rows, val rows)."""
    annotations = pd.read_csv(SUBSETS_DIR / "k400_50classes" / "annotations.csv")
    classes = sorted(annotations["label"].unique())[:settings.classes]
    picked = (annotations[annotations["label"].isin(classes)]
              .sort_values(["label", "youtube_id", "time_start"])
              .groupby("label").head(settings.train_per_class + settings.val_per_class))
    position = picked.groupby("label").cumcount()
    root = out / "videos"
    frames, height, width = settings.video
    write_clip_videos(picked, root, frames=frames, height=height, width=width, workers=max(1, (os.cpu_count() or 1)))
    train = picked[position >= settings.val_per_class].reset_index(drop=True)
    val = picked[position < settings.val_per_class].reset_index(drop=True)
    return root, classes, train, val


def logged_step(run: Path) -> int:
    """The last training step a run's metrics.csv holds so far (0 before the first; the file is read while the
    run appends to it, so a half-written last line counts as nothing)."""
    try:
        steps = train_losses(run)["global_step"]
        return int(steps.max()) if len(steps) else 0
    except (OSError, ValueError, KeyError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return 0


def train_losses(run: Path) -> pd.DataFrame:
    """The training rows of a run's metrics.csv: global_step, the loss as written, clips/s and data wait."""
    rows = pd.read_csv(run / "metrics.csv", dtype={"loss": str})
    return rows[rows["split"] == "train"][["global_step", "loss", "clips_per_s", "data_wait_frac"]]


def torchrun_command(settings: Settings, overrides) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
            "-m", "lgd_tutorial", "train", "--config", settings.recipe, *overrides]


def launch_env() -> dict:
    """This environment without the variables of an enclosing torchrun (the check may itself run under one)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    # set before any process starts CUDA: a fixed cuBLAS workspace (run.deterministic asks for it), NCCL on the
    # loopback interface (one machine: nothing to look for), and an allocator that grows its blocks instead of
    # fragmenting near the memory limit (the largest batch that fits is measured there)
    defaults = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "NCCL_SOCKET_IFNAME": "lo",
                "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    return {**defaults, **env, "PYTHONUNBUFFERED": "1"}


def step_ddp(out: Path, settings: Settings, deadline: float) -> None:
    """Straight run A; run B stopped by SIGTERM to torchrun once ``ddp_stop_at`` is logged, then resumed;
    ``ddp.json`` says whether B logged every step once and ends where A ends, ``ddp_losses.csv`` has both."""
    work = out / "ddp"
    work.mkdir(parents=True, exist_ok=True)
    root, classes, train, val = generated_kinetics(out, settings)
    manifests = {}
    for split, rows in (("train", train), ("val", val)):
        manifests[split] = work / f"manifest_{split}.csv"
        validate(rows, root, classes, out=manifests[split], workers=2, progress=False)
    common = [f"data.root={root}", f"data.train_manifest={manifests['train']}",
              f"data.val_manifest={manifests['val']}", f"model.num_classes={len(classes)}",
              *settings.ddp_overrides, "run.log_every=1", "run.progress=false", "run.deterministic=true",
              "run.eval_every=1000", "run.keep_last=1", "run.resume=true"]
    env = launch_env()
    result = {"recipe": settings.recipe, "overrides": common, "videos": {"train": len(train), "val": len(val)},
              "classes": len(classes), "stop_at": settings.ddp_stop_at}

    def left() -> float:
        return max(1.0, deadline - time.time())

    def run(name: str, out_dir: Path) -> int | None:
        command = torchrun_command(settings, [*common, f"run.out_dir={out_dir}"])
        result[f"{name}_exit"] = run_command(command, work / f"{name}.log", left(), env)
        if result[f"{name}_exit"] is None:
            raise TimeoutError(f"the {name} run did not finish in the step's time (see {work / name}.log)")
        return result[f"{name}_exit"]

    started = time.perf_counter()
    if run("straight", work / "a") != 0:
        raise RuntimeError(f"the straight run failed (exit {result['straight_exit']}): see {work / 'straight.log'}")
    result["straight_seconds"] = time.perf_counter() - started
    write_results(out, {}, "ddp.json", result)
    b = work / "b"
    command = torchrun_command(settings, [*common, f"run.out_dir={b}"])
    with open(work / "interrupted.log", "w") as log:
        job = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while job.poll() is None and time.time() < deadline and logged_step(b) < settings.ddp_stop_at:
                time.sleep(0.05)
            job.send_signal(signal.SIGTERM)
            result["interrupted_exit"] = job.wait(timeout=left())
        finally:
            if job.poll() is None:
                kill_tree(job)
    found = checkpoints_in(b)
    if not found:
        raise RuntimeError(f"no checkpoint after SIGTERM: see {work / 'interrupted.log'}")
    result["stopped_at_step"] = int(load_checkpoint(found[0])["global_step"])
    result["signal_logged"] = "SIGTERM received" in (work / "interrupted.log").read_text()
    run("resumed", b)
    result["resumed_logged"] = "resumed from" in (work / "resumed.log").read_text()
    result.update(compare_runs(work / "a", b, result["stopped_at_step"]))
    losses = train_losses(work / "a").merge(train_losses(b), on="global_step", how="outer",
                                            suffixes=("_straight", "_resumed"))
    result["checkpoint_at_signal"] = result["signal_logged"] and result["stopped_at_step"] >= settings.ddp_stop_at
    problems = ddp_problems(result)
    result["passed"] = not problems
    write_results(out, {"ddp_losses.csv": losses}, "ddp.json", result)
    if problems:
        raise RuntimeError("; ".join(problems) + f" (ddp.json, {work}/*.log)")


def ddp_problems(result: dict) -> list[str]:
    """What keeps the DDP run from showing an exact resume, in words (empty: it stopped at the signal with a
    checkpoint, started again from it, logged every step once and ended bit for bit where the straight run did)."""
    problems = []
    if not result["checkpoint_at_signal"]:
        problems.append(f"no checkpoint written at the signal (newest at step {result['stopped_at_step']}, "
                        f"'SIGTERM received' {'logged' if result['signal_logged'] else 'not logged'})")
    if not result["resumed_logged"] or result.get("resumed_exit") != 0:
        problems.append(f"the second start did not resume and finish (exit {result.get('resumed_exit')})")
    if not result["each_step_once"]:
        problems.append("the interrupted run did not log every step exactly once")
    if not result["exact"]:
        first = result["first_differing_step"]
        if first is None:
            problems.append("the final weights differ while every logged loss agrees (to 6 digits)")
        elif result["differs_before_stop"]:
            problems.append(f"inconclusive: the two runs differ from step {first}, before the stop, so this GPU "
                            "computes the same steps differently even with run.deterministic=true and the resume "
                            "cannot be told apart from that")
        else:
            problems.append(f"the runs first differ at step {first}, after the resume: not an exact resume")
    return problems


def compare_runs(a: Path, b: Path, stopped_at: int) -> dict:
    """The straight run ``a`` against the interrupted and resumed run ``b``: steps logged, losses (as logged,
    6 digits) and the final weights, with the first step where the losses differ."""
    la, lb = train_losses(a), train_losses(b)
    steps_b = lb["global_step"].tolist()
    merged = la.merge(lb, on="global_step", suffixes=("_a", "_b"))
    differ = merged[merged["loss_a"] != merged["loss_b"]]
    wa, wb = (load_checkpoint(checkpoints_in(run)[0]) for run in (a, b))
    worst, unequal = 0.0, 0
    for key, tensor in wa["model"].items():
        other = wb["model"][key]
        if not torch.equal(tensor, other):
            unequal += 1
            if tensor.is_floating_point():
                worst = max(worst, float((tensor.double() - other.double()).abs().max()))
    first = int(differ["global_step"].min()) if len(differ) else None
    return {"steps": int(la["global_step"].max()), "final_step_a": int(wa["global_step"]),
            "final_step_b": int(wb["global_step"]),
            "each_step_once": steps_b == list(range(1, len(steps_b) + 1)) and steps_b == la["global_step"].tolist(),
            "losses_equal": len(differ) == 0, "first_differing_step": first,
            "differs_before_stop": first is not None and first <= stopped_at,
            "max_loss_difference": float((merged["loss_a"].astype(float) - merged["loss_b"].astype(float))
                                         .abs().max()),
            "tensors": len(wa["model"]), "unequal_tensors": unequal, "max_weight_difference": worst,
            "exact": len(differ) == 0 and unequal == 0,
            "clips_per_s": float(la["clips_per_s"].median()), "data_wait_frac": float(la["data_wait_frac"].median())}


# --------------------------------------------------------------------------- step 4: notebooks

def step_notebooks(out: Path, settings: Settings, deadline: float) -> None:
    """The notebooks of ``settings.notebooks`` with LGD_PROFILE=gpu, one after another, each in the time left;
    their executed copies, figures and scratch folders under ``out/notebooks``."""
    root = repository_root() or repository_root(Path(__file__).resolve().parent)
    work = out / "notebooks"
    rows = []
    paths = []
    for number in settings.notebooks:
        found = list_notebooks(root / "notebooks", number) if root else []
        paths += found or [Path(f"{number} (not found: run from a checkout of the repository)")]
    videos = generated_kinetics(out, settings)[0] if any(p.name.startswith("05") for p in paths) else None
    env = {"LGD_PROFILE": "gpu", "LGD_FIGURES_DIR": str((work / "figures").resolve()),
           "LGD_WORK_DIR": str((work / "work").resolve()), "LGD_DATA_DIR": str((work / "data").resolve())}
    for path in paths:
        if not path.is_file():
            rows.append({"notebook": path.name, "ok": False, "seconds": 0.0, "error": "no such notebook"})
            continue
        params = {}
        if path.name.startswith("05"):
            params = {"VIDEO_ROOT": str(videos.resolve()), "GPU_OVERRIDES": list(settings.notebook_overrides)}
        left = deadline - time.time()
        if left < 5:
            rows.append({"notebook": path.stem, "ok": False, "seconds": 0.0, "error": "no time left"})
            continue
        done = run_notebook(path, out_dir=work, timeout=left - 2, params=params, env=env)
        rows.append({"notebook": path.stem, "ok": done.ok, "seconds": done.seconds, "error": done.error,
                     "reduced": path.name.startswith("05"),
                     "parameters": json.dumps(params) if params else ""})
        write_results(out, {"notebooks.csv": pd.DataFrame(rows)})
    write_results(out, {"notebooks.csv": pd.DataFrame(rows)})
    failed = [r["notebook"] for r in rows if not r["ok"]]
    if failed:
        raise RuntimeError(f"notebooks that failed: {', '.join(failed)} (notebooks.csv)")


# what a check writes into its folder (the generated videos, ``videos/``, are kept: they are the same every time)
SUMMARY = "summary.md"
OUTPUTS = ("settings.json", "gpu_check.json", "steps.csv", SUMMARY, "logs", "device.json", "batch_search.csv",
           "throughput.csv", "overhead.csv", "skipped.csv", "ddp", "ddp.json", "ddp_losses.csv", "notebooks",
           "notebooks.csv")

STEP_FUNCTIONS = {"device": step_device, "throughput": step_throughput, "ddp": step_ddp,
                  "notebooks": step_notebooks}


# --------------------------------------------------------------------------- the whole check

def limit_for(step: str, settings: Settings, left: float, later: list[str]) -> float:
    """The seconds ``step`` may take: its own limit, and no more than leaves the later steps their reserve."""
    keep = sum(settings.reserve.get(name, 0) for name in later)
    return max(0.0, min(settings.limits.get(step, left), left - keep))


def run_step(step: str, out: Path, limit: float) -> dict:
    """Run one step in its own process (``python -m lgd_tutorial.gpu_check STEP OUT``), killed at
    ``limit`` seconds; its status (passed, failed, timeout), seconds and the last lines of its output."""
    deadline = time.time() + limit
    command = [sys.executable, "-m", "lgd_tutorial.gpu_check", step, str(out),
               "--deadline", f"{deadline - 3:.3f}"]
    start = time.perf_counter()
    log_path = out / "logs" / f"{step}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    code = run_command(command, log_path, limit, launch_env())     # killed with what it started (torchrun, kernels)
    status = "timeout" if code is None else "passed" if code == 0 else "failed"
    tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()][-3:]
    error = "" if status == "passed" else (f"no result within {limit:.0f} s" if status == "timeout" else
                                           " | ".join(tail)[-600:])
    return {"step": step, "status": status, "seconds": time.perf_counter() - start, "limit_s": limit,
            "exit": code, "error": error}


def run_check(out, dry_run: bool | None = None, steps=STEPS, budget: float | None = None, notebooks=None,
              argv=None, log=print) -> pd.DataFrame:
    """The whole check into ``out``: every step of ``steps`` in order, each in its own process and time limit,
    then the Markdown summary (``SUMMARY``). ``dry_run`` None: a dry run when there is no CUDA. Returns the steps'
    table."""
    out = Path(out).resolve()              # the steps pass paths to processes that run in other folders
    out.mkdir(parents=True, exist_ok=True)
    if dry_run is None:
        dry_run = not torch.cuda.is_available()
    settings = Settings.for_run(dry_run)
    if budget is not None:
        settings.budget = float(budget)
    if notebooks is not None:
        settings.notebooks = tuple(notebooks)
    for name in OUTPUTS:                                  # a folder holds one check: nothing of an earlier one
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    meta = {**provenance("gpu-check", argv if argv is not None else []), "dry_run": dry_run,
            "settings": asdict(settings), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    write_results(out, {}, "settings.json", asdict(settings))
    write_results(out, {}, "gpu_check.json", meta)
    start, rows = time.time(), []
    for i, step in enumerate(steps):
        left = settings.budget - (time.time() - start)
        limit = limit_for(step, settings, left, list(steps[i + 1:]))
        if limit < 5:
            rows.append({"step": step, "status": "skipped", "seconds": 0.0, "limit_s": limit, "exit": None,
                         "error": "no time left in the budget"})
        else:
            log(f"{step} (limit {limit:.0f} s) ...", flush=True)
            rows.append(run_step(step, out, limit))
        row = rows[-1]
        log(f"  {row['status']} in {row['seconds']:.0f} s" + (f": {row['error']}" if row["error"] else ""),
            flush=True)
        write_results(out, {"steps.csv": pd.DataFrame(rows)})
    meta["seconds"] = time.time() - start
    write_results(out, {"steps.csv": pd.DataFrame(rows)}, "gpu_check.json", meta)
    (out / SUMMARY).write_text(markdown(out) + "\n")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the report

def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / name
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    return table if len(table) else None


def _interval(value: float, low: float, high: float, digits: int = 1) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(folder) -> str:
    """A finished (or partial) check as Markdown: provenance, the steps, the device, throughput with MFU, the
    diffusion overhead, the DDP resume and the notebooks. Parts whose step did not write them say so."""
    folder = Path(folder)
    meta = json.loads((folder / "gpu_check.json").read_text())
    lines = []
    if meta.get("dry_run"):
        lines += ["**Dry run**: tiny models and sizes, to show that every step starts and writes its files. "
                  "Its numbers measure nothing worth keeping.", ""]
    seconds = f", {meta['seconds']:.0f} s in all" if "seconds" in meta else ""
    lines += [f"Made by `{meta['command']}` at commit `{meta['commit']}` on {meta['started']} "
              f"({meta['machine']}{seconds}).", ""]
    steps = _read(folder, "steps.csv")
    if steps is not None:
        lines += ["| step | status | seconds | limit | error |", "| --- | --- | ---: | ---: | --- |"]
        for r in steps.itertuples():
            error = "" if pd.isna(r.error) else str(r.error).replace("|", "/")
            lines.append(f"| {r.step} | {r.status} | {r.seconds:.0f} | {r.limit_s:.0f} | {error} |")
        lines.append("")
    lines += _device_lines(folder) + _throughput_lines(folder) + _ddp_lines(folder) + _notebook_lines(folder)
    return "\n".join(lines).rstrip()


def _device_lines(folder: Path) -> list[str]:
    path = folder / "device.json"
    if not path.is_file():
        return ["Device: not measured (the device step wrote nothing).", ""]
    d = json.loads(path.read_text())
    memory = f", {d['memory_gib']:.1f} GiB" if d.get("memory_gib") else ""
    versions = f"torch {d['torch']}, CUDA {d['cuda']}, cuDNN {d['cudnn']}, driver {d['driver']}" if d.get(
        "gpus") else f"torch {d['torch']} (no CUDA device)"
    return [f"**Device**: {d['name']}{memory}" + (f", compute capability {d['capability']}, {d['gpus']} GPU(s)"
                                                  if d.get("gpus") else "") + f"; {versions}. "
            f"bf16: {'yes' if d['bf16'] else 'no'}; TF32: {'yes' if d['tf32'] else 'no'}. "
            f"Peak for the MFU: {d['peak_tflops']:.3g} TFLOP/s ({d['peak_source']}); measured "
            f"{d['matmul_dtype']} matrix product: {d['measured_matmul_tflops']:.1f} TFLOP/s. Python {d['python']}, "
            f"numpy {d.get('numpy')}, pandas {d.get('pandas')}, {d.get('cpus')} CPUs"
            + (f", /dev/shm {d['shm_gib']:.1f} GiB" if d.get("shm_gib") else "") + ".", ""]


def _throughput_lines(folder: Path) -> list[str]:
    table = _read(folder, "throughput.csv")
    lines = []
    if table is None:
        lines += ["Throughput: not measured (the throughput step wrote no rows).", ""]
    else:
        lines += ["| model | mode | clip | batch (largest that fits) | steps/s | clips/s [95% interval] | MFU | "
                  "first step s | peak GiB |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in table.itertuples():
            memory = "" if pd.isna(r.peak_memory_gib) else f"{r.peak_memory_gib:.1f}"
            lines.append(f"| `{r.model}` | {r.mode} | {r.clip} | {r.batch} ({r.largest_batch}) | "
                         f"{r.steps_per_s:.2f} | {_interval(r.clips_per_s, r.clips_per_s_low, r.clips_per_s_high)} "
                         f"| {100 * r.mfu:.1f}% | {r.first_step_s:.1f} | {memory} |")
        first = table.iloc[0]
        lines += ["", f"Training steps (forward, backward, SGD) in {first['dtype']} autocast with channels_last_3d; "
                  f"MFU = model FLOPs per step x steps/s / the peak above; {int(first['repeats'])} timed steps "
                  "per row after warm-up steps (the first one, with compilation and cuDNN's autotuning, timed in "
                  "its own column). LGD and its plain twin run at the same batch, interleaved.", ""]
        notes = table[table["note"].fillna("") != ""] if "note" in table else table.iloc[:0]
        if len(notes):
            lines += ["Batch changed: " + "; ".join(f"`{r.model}` {r.mode}: {r.note}" for r in notes.itertuples())
                      + ".", ""]
    overhead = _read(folder, "overhead.csv")
    if overhead is not None:
        lines.append("Diffusion overhead t(LGD) / t(plain), median [95% interval] over interleaved steps: " +
                     "; ".join(f"{r.mode} `{r.model}` against `{r.without_diffusion}` at batch {r.batch}: "
                               f"{r.overhead_pct:+.1f}% [{100 * (r.ratio_low - 1):+.1f}, "
                               f"{100 * (r.ratio_high - 1):+.1f}]" for r in overhead.itertuples()) + ".")
        lines.append("")
    skipped = _read(folder, "skipped.csv")
    if skipped is not None:
        lines.append("Not measured: " + "; ".join(f"`{r.model}` {r.mode} ({r.reason})"
                                                  for r in skipped.itertuples()) + ".")
        lines.append("")
    return lines


def _ddp_lines(folder: Path) -> list[str]:
    path = folder / "ddp.json"
    if not path.is_file():
        return ["DDP: not run (the ddp step wrote nothing).", ""]
    d = json.loads(path.read_text())
    if "exact" not in d:
        return [f"DDP: incomplete (straight run exit {d.get('straight_exit')}; see `ddp/*.log`).", ""]
    problems = ddp_problems(d)
    verdict = ("the resumed run's losses and final weights equal the straight run's, bit for bit" if not problems
               else "; ".join(problems) + f" (largest loss difference {d['max_loss_difference']:.2g}, weights "
                                          f"{d['max_weight_difference']:.2g})")
    return [f"**DDP** (`torchrun --nproc-per-node 1`, recipe `{d['recipe']}` on {d['videos']['train']} generated "
            f"videos, {d['classes']} classes): {d['steps']} steps; SIGTERM to torchrun after step {d['stop_at']}, "
            f"checkpoint at step {d['stopped_at_step']} (torchrun's exit status {d['interrupted_exit']}), "
            f"started again: resumed (exit status {d['resumed_exit']}); every step logged once: "
            f"{'yes' if d['each_step_once'] else 'NO'}; {verdict}. The straight run trained at "
            f"{d['clips_per_s']:.1f} clips/s (median; with run.deterministic=true, so without cuDNN's autotuning, "
            f"not the recipe's speed), waiting for data {100 * d['data_wait_frac']:.0f}% of the time.", ""]


def _notebook_lines(folder: Path) -> list[str]:
    table = _read(folder, "notebooks.csv")
    if table is None:
        return ["Notebooks: not run (the notebooks step wrote nothing)."]
    return ["Notebooks with `LGD_PROFILE=gpu`: " + "; ".join(
        f"{r.notebook} {'ran' if r.ok else 'FAILED'} in {r.seconds:.0f} s"
        + (" (reduced: one epoch of a few steps on generated videos)" if getattr(r, "reduced", False) is True
           else "") + ("" if r.ok else f" ({r.error})") for r in table.itertuples()) + "."]


README_BEGIN, README_END = "<!-- gpu-check report: begin -->", "<!-- gpu-check report: end -->"


def readme_section(folder=None) -> str:
    """What the README shows between its gpu-check markers: the shipped report (``figures/gpu``) when there is
    one from a real device, else a statement that there is none yet."""
    if folder is None or not (Path(folder) / "gpu_check.json").is_file():
        return ("No report from a real GPU ships yet: the CUDA side has not run on a GPU, and only the dry run "
                "above (on a CPU) is tested. On a GPU, `lgd gpu-check --out figures/gpu` writes the report, and "
                "`lgd gpu-check --report figures/gpu --update-readme` puts it here.")
    return markdown(folder)


def update_readme(folder, readme=None) -> Path:
    """Write ``readme_section(folder)`` into the README between its markers; returns the README's path."""
    path = Path(readme) if readme else (repository_root(Path(__file__).resolve().parent) or Path.cwd()) / "README.md"
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no '{README_BEGIN}' ... '{README_END}' markers")
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    path.write_text(f"{head}{README_BEGIN}\n{readme_section(folder)}\n{README_END}{tail}")
    return path


def main(argv=None) -> int:
    """One step in this process: ``python -m lgd_tutorial.gpu_check STEP OUT --deadline T``."""
    parser = argparse.ArgumentParser(description="one step of the GPU check (run_check starts these)")
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("out")
    parser.add_argument("--deadline", type=float, required=True, help="time.time() by which to be done")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    settings = Settings.from_dict(json.loads((out / "settings.json").read_text()))
    STEP_FUNCTIONS[args.step](out, settings, args.deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
