"""float32 against bfloat16 autocast on the teaching recipe, over seeds (``lgd precision``).

    lgd precision --seeds 0 1 2 --out runs/precision

``run.amp=auto`` switches a CPU with native bfloat16 to bf16 autocast, so the
teaching model a reader trains may run in either precision depending on the
machine. This measures what that choice changes. For every seed it trains the
teaching recipe (``tiny_synthetic_cpu``) twice, with ``run.amp=off`` (float32)
and ``run.amp=bf16``, in alternating order (fp32 first for even seeds, bf16
first for odd ones), so that a drift in the machine's speed falls on both.
Each best checkpoint is evaluated in float32 on the validation videos with the
recipe's test views.

Whole runs one after another are a poor clock: on a shared machine the speed
drifts by tens of percent within a minute (the windows of ``metrics.csv``
show it). So the speed-up is measured apart, on
one Trainer per precision built from the recipe: ``steps`` optimizer steps
(data loading included) of one, then of the other, in the order A B, B A,
A B ... for ``rounds`` rounds; the ratio of clips/s within each round, as a
median with a distribution-free 95% interval (``stats.median_interval``).

It writes ``runs.csv`` (one row per seed and precision: video top-1, the first
epoch whose validation reached 95%, training clips/s, the run's seconds),
``paired.csv`` (per seed: bf16 - fp32 in top-1), ``speed.csv`` (the
interleaved rounds), ``summary.csv`` (means with 95% t-intervals over seeds;
the speed-up's median and interval),
``curves.csv`` (validation top-1 after every epoch, in the run's precision) and
``precision.json`` (command, commit, machine, what ``run.amp=auto`` picks here).
The results shipped in ``figures/precision/`` were made this way; notebook 6
reads them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch

from ..stats import median_interval, t_interval
from ..builders import model_from_checkpoint, recipe_test_set
from ..config import load_config
from ..evaluation import evaluate_recipe
from ..metrics import validation_curve
from ..training import Trainer, train_fresh
from ..utils import amp_dtype, cpu_bf16_gemm_speedup, cpu_native_bf16
from .results import provenance, write_results

RECIPE = "tiny_synthetic_cpu"
AMP = {"fp32": "off", "bf16": "bf16"}        # precision -> run.amp
TARGET = 0.95                                # "reached" in runs.csv: the first epoch with validation top-1 >= this


def train_one(precision: str, seed: int, work: Path, overrides=()) -> tuple[Trainer, float]:
    """Train the teaching recipe once in ``precision`` (a fresh run in ``work / f"{precision}_seed{seed}"``);
    the Trainer and the seconds its ``fit`` took."""
    return train_fresh(RECIPE, [*overrides, f"run.amp={AMP[precision]}", f"run.seed={seed}"],
                       work / f"{precision}_seed{seed}")


def run_row(trainer: Trainer, precision: str, seed: int, seconds: float) -> dict:
    """One run's outcome: video top-1 of its best checkpoint (float32, the recipe's test views), the first
    epoch at ``TARGET``, its training clips/s (the median of the logged windows after the first epoch: the
    first may be decoding the videos into the cache) and its wall-clock seconds (``fit`` alone)."""
    model, cfg = model_from_checkpoint(trainer.out / "best.pt", trainer.device)
    result = evaluate_recipe(model, cfg, recipe_test_set(cfg), trainer.device)
    metrics = pd.read_csv(trainer.out / "metrics.csv")
    train, val = metrics[metrics["split"] == "train"], metrics[metrics["split"] == "val"]
    reached = val[val["acc1"] >= TARGET]
    return {"precision": precision, "seed": seed, "autocast": str(trainer.amp_dtype or "off"),
            "videos": result.videos, "acc1": result.video_acc1,
            "epoch_at_target": int(reached["epoch"].iloc[0]) + 1 if len(reached) else float("nan"),
            "train_clips_per_s": float(train.loc[train["epoch"] > 0, "clips_per_s"].median()), "seconds": seconds}


def paired(runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed run in both precisions: bf16 - fp32 in top-1."""
    acc = runs.pivot(index="seed", columns="precision", values="acc1")
    both = acc.dropna().index
    return pd.DataFrame({"seed": both, "acc1_bf16_minus_fp32": (acc["bf16"] - acc["fp32"])[both].values})


