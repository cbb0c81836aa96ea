"""The diffusion study: does global context reach local features, and does it change what is learned?

``lgd study`` trains the teaching model (``lgd3d_tiny``) in four variants on
the same synthetic data, with the same recipe and budget, over several seeds:

    both              LGD: local-to-global and global-to-local diffusion
    local_to_global   the global path reads the local maps but never feeds them
    global_to_local   the global path feeds the local maps but never reads them
    none              no global path (a plain P3D network); a global head on the
                      pooled final map gives it the same two heads and the same
                      loss, CE(local) + CE(global), as the others

The data are the built-in synthetic classes (``data.synthetic``) in a layout
where the object always keeps ``gap`` pixels from the beacon, so the label
needs two far-apart regions. Clips are rendered once into memory (no video
files), so the study measures the models, not the decoder.

Outputs in ``--out``: ``runs.csv`` (one row per variant and seed),
``curves.csv`` (validation accuracy during training), ``summary.csv`` (mean and
95% t-interval per variant), ``study.png`` and ``study.json`` (the command,
the commit and the settings that made them). With ``--pretrained-dir`` the
first seed's model of every variant is saved there as a teaching checkpoint
(``models.pretrained``).
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data import synthetic
from ..data.transforms import flip_randomly, to_clips
from ..models import build_model
from ..models.pretrained import save_pretrained
from ..stats import t_interval
from ..training import optimizer_step
from ..utils import evaluating
from ..viz.render import save_figure
from .results import provenance as utils_provenance
from .results import write_results
from .study_plots import plot_study

VARIANTS = {
    "both": {"diffusion": "both"},
    "local_to_global": {"diffusion": "local_to_global"},
    "global_to_local": {"diffusion": "global_to_local"},
    "none": {"diffusion": "none", "pooled_global_head": True},
}
# The other ways to bring in global context (``models.context``), on the same plain backbone with the same two
# heads as ``none`` (``lgd reach-study`` trains them beside LGD).
CONTEXT_VARIANTS = {
    "se": {"diffusion": "none", "pooled_global_head": True, "context": "se"},
    "nonlocal": {"diffusion": "none", "pooled_global_head": True, "context": "nonlocal"},
    "gc": {"diffusion": "none", "pooled_global_head": True, "context": "gc"},
}
MODEL_HEADS = ("local", "global", "combined")


@dataclass
class Recipe:
    """The training recipe of the studies (``train_variant``): AdamW, warm-up then cosine, in-memory clips."""

    arch: str = "lgd3d_tiny"
    frames: int = 8
    data_seed: int = 0
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3                # AdamW
    warmup_epochs: float = 0.5
    weight_decay: float = 0.05
    clip_grad: float = 40.0
    dropout: float = 0.2
    evals_per_epoch: int = 2
    target: float = 0.9             # accuracy whose first crossing is reported (steps to target)


@dataclass
class StudySettings(Recipe):
    """The data layout and the recipe, the same for every variant."""

    size: int = 96                  # frame side; the clips are not cropped
    band: int = 8                   # beacon thickness
    object_size: int = 8
    gap: int = 24                   # least object-beacon distance
    train_per_class: int = 384
    val_per_class: int = 96
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"variants: unknown {unknown}; choose from {list(VARIANTS)}")
        synthetic.geometry(self.size, self.band, self.object_size, self.gap)      # raises on a bad layout

    def layout(self) -> dict:
        return {"size": self.size, "frames": self.frames, "band": self.band, "object_size": self.object_size,
                "gap": self.gap}


# --------------------------------------------------------------------------- data

def render_clip(s: StudySettings, split: str, number: int) -> tuple[np.ndarray, str, list, int]:
    """Clip ``number`` of a split exactly as ``render_split`` draws it: (frames (T, H, W, 3), side, track, label)."""
    label = number % len(synthetic.CLASSES)
    video, side, track = synthetic.render_numbered((label, s.data_seed, {"train": 0, "val": 1}[split], number, s.layout()))
    return video, side, track, label


def render_split(s: StudySettings, split: str, workers: int | None = None) -> dict:
    """Render one split into memory: ``frames`` uint8 (N, T, H, W, 3), ``labels`` (N,), ``sides``, ``tracks``."""
    per_class = s.train_per_class if split == "train" else s.val_per_class
    split_id = {"train": 0, "val": 1}[split]
    jobs = [(label, s.data_seed, split_id, k * len(synthetic.CLASSES) + label, s.layout())
            for k in range(per_class) for label in range(len(synthetic.CLASSES))]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rendered = list(pool.map(synthetic.render_numbered, jobs, chunksize=16))
    else:
        rendered = [synthetic.render_numbered(job) for job in jobs]
    return {"frames": torch.from_numpy(np.stack([r[0] for r in rendered])),
            "labels": torch.tensor([job[0] for job in jobs]),
            "sides": [r[1] for r in rendered], "tracks": [r[2] for r in rendered]}


# --------------------------------------------------------------------------- training

def build_variant(s: Recipe, variant: str, num_classes: int = len(synthetic.CLASSES)) -> nn.Module:
    return build_model(s.arch, num_classes, dropout=s.dropout, **{**VARIANTS, **CONTEXT_VARIANTS}[variant])


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, those in the LGD projections W_gg, W_gx, W_xg)."""
    total = sum(p.numel() for p in model.parameters())
    lgd = sum(p.numel() for name, p in model.named_parameters()
              if any(part in name for part in ("global_to_global", "local_to_global", "global_to_local")))
    return total, lgd


