"""Model throughput: clips/s, achieved GFLOP/s, bf16, and what diffusion costs and why (``lgd bench``).

    lgd bench [--smoke] [--models ...] [--sizes 16x224 8x112] [--repeats 3] [--batch-size 1]
              [--dtypes fp32 bf16] [--device cpu|cuda] [--threads N] [--out runs/bench]
              [--figure figures/bench_models.png]

For every model, clip size and dtype it measures forward (inference) and
forward+backward (training step) clips/s, and sets them against:

- FLOPs per clip (PyTorch's FLOP counter, a multiply-add counts 2; forward
  from ``lgd_tutorial.models.summary``) -> achieved GFLOP/s;
- the peak (``peak_table``): the best of several GEMM and conv shapes at 1 and
  all threads, per dtype, measured in the same run; on a CPU also the
  theoretical peak from the vector width and clock Linux reports. "Fraction of
  peak" divides by the larger of the two, so it cannot pass 1;
- the same backbone without diffusion (``p3d_r50`` for ``lgd3d_r50``,
  ``p3d_tiny`` for ``lgd3d_tiny``) -> diffusion overhead = t(LGD) / t(P3D), a
  median with a 95% interval over interleaved repeats;
- a memory-traffic model of that overhead (``diffusion_passes``): the bytes
  the diffusion adds per block, the time they take at the measured memory
  bandwidth, and the same operations timed alone;
- fp32 against bf16 autocast, where the device has bf16 (whether or not
  ``run.amp=auto`` would pick it there): the speed-up with its interval;
- torchvision's R(2+1)D-18 and R3D-18 (random weights), the usual peers;
- the data pipeline (``experiments.bench_data``) -> loader workers needed to
  keep up with the training rate.

Timings are medians over repeats after a warm-up step. The models of one
size and mode run interleaved (A B C, C B A, ...), so a noisy machine slows
them alike; ratios from one run are more trustworthy than absolute numbers.
A line is printed per model as it is measured, and the CSV files are
rewritten after every size and mode, so an interrupted run keeps what it has.
On CUDA it also compares fp32 with bf16 autocast, channels_last_3d and
``torch.compile``, finds the largest batch that fits with its peak memory, and
measures sustained SGD training.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models import build_model, diffusion_pairs
from ..models.lgd import LGDBlock
from ..models.summary import count_flops
from ..stats import median_interval
from ..utils import cpu_native_bf16, resolve_device
from ..viz.figcheck import write_figure
from . import bench_data as data_bench
from .results import provenance, write_results

MODELS = ("lgd3d_r50", "p3d_r50", "lgd3d_tiny", "p3d_tiny", "r2plus1d_18", "r3d_18")
PEERS = ("r2plus1d_18", "r3d_18")                       # torchvision.models.video, random weights
SIZES = ("16x224", "8x112")
MODES = ("forward", "train")
NUM_CLASSES = 400


def parse_size(text: str) -> tuple[int, int]:
    """"16x224" -> (16 frames, 224 x 224 crop)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"a clip size is FRAMESxSIZE, e.g. 16x224; got {text!r}")
    return int(parts[0]), int(parts[1])


def build(name: str) -> nn.Module:
    """A registered LGD/P3D model or a torchvision video ResNet (``PEERS``), randomly initialised."""
    if name in PEERS:
        from torchvision.models import video
        return getattr(video, name)(weights=None, num_classes=NUM_CLASSES)
    return build_model(name, NUM_CLASSES)


def training_flops(model: nn.Module, frames: int, size: int, device: torch.device | None = None) -> int:
    """FLOPs of one forward+backward pass on one clip (about 3x the forward FLOPs), counted on ``device`` (the
    model's; default the CPU) in float32: the count does not depend on the dtype."""
    clip = torch.zeros(1, 3, frames, size, size, device=device)
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(clip).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (waiting for the GPU to finish)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


GEMMS = ((1024, 1024, 1024), (2048, 2048, 2048), (25088, 576, 64), (6272, 2304, 256))
CONVS = ((64, 8, 56), (256, 4, 28))       # (channels in = out, frames, side): the models' (1, 3, 3) convs
SMOKE_GEMMS, SMOKE_CONVS = ((256, 256, 256),), ((16, 4, 16),)


