"""RGB, flow and both on the teaching task, over seeds (``lgd two-stream``).

    lgd two-stream --seeds 0 1 2 --out runs/two_stream

For each seed it trains the teaching model on RGB (``tiny_synthetic_cpu``) and
on its optical flow (``tiny_synthetic_flow_cpu``, DIS flow computed on first
use), evaluates both on the same validation videos with the recipe's test
views, and fuses their video scores (rgb + w x flow, ``evaluation.fuse``).
It writes ``runs.csv`` (one row per seed and stream) and ``summary.csv`` (mean
and 95% t-interval over seeds), with ``two_stream.json`` (command, commit,
machine, time). The results shipped in ``figures/two_stream/`` were made this
way; notebook 8 reads them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from .builders import eval_dataset
from .config import load_config
from .evaluation import check_streams, class_names, evaluate, fuse
from .study import t_interval
from .training import Trainer
from .utils import atomic_path, provenance

RECIPES = {"rgb": "tiny_synthetic_cpu", "flow": "tiny_synthetic_flow_cpu"}


def train_stream(stream: str, seed: int, out: Path, overrides=()) -> Trainer:
    """Train one stream of the teaching task for one seed (a fresh run in ``out / f"{stream}_seed{seed}"``)."""
    cfg = load_config(RECIPES[stream], [*overrides, f"run.seed={seed}", f"run.out_dir={out / f'{stream}_seed{seed}'}",
                                        "run.resume=false", "run.progress=false"])
    trainer = Trainer(cfg)
    trainer.fit()
    return trainer


def evaluate_pair(rgb: Trainer, flow: Trainer, flow_weight: float) -> pd.DataFrame:
    """Both streams' best checkpoints on the validation videos (the recipe's test views), and their fusion."""
    from .builders import model_from_checkpoint

    loaded = {}
    for name, trainer in (("rgb", rgb), ("flow", flow)):
        model, cfg = model_from_checkpoint(trainer.out / "best.pt", trainer.device)
        d = cfg.data
        loaded[name] = (model, cfg, eval_dataset(cfg, Path(d.root) / d.val_manifest, d.root, d.test_clips,
                                                 d.test_crops), trainer.device)
    check_streams(loaded["rgb"][2], loaded["flow"][2])
    results = {name: evaluate(model, data, class_names(cfg), batch_size=8, device=device, head=cfg.data.test_head,
                              average=cfg.data.test_average)
               for name, (model, cfg, data, device) in loaded.items()}
    return fuse(results["rgb"], results["flow"], flow_weight)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean top-1 per stream with a 95% Student-t interval over seeds (the whole range of 0..1 when one seed)."""
    rows = []
    for stream, group in runs.groupby("stream", sort=False):
        mean, low, high = t_interval(group["acc1"])
        n = len(group)
        rows.append({"stream": stream, "seeds": n, "acc1": mean, "acc1_low": max(0.0, low) if n > 1 else 0.0,
                     "acc1_high": min(1.0, high) if n > 1 else 1.0, "videos": int(group["videos"].iloc[0])})
    return pd.DataFrame(rows)


def run(seeds=(0, 1, 2), out="runs/two_stream", flow_weight: float = 1.5, overrides=(), argv=(), log=print,
        work=None) -> dict:
    """Train and evaluate both streams for every seed; write the CSVs and the provenance to ``out``, the runs
    (checkpoints, metrics) to ``work`` (default ``out / "runs"``)."""
    out = Path(out)
    work = Path(work) if work else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    started, rows = time.perf_counter(), []
    for seed in seeds:
        rgb = train_stream("rgb", seed, work, overrides)
        flow = train_stream("flow", seed, work, overrides)
        table = evaluate_pair(rgb, flow, flow_weight).assign(seed=seed)
        rows.append(table)
        if log:
            log(f"seed {seed}: " + ", ".join(f"{r.stream} {r.acc1:.3f}" for r in table.itertuples()), flush=True)
    runs = pd.concat(rows, ignore_index=True)
    summary = summarize(runs)
    meta = {**provenance("two-stream", list(argv)), "seconds": time.perf_counter() - started,
            "seeds": list(seeds), "flow_weight": flow_weight, "recipes": RECIPES, "overrides": list(overrides)}
    for name, table in (("runs.csv", runs), ("summary.csv", summary)):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False)
    (out / "two_stream.json").write_text(json.dumps(meta, indent=1) + "\n")
    return {"runs": runs, "summary": summary, "meta": meta}
