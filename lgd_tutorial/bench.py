"""Model throughput: clips/s, achieved GFLOP/s and the cost of diffusion (``lgd bench``).

    lgd bench [--smoke] [--models ...] [--sizes 16x224 8x112] [--repeats 3] [--batch-size 1]
              [--device cpu|cuda] [--threads N] [--out runs/bench] [--figure figures/bench_models.png]

For every model and clip size it measures forward (inference) and
forward+backward (training step) clips/s, and sets them against:

- FLOPs per clip (PyTorch's FLOP counter, a multiply-add counts 2; forward
  from ``lgd_tutorial.models.summary``) -> achieved GFLOP/s;
- the machine's fp32 matmul peak, measured in the same run -> fraction of peak;
- the same backbone without diffusion (``p3d_r50`` for ``lgd3d_r50``,
  ``p3d_tiny`` for ``lgd3d_tiny``) -> diffusion overhead = t(LGD) / t(P3D);
- torchvision's R(2+1)D-18 and R3D-18 (random weights), the usual peers;
- the data pipeline (``lgd_tutorial.data.throughput``) -> loader workers needed to
  keep up with the training rate.

Timings are medians over repeats after a warm-up step. The models of one
size and mode run interleaved (A B C, C B A, ...), so a noisy machine slows
them alike; ratios from one run are more trustworthy than absolute numbers.
On CUDA it also compares fp32 with bf16 autocast, channels_last_3d and
``torch.compile``, finds the largest batch that fits with its peak memory, and
measures sustained SGD training.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import build_model, diffusion_pairs
from .utils import resolve_device
from .models.summary import count_flops

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


def training_flops(model: nn.Module, frames: int, size: int) -> int:
    """FLOPs of one forward+backward pass on one clip (about 3x the forward FLOPs)."""
    clip = torch.zeros(1, 3, frames, size, size)
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


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5, dtype=torch.float32) -> float:
    """The machine's GEMM rate in GFLOP/s: median over repeats of an n x n x n matmul (2 n^3 FLOPs)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    timed(lambda: a @ b, device)                                     # warm-up
    seconds = statistics.median(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n ** 3 / seconds / 1e9


def step(model: nn.Module, clip: torch.Tensor, labels: torch.Tensor, mode: str):
    """One inference forward (``mode="forward"``) or one training forward+backward (``"train"``)."""
    if mode == "forward":
        def run():
            with torch.inference_mode():
                model(clip)
        model.eval()
    else:
        def run():
            nn.functional.cross_entropy(model(clip), labels).backward()
            model.zero_grad(set_to_none=True)
        model.train()
    return run


def interleaved_times(models: dict[str, nn.Module], clip, labels, mode: str, repeats: int,
                      device: torch.device) -> dict[str, list[float]]:
    """Seconds per step for each model, measured A B C, C B A, A B C ... after one warm-up step each."""
    runs = {name: step(model, clip, labels, mode) for name, model in models.items()}
    names = list(runs)
    for name in names:
        timed(runs[name], device)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(timed(runs[name], device))
    return times


def median_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free interval for the median from order statistics.

    For n values the interval is [x_(k), x_(n+1-k)] with the largest k whose binomial coverage
    P(k <= B <= n - k), B ~ Binomial(n, 1/2), is at least ``confidence``. With too few values for that
    (n < 6 at 95%) it is the whole range, min to max, which then covers less than ``confidence``.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    k = 0
    for j in range(1, n // 2 + 1):
        coverage = sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2 ** n
        if coverage >= confidence:
            k = j
    low, high = (xs[k - 1], xs[n - k]) if k else (xs[0], xs[-1])
    return statistics.median(xs), low, high


def overhead_rows(times: dict[str, list[float]], size: str, mode: str) -> list[dict]:
    """Diffusion overhead per pair measured in this loop: t(LGD) / t(P3D) per interleaved repeat, as a median
    with a distribution-free 95% interval over the repeats (``median_interval``)."""
    rows = []
    for lgd, plain in diffusion_pairs():
        if lgd in times and plain in times:
            ratio, low, high = median_interval([a / b for a, b in zip(times[lgd], times[plain])])
            rows.append({"size": size, "mode": mode, "model": lgd, "without_diffusion": plain,
                         "time_ratio": ratio, "ratio_low": low, "ratio_high": high, "repeats": len(times[lgd]),
                         "overhead_pct": 100 * (ratio - 1)})
    return rows


def bench_models(names, sizes, modes, repeats: int, batch: int, device: torch.device,
                 peak: float, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The main table (one row per model, size and mode) and the diffusion-overhead table; ``log`` gets a
    line per measured model as it finishes (None for silence)."""
    rows, overheads = [], []
    for size_text in sizes:
        frames, size = parse_size(size_text)
        models, flops = {}, {}
        for name in names:
            model = build(name)
            flops[name] = {"forward": count_flops(model, frames, size),
                           "train": training_flops(model, frames, size) if "train" in modes else 0}
            models[name] = model.to(device)
        clip = torch.randn(batch, 3, frames, size, size, device=device)
        labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        for mode in modes:
            times = interleaved_times(models, clip, labels, mode, repeats, device)
            for name, seconds in times.items():
                median = statistics.median(seconds)
                gflops = flops[name][mode] * batch / median / 1e9
                rows.append({"model": name, "size": f"{frames}x{size}x{size}", "mode": mode, "batch": batch,
                             "ms_per_step": 1e3 * median, "clips_per_s": batch / median,
                             "gflop_per_clip": flops[name][mode] / 1e9, "gflop_per_s": gflops,
                             "peak_fraction": gflops / peak})
                if log is not None:
                    log(f"  {frames}x{size}x{size} {mode:<7} {name:<12} {1e3 * median:9.1f} ms/step "
                        f"{batch / median:8.2f} clips/s {gflops:7.1f} GFLOP/s", flush=True)
            overheads += overhead_rows(times, f"{frames}x{size}x{size}", mode)
    return pd.DataFrame(rows), pd.DataFrame(overheads)


def data_rates(results: pd.DataFrame, smoke: bool, repeats: int) -> pd.DataFrame:
    """Loader workers each model needs at its measured training rate (rates from ``data.throughput``).

    The per-worker rate is the faster backend's decode+transform rate on the
    slowest (largest) test video; ``data.throughput`` decodes 16-frame clips and
    crops 112 x 112, so for 224 crops it is an upper bound.
    """
    from .data import throughput as data_bench

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


def plot(results: pd.DataFrame, peak: float, path: Path) -> None:
    """Clips/s (log scale) and achieved GFLOP/s per model, one row of panels per clip size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sizes = list(dict.fromkeys(results["size"]))
    fig, axes = plt.subplots(len(sizes), 2, figsize=(12, 3.6 * len(sizes)), squeeze=False)
    for (left, right), size in zip(axes, sizes):
        table = results[results["size"] == size]
        sns.barplot(table, x="model", y="clips_per_s", hue="mode", ax=left)
        left.set(yscale="log", title=f"clips/s at {size}", xlabel="", ylabel="clips/s (log)")
        sns.barplot(table, x="model", y="gflop_per_s", hue="mode", ax=right)
        right.axhline(peak, color="black", linestyle="--", label=f"fp32 matmul peak ({peak:.0f})")
        right.set(title=f"achieved GFLOP/s at {size}", xlabel="", ylabel="GFLOP/s")
        right.legend(fontsize="small")
        for ax in (left, right):
            ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(models=MODELS, sizes=SIZES, repeats: int = 3, batch: int = 1, device: str = "cpu",
        threads: int | None = None, smoke: bool = False, data: bool = True,
        out: str | Path = "runs/bench", figure: str | Path | None = "figures/bench_models.png") -> dict:
    """Run the benchmark; write CSVs to ``out`` and the plot to ``figure``; return the tables."""
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device) if isinstance(device, str) else device
    torch.manual_seed(0)
    peak = matmul_peak(device, n=256 if smoke else 2048, repeats=1 if smoke else 5)
    results, overhead = bench_models(models, sizes, MODES, repeats, batch, device, peak)
    machine = {"device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "matmul_peak_gflop_per_s": peak}
    for key in ("device", "threads"):
        results[key] = machine[key]
    tables = {"models": results, "overhead": overhead, "machine": pd.DataFrame([machine])}
    if data:
        tables["data"] = data_rates(results, smoke, repeats)
    if device.type == "cuda":
        tables["cuda"] = bench_cuda(models, sizes, repeats, batch, device, smoke)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    if figure:
        plot(results, peak, Path(figure))
    return tables


def report(tables: dict) -> str:
    machine = tables["machine"].iloc[0]
    lines = [f"{machine['device']}, {machine['threads']} threads, torch {machine['torch']}; "
             f"fp32 matmul peak {machine['matmul_peak_gflop_per_s']:.1f} GFLOP/s", ""]
    columns = ["model", "size", "mode", "batch", "ms_per_step", "clips_per_s", "gflop_per_clip",
               "gflop_per_s", "peak_fraction"]
    sections = [("models", columns), ("overhead", None), ("data", None), ("cuda", None)]
    with pd.option_context("display.width", 160, "display.float_format", "{:.3g}".format):
        for name, cols in sections:
            if name in tables and len(tables[name]):
                table = tables[name] if cols is None else tables[name][cols]
                lines += [f"[{name}]", table.to_string(index=False), ""]
    return "\n".join(lines)
