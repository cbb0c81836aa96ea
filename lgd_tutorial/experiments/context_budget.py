"""What each way of bringing in global context costs (``lgd summary --budget``).

For LGD and the three blocks of ``models.context`` (squeeze-and-excitation, global context, non-local) on the
same P3D backbone, at 16x224 (ResNet-50) and at the teaching size (8x112, the teaching models):

- parameters, and those added to the plain network;
- forward FLOPs of one clip (PyTorch's counter, a multiply-add counts 2);
- the training step's time relative to the plain network's: every model's forward + backward timed in turn,
  A B C ..., then in reverse, ``repeats`` times, after one warm-up step each (``bench.interleave``), and the
  ratio t(model) / t(plain) of each round summarised by its median with a distribution-free 95% interval
  (``stats.median_interval``). Interleaving makes drift in the machine's speed fall on all models alike;
  the ratios are more trustworthy than the absolute times.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from ..stats import median_interval
from .bench_models import interleave, step
from ..models import build_model, model_info
from ..models.summary import count_flops
from .results import provenance, write_results

KINDS = {"": "plain P3D", "lgd3d": "LGD (both diffusions)", "se": "squeeze-and-excitation",
         "gc": "global context (GCNet)", "nonlocal": "non-local"}
SIZES = {"16x224": ("p3d_r50", ["lgd3d_r50", "se_p3d_r50", "gc_p3d_r50", "nonlocal_p3d_r50"]),
         "8x112": ("p3d_tiny", ["lgd3d_tiny", "se_p3d_tiny", "gc_p3d_tiny", "nonlocal_p3d_tiny"])}
NUM_CLASSES = 400


def kind_of(name: str) -> str:
    prefix = name.split("_")[0]
    return KINDS.get(prefix, KINDS[""]) if not name.startswith("p3d") else KINDS[""]


def budget(sizes=tuple(SIZES), repeats: int = 7, batch: int = 1, log=print) -> pd.DataFrame:
    """One row per size and model: parameters, FLOPs, ms per training step and the ratio to the plain network."""
    rows = []
    for size in sizes:
        plain, others = SIZES[size]
        frames, side = (int(v) for v in size.split("x"))
        names = [plain, *others]
        torch.manual_seed(0)
        models = {name: build_model(name, NUM_CLASSES) for name in names}
        clip = torch.randn(batch, 3, frames, side, side)
        labels = torch.zeros(batch, dtype=torch.long)
        if log:
            log(f"{size}: {', '.join(names)}: {repeats} interleaved rounds of training steps ...", flush=True)
        times = interleave({name: step(model, clip, labels, "train") for name, model in models.items()}, repeats,
                           clip.device)
        base_params = sum(p.numel() for p in models[plain].parameters())
        for name in names:
            params = sum(p.numel() for p in models[name].parameters())
            ratio, low, high = median_interval([a / b for a, b in zip(times[name], times[plain])])
            rows.append({"size": size, "model": name, "kind": kind_of(name), "params": params,
                         "added_params": params - base_params,
                         "gflops": count_flops(models[name], frames, side) / 1e9,
                         "ms_per_step": 1e3 * statistics.median(times[name]), "time_ratio": ratio,
                         "ratio_low": low, "ratio_high": high, "repeats": repeats, "batch": batch,
                         "teaching": model_info(name).size < 224})
            if log:
                log(f"  {name:<18} {rows[-1]['ms_per_step']:9.1f} ms/step  x{ratio:.3f} [{low:.3f}, {high:.3f}]",
                    flush=True)
    return pd.DataFrame(rows)


def run(out: str | Path, sizes=tuple(SIZES), repeats: int = 7, batch: int = 1, log=print, argv=()) -> pd.DataFrame:
    """Measure and write ``budget.csv`` and ``budget.json`` (command, commit, machine, seconds) to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = {**provenance("summary", list(argv)), "threads": torch.get_num_threads()}
    table = budget(sizes, repeats, batch, log)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    write_results(out, {"budget.csv": table}, "budget.json", meta, indent=2)
    return table


def report(folder: str | Path) -> str:
    """The README's budget table, from a folder written by ``run``."""
    folder = Path(folder)
    table = pd.read_csv(folder / "budget.csv")
    meta = json.loads((folder / "budget.json").read_text())
    lines = ["| clip | model | global context by | parameters (M) | added to plain | GFLOPs | training step / plain's "
             "[95% CI] |", "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for _, r in table.iterrows():
        ratio = ("1 (the reference)" if r["added_params"] == 0 and r["kind"] == KINDS[""] else
                 f"{r['time_ratio']:.3f} [{r['ratio_low']:.3f}, {r['ratio_high']:.3f}]")
        lines.append(f"| {r['size']} | `{r['model']}` | {r['kind']} | {r['params'] / 1e6:.2f} | "
                     f"{r['added_params'] / 1e3:+.1f} k | {r['gflops']:.2f} | {ratio} |")
    lines.append(f"\nLGD's added parameters include its second classifier head (the global one, {NUM_CLASSES} classes); "
                 "the others keep the plain network's single head. "
                 f"Training steps of batch {int(table['batch'].iloc[0])}, {int(table['repeats'].iloc[0])} interleaved "
                 f"rounds; median ratio with a distribution-free interval. Measured by `{meta['command']}` at commit "
                 f"`{meta['commit']}` ({meta['machine']}, {meta['threads']} threads), {meta['seconds'] / 60:.1f} min.")
    return "\n".join(lines)