def interleaved_speed(work: Path, overrides=(), steps: int = 20, rounds: int = 12) -> pd.DataFrame:
    """Training clips/s of the recipe in each precision, measured in interleaved rounds (see the module's
    docstring): one row per round and precision, with the round's ratio bf16 / fp32 on the bf16 rows."""
    trainers = {precision: Trainer.from_config(load_config(RECIPE, [*overrides, f"run.amp={AMP[precision]}",
                                                        f"run.max_steps_per_epoch={steps}",
                                                        f"run.out_dir={work / f'speed_{precision}'}",
                                                        "run.progress=false"]))
                for precision in AMP}                 # nothing is written: only fit() opens the run folder

    def clips_per_s(precision: str) -> float:
        trainer = trainers[precision]
        start = time.perf_counter()
        clips = trainer.train_epoch()["clips"]
        seconds = time.perf_counter() - start
        trainer.next_epoch()
        return clips / seconds

    for precision in AMP:                             # warm-up (and the videos decoded into the cache)
        clips_per_s(precision)
    rows = []
    for r in range(rounds):
        rates = {precision: clips_per_s(precision) for precision in (list(AMP) if r % 2 == 0 else list(AMP)[::-1])}
        rows += [{"round": r, "precision": p, "clips_per_s": rates[p],
                  "ratio": rates["bf16"] / rates["fp32"] if p == "bf16" else float("nan")} for p in AMP]
    return pd.DataFrame(rows)