@torch.no_grad()
def head_accuracy(model: nn.Module, frames: torch.Tensor, labels: torch.Tensor, batch: int = 64) -> dict:
    """Validation accuracy of the local head, the global head and their sum, in eval mode."""
    hits = dict.fromkeys(MODEL_HEADS, 0)
    with evaluating(model):
        for i in range(0, len(frames), batch):
            out = model(to_clips(frames[i:i + batch]), return_heads=True)
            y = labels[i:i + batch]
            hits["local"] += int((out["local_logits"].argmax(1) == y).sum())
            hits["global"] += int((out["global_logits"].argmax(1) == y).sum())
            hits["combined"] += int((out["logits"].argmax(1) == y).sum())
    return {head: count / len(frames) for head, count in hits.items()}


def lr_at(s: Recipe, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine to zero."""
    epoch = (step + 1) / steps_per_epoch
    if epoch < s.warmup_epochs:
        return s.lr * epoch / s.warmup_epochs
    progress = (epoch - s.warmup_epochs) / max(1e-8, s.epochs - s.warmup_epochs)
    return s.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_variant(s: Recipe, variant: str, seed: int, train: dict, val: dict, log=print,
                  num_classes: int = len(synthetic.CLASSES), flip_dims=(-1, -2)):
    """Train one variant with one seed; returns (model in eval mode, curve rows).

    ``s`` holds the recipe (a ``Recipe``: ``StudySettings`` or ``reach_study.ReachSettings``); ``flip_dims`` are the
    random flips that keep the task's labels."""
    torch.manual_seed(seed)
    model = build_variant(s, variant, num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n = len(train["labels"])
    steps_per_epoch = n // s.batch_size
    total = steps_per_epoch * s.epochs
    eval_every = max(1, steps_per_epoch // s.evals_per_epoch)
    curve, order = [], torch.empty(0, dtype=torch.long)
    for step in range(total):
        if step % steps_per_epoch == 0:
            order = torch.randperm(n, generator=generator)
        index = order[(step % steps_per_epoch) * s.batch_size:][:s.batch_size]
        clips = flip_randomly(to_clips(train["frames"][index]), generator, flip_dims)
        out = model(clips, return_heads=True)
        labels = train["labels"][index]
        loss = F.cross_entropy(out["local_logits"], labels) + F.cross_entropy(out["global_logits"], labels)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(s, step, steps_per_epoch)
        loss.backward()
        optimizer_step(model, optimizer, s.clip_grad)
        if (step + 1) % eval_every == 0 or step + 1 == total:
            acc = head_accuracy(model, val["frames"], val["labels"])
            curve.append({"variant": variant, "seed": seed, "step": step + 1,
                          "epoch": round((step + 1) / steps_per_epoch, 3), "loss": loss.item(),
                          **{f"acc_{head}": value for head, value in acc.items()}})
            log(f"  {variant:>15} seed {seed} epoch {curve[-1]['epoch']:5.2f}  loss {loss.item():.3f}  "
                f"val local {acc['local']:.3f} global {acc['global']:.3f}")
    return model.eval(), curve


def steps_to(curve: list[dict], target: float, head: str = "local") -> float:
    """The first evaluated step at which ``head`` reached ``target``; NaN if it never did."""
    return next((row["step"] for row in curve if row[f"acc_{head}"] >= target), float("nan"))


# --------------------------------------------------------------------------- summary

def study_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: parameters, and mean with 95% interval of each head's final accuracy and of steps to target.

    The t-interval assumes roughly normal values; seeds that either solve the
    task or stall are far from that, and the interval can then pass the
    possible range. It is clipped to [0, 1] for accuracies and to [0, the
    run's steps] for steps (the table says so); the per-seed values are in
    ``runs.csv``.
    """
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        row = {"variant": variant, "seeds": len(group), "parameters": int(group["parameters"].iloc[0]),
               "lgd_parameters": int(group["lgd_parameters"].iloc[0])}
        bounds = {f"acc_{h}": (0.0, 1.0) for h in MODEL_HEADS} | {"steps_to_target": (0.0, float(group["steps"].max()))}
        for column, (lowest, highest) in bounds.items():
            mean, low, high = t_interval(group[column])
            row.update({column: mean, f"{column}_low": float(np.clip(low, lowest, highest)),
                        f"{column}_high": float(np.clip(high, lowest, highest))})
        row["reached_target"] = int(group["steps_to_target"].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame, target: float) -> str:
    """The summary as a Markdown table: mean [95% interval] per head and steps to ``target`` (the README's table)."""
    def cell(row, column, digits):
        low, high = row[f"{column}_low"], row[f"{column}_high"]
        return f"{row[column]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    lines = ["| variant | parameters | local head | global head | combined | steps to "
             f"{target:.0%} (local head), seeds that got there |", "| --- | ---: | --- | --- | --- | --- |"]
    for _, row in summary.iterrows():
        reached = int(row["reached_target"])
        steps = (f"{cell(row, 'steps_to_target', 0)}, {reached} of {int(row['seeds'])} seeds" if reached > 1 else
                 f"{row['steps_to_target']:.0f}, 1 of {int(row['seeds'])} seeds" if reached == 1 else
                 f"not reached ({int(row['seeds'])} seeds)")
        lines.append(f"| `{row['variant']}` | {int(row['parameters']):,} | {cell(row, 'acc_local', 3)} | "
                     f"{cell(row, 'acc_global', 3)} | {cell(row, 'acc_combined', 3)} | {steps} |")
    return "\n".join(lines)


def report(folder: Path) -> str:
    """The Markdown table and provenance line of a finished study folder."""
    meta = json.loads((folder / "study.json").read_text())
    summary = pd.read_csv(folder / "summary.csv")
    s = StudySettings(**meta["settings"])
    setup = (f"Data: {s.size} x {s.size} pixels, {s.frames} frames, beacon {s.band} px, object {s.object_size} px, "
             f"at least {s.gap} px apart; {s.train_per_class * 4:,} training and {s.val_per_class * 4} validation "
             f"clips (data seed {s.data_seed}). Recipe: AdamW (lr {s.lr:g}, weight decay {s.weight_decay:g}), "
             f"{s.epochs} epochs of batch {s.batch_size}, warm-up {s.warmup_epochs:g} epoch then cosine, random "
             f"horizontal and vertical flips, seeds {', '.join(map(str, s.seeds))}.")
    return (setup + " Accuracy: mean [95% t-interval over seeds, clipped to the possible range].\n\n" +
            markdown_table(summary, s.target) +
            f"\n\nMade by `{meta['command']}` at commit `{meta['commit']}` in {meta['seconds'] / 60:.0f} min "
            f"({meta['machine']}).")


def provenance(argv: list[str]) -> dict:
    """The ``lgd study`` command, the commit and the machine that produced a result."""
    return utils_provenance("study", argv)


# --------------------------------------------------------------------------- the command

def run_study(s: StudySettings, out: Path, pretrained_dir: Path | None = None, argv=(), log=print) -> pd.DataFrame:
    """Train every variant with every seed; write the CSVs, the figure and the provenance to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = {**provenance(list(argv)), "settings": asdict(s)}
    log(f"rendering {s.train_per_class * 4} training and {s.val_per_class * 4} validation clips")
    train, val = render_split(s, "train"), render_split(s, "val")
    runs, curves = [], []
    for seed in s.seeds:
        for variant in s.variants:
            t0 = time.perf_counter()
            model, curve = train_variant(s, variant, seed, train, val, log)
            total, lgd = count_parameters(model)
            final = {f"acc_{h}": curve[-1][f"acc_{h}"] for h in MODEL_HEADS}
            runs.append({"variant": variant, "seed": seed, "data_seed": s.data_seed, "parameters": total,
                         "lgd_parameters": lgd, **final, "steps_to_target": steps_to(curve, s.target),
                         "steps": curve[-1]["step"], "seconds": round(time.perf_counter() - t0, 1)})
            curves += curve
            # so far: an interrupted study keeps what it finished
            write_results(out, {"runs.csv": pd.DataFrame(runs), "curves.csv": pd.DataFrame(curves)})
            if pretrained_dir is not None and seed == s.seeds[0]:
                save_pretrained(model, pretrained_dir, name=f"{s.arch}_beacon_{variant}",
                                info={"variant": variant, "classes": list(synthetic.CLASSES), **s.layout(),
                                      "seed": seed,
                                      "data_seed": s.data_seed, "val_acc": final["acc_local"],
                                      "val_acc_heads": final, "recipe": asdict(s), **provenance(list(argv))})
    meta["seconds"] = round(time.perf_counter() - started, 1)
    summary = write_outputs(out, pd.DataFrame(runs), pd.DataFrame(curves), meta)
    log(f"done in {meta['seconds']:.0f} s -> {out}")
    return summary


def write_outputs(out: Path, runs: pd.DataFrame, curves: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Summarise and write a finished study: the CSVs (each row naming the command and commit that made it),
    ``study.json`` and ``study.png``. ``lgd study --redraw FOLDER`` calls it again on a finished folder."""
    stamp = {"command": meta["command"], "commit": meta["commit"]}
    runs, curves = runs.drop(columns=list(stamp), errors="ignore"), curves.drop(columns=list(stamp), errors="ignore")
    summary = study_summary(runs)
    write_results(out, {"runs.csv": runs, "curves.csv": curves, "summary.csv": summary}, "study.json", meta,
                  indent=2, stamp=stamp)
    save_figure(plot_study(curves, runs, meta), out / "study.png", dpi=120)
    return summary