def kernel_rate(kind: str, shape, dtype, device: torch.device, repeats: int) -> tuple[str, float]:
    """(label, best GFLOP/s over ``repeats``) of one GEMM (M, K, N) or one (1, 3, 3) conv (C, T, S)."""
    if kind == "matmul":
        m, k, n = shape
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        run, flops, label = (lambda: a @ b), 2 * m * k * n, f"matmul {m}x{k}x{n}"
    else:
        c, t, size = shape
        conv = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1), bias=False).to(device=device, dtype=dtype)
        x = torch.randn(1, c, t, size, size, device=device, dtype=dtype)
        run, flops, label = (lambda: conv(x)), 2 * c * c * 9 * t * size * size, f"conv3d 1x3x3 {c}ch {t}x{size}x{size}"
    with torch.inference_mode():
        timed(run, device)                                            # warm-up
        seconds = min(timed(run, device) for _ in range(repeats))
    return label, flops / seconds / 1e9


def peak_table(device: torch.device, dtypes, smoke: bool = False, repeats: int = 3) -> pd.DataFrame:
    """Measured kernel rates: every GEMM and conv shape x dtype x thread count (1 and all on a CPU).

    The best of these is the reference the models are set against: the rate the kernels they use
    actually reach on this machine, rather than one square matmul at one thread count.
    """
    threads = torch.get_num_threads()
    counts = [threads] if device.type == "cuda" else sorted({1, threads})
    gemms, convs = (SMOKE_GEMMS, SMOKE_CONVS) if smoke else (GEMMS, CONVS)
    rows = []
    try:
        for count in counts:
            torch.set_num_threads(count)
            for dtype in dtypes:
                for kind, shapes in (("matmul", gemms), ("conv", convs)):
                    for shape in shapes:
                        label, rate = kernel_rate(kind, shape, DTYPES[dtype], device, 1 if smoke else repeats)
                        rows.append({"kernel": label, "dtype": dtype, "threads": count, "gflop_per_s": rate})
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(rows)