def precision_summary(runs: pd.DataFrame, pairs: pd.DataFrame, speed: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% Student-t interval over seeds of every measure, per precision and paired; the speed-up
    (bf16 / fp32 clips/s) as the median of the interleaved rounds with its distribution-free 95% interval."""
    rows = []

    def bounded(values, low, high):
        return dict(zip(("mean", "low", "high"), t_interval(values, bounds=(low, high))))

    for precision, group in runs.groupby("precision", sort=False):
        for measure, low, high in (("acc1", 0, 1), ("train_clips_per_s", 0, float("inf")),
                                   ("seconds", 0, float("inf"))):
            rows.append({"what": f"{measure} {precision}", "n": len(group), **bounded(group[measure], low, high)})
    rows.append({"what": "acc1_bf16_minus_fp32", "n": len(pairs), **bounded(pairs["acc1_bf16_minus_fp32"], -1, 1)})
    ratios = speed["ratio"].dropna()
    for precision, group in speed.groupby("precision", sort=False):
        rows.append({"what": f"interleaved_clips_per_s {precision}", "n": len(group),
                     **dict(zip(("mean", "low", "high"), median_interval(group["clips_per_s"])))})
    rows.append({"what": "speedup", "n": len(ratios), **dict(zip(("mean", "low", "high"), median_interval(ratios)))})
    return pd.DataFrame(rows)


def machine_choice() -> dict:
    """What ``run.amp=auto`` picks on this CPU, and the two facts it picks from."""
    auto = amp_dtype("auto", torch.device("cpu"))
    return {"native_bf16": cpu_native_bf16(), "bf16_gemm_speedup": round(cpu_bf16_gemm_speedup(), 3),
            "auto_picks": "bf16" if auto == torch.bfloat16 else "fp32"}


def run(seeds=(0, 1, 2), out="runs/precision", overrides=(), argv=(), log=print, work=None, steps: int = 20,
        rounds: int = 12) -> dict:
    """Train and evaluate the teaching recipe in float32 and in bf16 for every seed; write the CSVs and the
    provenance to ``out``, the runs (checkpoints, metrics) to ``work`` (default ``out / "runs"``)."""
    out = Path(out)
    work = Path(work) if work else out / "runs"
    made_by = provenance("precision", list(argv))          # the code as it was when the runs started
    started, rows, curves = time.perf_counter(), [], []
    for seed in seeds:
        for precision in (("fp32", "bf16") if seed % 2 == 0 else ("bf16", "fp32")):
            trainer, seconds = train_one(precision, seed, work, overrides)
            rows.append(run_row(trainer, precision, seed, seconds))
            curves.append(validation_curve(trainer.out, precision=precision, seed=seed))
            if log:
                r = rows[-1]
                log(f"seed {seed} {precision}: top-1 {r['acc1']:.3f}, {r['train_clips_per_s']:.1f} clips/s, "
                    f"{seconds:.0f} s", flush=True)
    speed = interleaved_speed(work, overrides, steps, rounds)
    runs = pd.DataFrame(rows)
    pairs = paired(runs)
    summary = precision_summary(runs, pairs, speed)
    meta = {**made_by, **machine_choice(), "seconds": time.perf_counter() - started, "seeds": list(seeds),
            "recipe": RECIPE, "overrides": list(overrides), "target": TARGET, "speed_steps": steps,
            "speed_rounds": rounds}
    write_results(out, {"runs.csv": runs, "paired.csv": pairs, "speed.csv": speed, "summary.csv": summary,
                        "curves.csv": pd.concat(curves)}, "precision.json", meta)
    return {"runs": runs, "paired": pairs, "speed": speed, "summary": summary, "meta": meta}


def report(folder) -> str:
    """The Markdown table (per seed, then means with 95% t-intervals), the interleaved speed-up and the
    provenance of a finished folder."""
    folder = Path(folder)
    meta = json.loads((folder / "precision.json").read_text())
    runs = pd.read_csv(folder / "runs.csv").set_index(["seed", "precision"])
    summary = pd.read_csv(folder / "summary.csv").set_index("what")

    def cell(what, digits, sign=""):
        row = summary.loc[what]
        return f"{row['mean']:{sign}.{digits}f} [{row['low']:{sign}.{digits}f}, {row['high']:{sign}.{digits}f}]"

    def epoch(r):
        return "never" if pd.isna(r["epoch_at_target"]) else str(int(r["epoch_at_target"]))

    lines = [f"| seed | top-1 fp32 | top-1 bf16 | first epoch >= {meta['target']:.0%} fp32 / bf16 | "
             "whole-run clips/s fp32 / bf16 (drift, not a comparison) |", "| ---: | ---: | ---: | --- | --- |"]
    for seed in meta["seeds"]:
        f, b = runs.loc[(seed, "fp32")], runs.loc[(seed, "bf16")]
        lines.append(f"| {seed} | {f['acc1']:.3f} | {b['acc1']:.3f} | {epoch(f)} / {epoch(b)} | "
                     f"{f['train_clips_per_s']:.0f} / {b['train_clips_per_s']:.0f} |")
    lines.append(f"| mean | {cell('acc1 fp32', 3)} | {cell('acc1 bf16', 3)} | | |")
    return ("\n".join(lines) + f"\n\ntop-1, bf16 - fp32 paired per seed: {cell('acc1_bf16_minus_fp32', 3, '+')}. "
            f"Training clips/s in {int(summary.loc['speedup', 'n'])} interleaved rounds of {meta['speed_steps']} "
            f"steps: fp32 {cell('interleaved_clips_per_s fp32', 0)}, bf16 {cell('interleaved_clips_per_s bf16', 0)}; "
            f"bf16 / fp32 {cell('speedup', 2)} (medians, 95% intervals). "
            f"Made by `{meta['command']}` at commit `{meta['commit']}` in {meta['seconds'] / 60:.0f} min on "
            f"{meta['cpu']} ({meta['machine']}); there bf16 matrix products run {meta['bf16_gemm_speedup']:.2f}x "
            f"as fast as float32 ones and `run.amp=auto` picks {meta['auto_picks']}.")