def cpu_clock_ghz() -> float | None:
    """The clock Linux reports (cpuinfo_max_freq, else /proc/cpuinfo "cpu MHz"); None where neither reads."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1e3
    except (OSError, ValueError):
        pass
    return None


FMA_UNITS = 2           # FMA pipes per core: not readable from the OS; 2 on current x86 server cores


def theoretical_peak(threads: int) -> dict | None:
    """The CPU's fp32 and bf16 peak from what Linux tells: vector width (flags), clock, cores in use.

    fp32 FLOP/cycle/core = FMA_UNITS x (width / 32 lanes) x 2 (a fused multiply-add); native bf16 dot
    products (AVX-512 BF16) do twice that. None when the flags or the clock cannot be read.
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return None
    width = 512 if "avx512f" in flags else 256 if "fma" in flags else 0
    clock = cpu_clock_ghz()
    if not width or not clock:
        return None
    fp32 = threads * clock * FMA_UNITS * (width // 32) * 2
    bf16 = 2 * fp32 if "avx512_bf16" in flags or "amx_bf16" in flags else None
    return {"clock_ghz": clock, "vector_bits": width, "fma_units": FMA_UNITS, "cores": threads,
            "fp32": fp32, "bf16": bf16}


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    """fp32, and bf16 on GPUs that have it and on CPUs with native bf16 (``utils.cpu_native_bf16``), whether
    or not ``run.amp=auto`` would pick it: the benchmark is where the choice is checked."""
    if device.type == "cuda":
        return ("fp32", "bf16") if torch.cuda.is_bf16_supported() else ("fp32",)
    return ("fp32", "bf16") if cpu_native_bf16() else ("fp32",)


def step(model: nn.Module, clip: torch.Tensor, labels: torch.Tensor, mode: str, dtype: str = "fp32"):
    """One inference forward (``mode="forward"``) or one training forward+backward (``"train"``), under
    bf16 autocast with ``dtype="bf16"`` (as the Trainer runs it)."""
    def autocast():
        return torch.autocast(clip.device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    if mode == "forward":
        def run():
            with torch.inference_mode(), autocast():
                model(clip)
        model.eval()
    else:
        def run():
            with autocast():
                loss = nn.functional.cross_entropy(model(clip).float(), labels)
            loss.backward()
            model.zero_grad(set_to_none=True)
        model.train()
    return run


def interleaved_times(models: dict, clip, labels, mode: str, repeats: int,
                      device: torch.device) -> dict[tuple, list[float]]:
    """Seconds per step for each (name, dtype) -> model, measured A B C, C B A, A B C ... after one
    warm-up step each."""
    return interleave({key: step(model, clip, labels, mode, key[1]) for key, model in models.items()}, repeats,
                      device)


def interleave(runs: dict, repeats: int, device: torch.device) -> dict:
    """Seconds per call of every function in ``runs``, measured A B C, C B A, A B C ... after one warm-up
    call each (so drift in the machine's speed falls on all of them alike)."""
    keys = list(runs)
    for key in keys:
        timed(runs[key], device)
    times = {key: [] for key in keys}
    for r in range(repeats):
        for key in (keys if r % 2 == 0 else keys[::-1]):
            times[key].append(timed(runs[key], device))
    return times


def overhead_rows(times: dict[tuple, list[float]], size: str, mode: str) -> list[dict]:
    """Diffusion overhead per pair and dtype measured in this loop: t(LGD) / t(P3D) per interleaved repeat,
    as a median with a distribution-free 95% interval over the repeats (``median_interval``)."""
    rows = []
    dtypes = dict.fromkeys(dtype for _, dtype in times)
    for lgd, plain in diffusion_pairs():
        for dtype in dtypes:
            if (lgd, dtype) in times and (plain, dtype) in times:
                a, b = times[(lgd, dtype)], times[(plain, dtype)]
                ratio, low, high = median_interval([x / y for x, y in zip(a, b)])
                rows.append({"size": size, "mode": mode, "dtype": dtype, "model": lgd, "without_diffusion": plain,
                             "time_ratio": ratio, "ratio_low": low, "ratio_high": high, "repeats": len(a),
                             "overhead_pct": 100 * (ratio - 1), "ms_without_diffusion": 1e3 * statistics.median(b)})
    return rows


def bf16_rows(times: dict[tuple, list[float]], size: str, mode: str) -> list[dict]:
    """bf16 autocast against fp32 per model: the speed-up t(fp32) / t(bf16) per interleaved repeat, with
    its interval (``median_interval``)."""
    rows = []
    for name, dtype in times:
        if dtype == "bf16" and (name, "fp32") in times:
            ratio, low, high = median_interval([a / b for a, b in zip(times[(name, "fp32")], times[(name, "bf16")])])
            rows.append({"size": size, "mode": mode, "model": name, "speedup": ratio, "speedup_low": low,
                         "speedup_high": high, "repeats": len(times[(name, dtype)])})
    return rows


def bench_models(names, sizes, modes, repeats: int, batch: int, device: torch.device, peaks: dict,
                 dtypes=("fp32",), log=print, save=None) -> dict[str, pd.DataFrame]:
    """The main table (one row per model, size, mode and dtype), the diffusion overhead and the bf16
    speed-up. ``peaks`` maps a dtype to the reference GFLOP/s; ``log`` gets a line per measured model as it
    finishes (None for silence); ``save(tables)`` is called after every size and mode (partial CSVs)."""
    rows, overheads, speedups = [], [], []
    tables = {}
    for size_text in sizes:
        frames, size = parse_size(size_text)
        models, flops = {}, {}
        for name in names:
            model = build(name)
            flops[name] = {"forward": count_flops(model, frames, size),
                           "train": training_flops(model, frames, size) if "train" in modes else 0}
            model = model.to(device)
            models.update({(name, dtype): model for dtype in dtypes})
        clip = torch.randn(batch, 3, frames, size, size, device=device)
        labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        shape = f"{frames}x{size}x{size}"
        for mode in modes:
            times = interleaved_times(models, clip, labels, mode, repeats, device)
            for (name, dtype), seconds in times.items():
                median = statistics.median(seconds)
                gflops = flops[name][mode] * batch / median / 1e9
                rows.append({"model": name, "size": shape, "mode": mode, "dtype": dtype, "batch": batch,
                             "ms_per_step": 1e3 * median, "clips_per_s": batch / median,
                             "gflop_per_clip": flops[name][mode] / 1e9, "gflop_per_s": gflops,
                             "peak_fraction": gflops / peaks[dtype]})
                if log is not None:
                    log(f"  {shape} {mode:<7} {dtype} {name:<12} {1e3 * median:9.1f} ms/step "
                        f"{batch / median:8.2f} clips/s {gflops:7.1f} GFLOP/s", flush=True)
            overheads += overhead_rows(times, shape, mode)
            speedups += bf16_rows(times, shape, mode)
            tables = {"models": pd.DataFrame(rows), "overhead": pd.DataFrame(overheads)}
            if speedups:
                tables["bf16"] = pd.DataFrame(speedups)
            if save is not None:
                save(tables)
    return tables


def channels_last_table(names, sizes, repeats: int, batch: int, device: torch.device) -> pd.DataFrame:
    """Training steps in channels_last_3d against the default layout, per model and size: the speed-up
    t(default) / t(channels_last_3d) per interleaved repeat, with its interval (``run.channels_last_cpu``)."""
    import copy

    rows = []
    for size_text in sizes:
        frames, size = parse_size(size_text)
        clip = torch.randn(batch, 3, frames, size, size, device=device)
        labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        for name in names:
            default = build(name).to(device)
            last = copy.deepcopy(default).to(memory_format=torch.channels_last_3d)
            times = interleave({"default": step(default, clip, labels, "train"),
                                "last": step(last, clip.contiguous(memory_format=torch.channels_last_3d), labels,
                                             "train")}, repeats, device)
            ratio, low, high = median_interval([a / b for a, b in zip(times["default"], times["last"])])
            rows.append({"model": name, "size": f"{frames}x{size}x{size}", "batch": batch, "speedup": ratio,
                         "speedup_low": low, "speedup_high": high, "repeats": repeats,
                         "ms_default": 1e3 * statistics.median(times["default"]),
                         "ms_channels_last": 1e3 * statistics.median(times["last"])})
    return pd.DataFrame(rows)


def median_time(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    timed(fn, device)
    return statistics.median(timed(fn, device) for _ in range(repeats))


def memory_bandwidth(device: torch.device, megabytes: int = 256, repeats: int = 5) -> float:
    """Measured memory bandwidth in GB/s: the best of ``repeats`` out-of-place adds c = a + b of
    ``megabytes`` each (3 x that many bytes move: two reads, one write)."""
    n = megabytes * 2 ** 20 // 4
    a, b, c = (torch.rand(n, device=device) for _ in range(3))
    timed(lambda: torch.add(a, b, out=c), device)
    seconds = min(timed(lambda: torch.add(a, b, out=c), device) for _ in range(repeats))
    return 3 * n * 4 / seconds / 1e9


def diffusion_passes(name: str, frames: int, size: int, batch: int) -> list[dict]:
    """The tensors the diffusion reads and writes beyond the plain network, block by block.

    Per LGD block with input x (S_in bytes) and output (S_out bytes), in float32:
    - forward: P(x) reads x (S_in, local-to-global); the broadcast add of U(W_xg g) reads and writes the
      block's output (2 S_out, global-to-local); the stem's g0 = P(stem output) reads it once;
    - backward: W_xg's input gradient sums the output gradient over (T, H, W) (S_out); the pool's
      gradient is added into x's gradient (read and write, 2 S_in).
    The linear projections work on (N, C) vectors: their bytes are negligible and not counted.
    """
    model = build(name).eval()
    found, stem = [], []
    hooks = [model.stem.register_forward_hook(lambda m, args, out: stem.append(4 * out.numel()))]
    for module in model.modules():
        if isinstance(module, LGDBlock):
            hooks.append(module.register_forward_hook(
                lambda m, args, out: found.append((m, tuple(args[0].shape), tuple(out[0].shape)))))
    with torch.inference_mode():
        model(torch.zeros(batch, 3, frames, size, size))
    for hook in hooks:
        hook.remove()
    rows = [{"part": "stem pool", "forward": stem[0], "backward": 0}]
    for block, in_shape, out_shape in found:
        reads, writes = block.local_to_global is not None, block.global_to_local is not None
        s_in, s_out = 4 * math.prod(in_shape), 4 * math.prod(out_shape)
        rows.append({"part": "block", "forward": reads * s_in + writes * 2 * s_out,
                     "backward": writes * s_out + reads * 2 * s_in, "in_shape": in_shape, "out_shape": out_shape,
                     "reads": reads, "writes": writes, "module": block})
    return rows


def vector_path_seconds(block, batch: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """(forward, forward+backward) seconds of one block's global path alone: the projections and ReLU on
    (N, C) vectors, g_new = ReLU(W_gg g + W_gx p) and W_xg g_new. Little arithmetic and few bytes; what it
    costs is a fixed price per operation (dispatch, autograd), paid 16 times per step in lgd3d_r50.
    ``block`` belongs to the throwaway model of ``diffusion_passes`` and is moved to ``device`` in place."""
    module = block.to(device)
    c_in = module.global_to_global[0].in_features
    g, p = (torch.rand(batch, c_in, device=device, requires_grad=True) for _ in range(2))

    def forward():
        g_new = torch.relu(module.global_to_global(g) + (module.local_to_global(p) if module.local_to_global
                                                          is not None else 0))
        term = module.global_to_local(g_new) if module.global_to_local is not None else g_new
        return g_new, term

    def train():
        g_new, term = forward()
        (g_new.sum() + term.sum()).backward()

    with torch.no_grad():
        fwd = median_time(forward, device, repeats)
    return fwd, median_time(train, device, repeats)


def diffusion_op_seconds(passes: list[dict], batch: int, repeats: int, device: torch.device) -> dict:
    """The extra operations of ``diffusion_passes`` timed alone on tensors of the blocks' sizes (medians):
    the map-sized passes (``forward``, ``train``) and the global path's vector operations (``vector_*``)."""
    fwd = bwd = vector_fwd = vector_train = 0.0
    for p in passes:
        if p["part"] != "block":
            continue
        x, out = torch.rand(p["in_shape"], device=device), torch.rand(p["out_shape"], device=device)
        x_vector, out_vector = (torch.rand(t.shape[:2], device=device)[..., None, None, None] for t in (x, out))
        if p["reads"]:
            fwd += median_time(lambda: x.mean((2, 3, 4)), device, repeats)            # P(x)
            bwd += median_time(lambda: x.add_(x_vector), device, repeats)              # its gradient into x's
        if p["writes"]:
            fwd += median_time(lambda: out.add_(out_vector), device, repeats)          # + U(W_xg g)
            bwd += median_time(lambda: out.sum((2, 3, 4)), device, repeats)            # W_xg's input gradient
        vf, vt = vector_path_seconds(p["module"], batch, repeats, device)
        vector_fwd, vector_train = vector_fwd + vf, vector_train + vt
    return {"forward": fwd, "train": fwd + bwd, "vector_forward": vector_fwd, "vector_train": vector_train}


def traffic_table(overhead: pd.DataFrame, batch: int, repeats: int, device: torch.device,
                  bandwidth: float) -> pd.DataFrame:
    """Why diffusion costs what it does: its extra bytes (``diffusion_passes``), the time they take at the
    measured bandwidth, the same operations timed alone, and the overhead measured end to end (fp32)."""
    rows = []
    for (model, size), group in overhead[overhead["dtype"] == "fp32"].groupby(["model", "size"], sort=False):
        frames, side = parse_size(size.rsplit("x", 1)[0])
        passes = diffusion_passes(model, frames, side, batch)
        ops = diffusion_op_seconds(passes, batch, repeats, device)
        for row in group.itertuples():
            moved = sum(p["forward"] for p in passes) + (row.mode == "train") * sum(p["backward"] for p in passes)
            predicted_ms = 1e3 * moved / (bandwidth * 1e9)
            vector_ms = 1e3 * ops[f"vector_{row.mode}"]
            rows.append({"model": model, "size": size, "mode": row.mode, "extra_mb": moved / 1e6,
                         "predicted_ms": predicted_ms, "ops_alone_ms": 1e3 * ops[row.mode],
                         "vector_path_ms": vector_ms, "ms_without_diffusion": row.ms_without_diffusion,
                         "predicted_pct": 100 * predicted_ms / row.ms_without_diffusion,
                         "ops_alone_pct": 100e3 * ops[row.mode] / row.ms_without_diffusion,
                         "vector_path_pct": 100 * vector_ms / row.ms_without_diffusion,
                         "model_pct": 100 * (predicted_ms + vector_ms) / row.ms_without_diffusion,
                         "measured_pct": row.overhead_pct, "measured_low_pct": 100 * (row.ratio_low - 1),
                         "measured_high_pct": 100 * (row.ratio_high - 1)})
    return pd.DataFrame(rows)


def data_rates(results: pd.DataFrame, smoke: bool, repeats: int) -> pd.DataFrame:
    """Loader workers each model needs at its measured training rate (rates from ``experiments.bench_data``).

    The per-worker rate is the faster backend's decode+transform rate on the
    slowest (largest) test video; ``experiments.bench_data`` decodes 16-frame clips and
    crops 112 x 112, so for 224 crops it is an upper bound.
    """
    train = results[results["mode"] == "train"]
    decode = data_bench.run(smoke=smoke, target=float(train["clips_per_s"].max()), repeats=repeats)
    decode = decode[decode["test"] == "decode+transform"]
    per_worker = decode.groupby("video")["clips_per_s"].max().min()
    return pd.DataFrame([{"model": row.model, "size": row.size, "train_clips_per_s": row.clips_per_s,
                          "decode_clips_per_s_per_worker": per_worker,
                          "workers_needed": math.ceil(row.clips_per_s / per_worker)}
                         for row in train.itertuples()])


def cuda_settings(names, size_text: str, repeats: int, batch: int, device: torch.device) -> pd.DataFrame:
    """Training clips/s on the GPU for fp32 / bf16 autocast x channels_last_3d x torch.compile."""
    frames, size = parse_size(size_text)
    clip = torch.randn(batch, 3, frames, size, size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    rows = []
    for name in names:
        for dtype in (torch.float32, torch.bfloat16):
            for channels_last in (False, True):
                for compiled in (False, True):
                    model = build(name).to(device)
                    x = clip
                    if channels_last:
                        model = model.to(memory_format=torch.channels_last_3d)
                        x = clip.contiguous(memory_format=torch.channels_last_3d)
                    runner = torch.compile(model) if compiled else model
                    train = step(runner, x, labels, "train")

                    def run():
                        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                            train()
                    model.train()
                    for _ in range(2):                                # warm-up (and compilation)
                        timed(run, device)
                    seconds = statistics.median(timed(run, device) for _ in range(repeats))
                    rows.append({"model": name, "size": size_text, "dtype": str(dtype).replace("torch.", ""),
                                 "channels_last_3d": channels_last, "compiled": compiled, "batch": batch,
                                 "train_clips_per_s": batch / seconds})
    return pd.DataFrame(rows)


def largest_batch(name: str, size_text: str, device: torch.device, limit: int = 1024) -> tuple[int, float]:
    """The largest power-of-two training batch that fits on the GPU, and its peak memory in GiB."""
    frames, size = parse_size(size_text)
    model = build(name).to(device).train()
    fits, peak = 0, 0.0
    batch = 1
    while batch <= limit:
        try:
            torch.cuda.reset_peak_memory_stats(device)
            clip = torch.randn(batch, 3, frames, size, size, device=device)
            labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
            timed(step(model, clip, labels, "train"), device)
            fits, peak = batch, torch.cuda.max_memory_allocated(device) / 2 ** 30
            batch *= 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    return fits, peak


def sustained_training(name: str, size_text: str, batch: int, steps: int, device: torch.device) -> float:
    """Training clips/s over ``steps`` SGD steps (after two warm-up steps), the pace a loader must keep."""
    frames, size = parse_size(size_text)
    model = build(name).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    clip = torch.randn(batch, 3, frames, size, size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)

    def sgd_step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(clip), labels).backward()
        optimizer.step()
    for _ in range(2):
        timed(sgd_step, device)
    return batch * steps / timed(lambda: [sgd_step() for _ in range(steps)], device)


def bench_cuda(names, sizes, repeats: int, batch: int, device: torch.device, smoke: bool) -> pd.DataFrame:
    """The GPU-only measurements, one table: settings, largest batch with peak memory, sustained SGD rate."""
    size = sizes[0]
    settings = cuda_settings(names, size, repeats, batch, device)
    rows = []
    for name in names:
        fits, memory = largest_batch(name, size, device, limit=4 if smoke else 1024)
        rate = sustained_training(name, size, max(fits, 1), steps=2 if smoke else 20, device=device)
        rows.append({"model": name, "size": size, "largest_batch": fits, "peak_memory_gib": memory,
                     "sustained_train_clips_per_s": rate})
    return settings.merge(pd.DataFrame(rows), on=["model", "size"], how="left")


def plot(results: pd.DataFrame, peaks: dict[str, float], path: Path) -> None:
    """Clips/s (log scale) and achieved GFLOP/s per model (fp32), one row of panels per clip size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    results = results[results["dtype"] == "fp32"]
    sizes = list(dict.fromkeys(results["size"]))
    fig, axes = plt.subplots(len(sizes), 2, figsize=(12, 3.6 * len(sizes)), squeeze=False)
    for (left, right), size in zip(axes, sizes):
        table = results[results["size"] == size]
        sns.barplot(table, x="model", y="clips_per_s", hue="mode", ax=left)
        left.set(yscale="log", title=f"clips/s at {size}", xlabel="", ylabel="clips/s (log)")
        sns.barplot(table, x="model", y="gflop_per_s", hue="mode", ax=right)
        right.axhline(peaks["fp32"], color="black", linestyle="--", label=f"fp32 peak ({peaks['fp32']:.0f})")
        right.set(title=f"achieved GFLOP/s at {size}", xlabel="", ylabel="GFLOP/s")
        right.legend(fontsize="small")
        for ax in (left, right):
            ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()

    write_figure(fig, path, dpi=120)
    plt.close(fig)


def reference_peaks(peaks: pd.DataFrame, theory: dict | None) -> dict[str, float]:
    """Per dtype, the rate "fraction of peak" divides by: the theoretical peak where it can be read,
    else the best measured kernel (the theoretical one is at least what any kernel reaches)."""
    best = peaks.groupby("dtype")["gflop_per_s"].max().to_dict()
    return {dtype: max(rate, (theory or {}).get(dtype) or 0.0) for dtype, rate in best.items()}


def run(models=MODELS, sizes=SIZES, repeats: int = 3, batch: int = 1, device: str = "cpu",
        threads: int | None = None, smoke: bool = False, data: bool = True, dtypes=None,
        channels_last: bool = False, out: str | Path = "runs/bench",
        figure: str | Path | None = "figures/bench_models.png", log=print, argv=None) -> dict:
    """Run the benchmark; write CSVs to ``out`` (partial ones as it goes) and the plot to ``figure``;
    return the tables. ``log`` gets a progress line per stage and model (None for silence); ``argv``
    (the command line) goes into ``bench.json`` with the commit, the machine and the time taken."""
    say = log or (lambda *a, **k: None)
    started = time.perf_counter()
    made_by = provenance("bench", argv if argv is not None else [])      # the code as it was at the start
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device) if isinstance(device, str) else device
    dtypes = tuple(dtypes or default_dtypes(device))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def save(tables):
        write_results(out, {f"{name}.csv": table for name, table in tables.items()})
    torch.manual_seed(0)
    say(f"kernel rates ({', '.join(dtypes)}; GEMM and conv shapes; thread counts) ...", flush=True)
    peaks = peak_table(device, dtypes, smoke)
    theory = theoretical_peak(torch.get_num_threads()) if device.type == "cpu" else None
    reference = reference_peaks(peaks, theory)
    bandwidth = memory_bandwidth(device, megabytes=16 if smoke else 256)
    machine = {"device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "memory_gb_per_s": bandwidth, **{f"best_kernel_{d}_gflop_per_s": r for d, r in
                                                 peaks.groupby("dtype")["gflop_per_s"].max().items()},
               **{f"reference_{d}_gflop_per_s": r for d, r in reference.items()}}
    if theory:
        machine.update({f"theoretical_{k}": v for k, v in theory.items() if v is not None})
    tables = {"machine": pd.DataFrame([machine]), "peak": peaks}
    save(tables)
    say(f"memory bandwidth {bandwidth:.1f} GB/s; models ...", flush=True)
    tables.update(bench_models(models, sizes, MODES, repeats, batch, device, reference, dtypes, log=log,
                               save=save))
    tables["models"]["device"], tables["models"]["threads"] = machine["device"], machine["threads"]
    if len(tables["overhead"]):
        say("the memory-traffic model of the diffusion overhead ...", flush=True)
        tables["traffic"] = traffic_table(tables["overhead"], batch, max(3, repeats), device, bandwidth)
    if channels_last:
        say("channels_last_3d against the default layout ...", flush=True)
        tables["channels_last"] = channels_last_table(models, sizes, max(3, repeats), batch, device)
    if data:
        say("data pipeline ...", flush=True)
        tables["data"] = data_rates(tables["models"][tables["models"]["dtype"] == "fp32"], smoke, repeats)
    if device.type == "cuda":
        say("CUDA settings, largest batch, sustained training ...", flush=True)
        tables["cuda"] = bench_cuda(models, sizes, repeats, batch, device, smoke)
    save(tables)
    write_results(out, {}, "bench.json", {**made_by, "seconds": time.perf_counter() - started})
    if figure:
        plot(tables["models"], reference, Path(figure))
    return tables


def report(tables: dict) -> str:
    """The tables as text, with the peak, the bf16 speed-up and the traffic model explained."""
    machine = tables["machine"].iloc[0]
    lines = [f"{machine['device']}, {machine['threads']} threads, torch {machine['torch']}; "
             f"memory bandwidth {machine['memory_gb_per_s']:.1f} GB/s (c = a + b)"]
    for dtype in DTYPES:
        if f"reference_{dtype}_gflop_per_s" not in machine:
            continue
        best = tables["peak"][tables["peak"]["dtype"] == dtype].sort_values("gflop_per_s").iloc[-1]
        text = (f"{dtype} peak: best kernel {best['gflop_per_s']:.1f} GFLOP/s ({best['kernel']}, "
                f"{best['threads']} threads)")
        theory = machine.get(f"theoretical_{dtype}")
        if theory is not None and not pd.isna(theory):
            text += (f"; theoretical {theory:.1f} GFLOP/s ({machine['theoretical_cores']:.0f} cores x "
                     f"{machine['theoretical_clock_ghz']:.2f} GHz as reported x {machine['theoretical_fma_units']:.0f} "
                     f"FMA units (assumed) x {machine['theoretical_vector_bits']:.0f}-bit vectors)")
        lines.append(text + f"; peak_fraction divides by {machine[f'reference_{dtype}_gflop_per_s']:.1f}")
    lines.append("")
    columns = ["model", "size", "mode", "dtype", "batch", "ms_per_step", "clips_per_s", "gflop_per_clip",
               "gflop_per_s", "peak_fraction"]
    notes = {"overhead": "diffusion overhead t(LGD)/t(plain): median and 95% interval over interleaved repeats",
             "bf16": "bf16 autocast speed-up t(fp32)/t(bf16): median and 95% interval",
             "channels_last": "training speed-up of channels_last_3d, t(default)/t(channels_last_3d): median and "
                              "95% interval over interleaved repeats",
             "traffic": "why: the extra MB per step at the measured bandwidth (predicted), the map-sized extra ops "
                        "timed alone, the global path's vector ops timed alone (a fixed cost per op), their sum "
                        "(model = predicted + vector path) and the measured overhead, in % of the plain step"}
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3g}".format):
        for name in ("models", "overhead", "bf16", "channels_last", "traffic", "data", "cuda"):
            if name in tables and len(tables[name]):
                table = tables[name][columns] if name == "models" else tables[name]
                lines += [f"[{name}]" + (f" {notes[name]}" if name in notes else ""), table.to_string(index=False), ""]
    return "\n".join(lines)


def markdown(folder) -> str:
    """A finished benchmark folder as Markdown (the README's tables): provenance and the peaks; clips/s per
    model, size and dtype; the diffusion overhead beside its traffic model; the bf16 speed-ups."""
    folder = Path(folder)
    meta = json.loads((folder / "bench.json").read_text())
    machine = pd.read_csv(folder / "machine.csv").iloc[0]
    models = pd.read_csv(folder / "models.csv")
    peaks = "; ".join(
        f"{d} peak: best kernel {machine[f'best_kernel_{d}_gflop_per_s']:.0f} GFLOP/s, theoretical at the reported "
        f"clock {machine[f'theoretical_{d}']:.0f}" if f"theoretical_{d}" in machine else
        f"{d} peak: best kernel {machine[f'best_kernel_{d}_gflop_per_s']:.0f} GFLOP/s"
        for d in DTYPES if f"best_kernel_{d}_gflop_per_s" in machine)
    lines = [f"Measured with `{meta['command']}` at commit `{meta['commit']}` ({meta.get('cpu', 'CPU')}, "
             f"{meta['machine']}, {meta['seconds']:.0f} s; CSVs in `{folder}/`). Memory bandwidth "
             f"{machine['memory_gb_per_s']:.1f} GB/s; {peaks}.", ""]
    dtypes = [d for d in DTYPES if d in set(models["dtype"])]
    lines += [f"| model | clip | forward clips/s {' / '.join(dtypes)} | train clips/s {' / '.join(dtypes)} | "
              "train GFLOP/s (fp32) | of peak |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    rows = models.set_index(["model", "size", "mode", "dtype"])
    for (model, size), _ in models.groupby(["model", "size"], sort=False):
        rate = {mode: " / ".join(f"{rows.loc[(model, size, mode, d), 'clips_per_s']:.3g}" for d in dtypes)
                for mode in ("forward", "train")}
        train = rows.loc[(model, size, "train", "fp32")]
        lines.append(f"| `{model}` | {size} | {rate['forward']} | {rate['train']} | {train['gflop_per_s']:.0f} | "
                     f"{train['peak_fraction']:.2f} |")
    if (folder / "traffic.csv").exists():
        traffic = pd.read_csv(folder / "traffic.csv")
        overhead = pd.read_csv(folder / "overhead.csv")
        lines += ["", "| model | clip | pass | extra MB | bytes at bandwidth | vector path | model | measured fp32 "
                      "(95% interval) | measured bf16 |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
        for r in traffic.itertuples():
            bf16 = overhead[(overhead["model"] == r.model) & (overhead["size"] == r.size) &
                            (overhead["mode"] == r.mode) & (overhead["dtype"] == "bf16")]
            measured_bf16 = "" if bf16.empty else (
                f"{bf16['overhead_pct'].iloc[0]:.1f}% [{100 * (bf16['ratio_low'].iloc[0] - 1):.1f}, "
                f"{100 * (bf16['ratio_high'].iloc[0] - 1):.1f}]")
            lines.append(f"| `{r.model}` | {r.size} | {r.mode} | {r.extra_mb:.0f} | {r.predicted_pct:.1f}% | "
                         f"{r.vector_path_pct:.1f}% | {r.model_pct:.1f}% | {r.measured_pct:.1f}% "
                         f"[{r.measured_low_pct:.1f}, {r.measured_high_pct:.1f}] | {measured_bf16} |")
    if (folder / "bf16.csv").exists():
        bf16 = pd.read_csv(folder / "bf16.csv")
        lines += ["", "bf16 autocast against fp32, t(fp32) / t(bf16), median [95% interval]: " + "; ".join(
            f"`{r.model}` {r.size} {r.mode} {r.speedup:.2f}x [{r.speedup_low:.2f}, {r.speedup_high:.2f}]"
            for r in bf16.itertuples())]
    return "\n".join(lines)
