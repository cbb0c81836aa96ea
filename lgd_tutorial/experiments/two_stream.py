"""RGB, flow and both on the teaching task, over seeds (``lgd two-stream``).

    lgd two-stream --seeds 0 1 2 --out runs/two_stream

For each seed it trains the teaching model on RGB (``tiny_synthetic_cpu``),
the same network without diffusion on RGB (``model.diffusion=none``: the
ablation notebook 5 shows), and the teaching model on optical flow
(``tiny_synthetic_flow_cpu``, DIS flow computed on first use). It evaluates
them on the same validation videos with the recipe's test views and fuses the
two LGD streams' video scores (rgb + w x flow, ``evaluation.fuse``).
It writes ``runs.csv`` (one row per seed and stream), ``summary.csv`` (mean
and 95% t-interval over seeds), ``curves.csv`` (validation accuracy after every
epoch of every run) and ``two_stream.json`` (command, commit, machine, time).
The results shipped in ``figures/two_stream/`` were made this way; notebooks 5
and 8 read them. With ``pretrained_dir`` the first seed's flow model is also
saved there as the teaching checkpoint ``FLOW_CHECKPOINT`` (with how it was
made and what it scored), which notebook 8 evaluates on a CPU instead of
training the flow stream itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..builders import model_from_checkpoint, recipe_test_set
from ..evaluation import class_names, evaluate_recipe, evaluate_streams
from ..metrics import validation_curve
from ..models.pretrained import save_pretrained
from ..stats import t_interval
from ..training import Trainer, train_fresh
from .results import provenance, write_results

RECIPES = {"rgb": "tiny_synthetic_cpu", "rgb_none": "tiny_synthetic_cpu", "flow": "tiny_synthetic_flow_cpu"}
STREAM_OVERRIDES = {"rgb_none": ["model.diffusion=none"]}     # what a stream changes in its recipe
FLOW_CHECKPOINT = "lgd3d_tiny_synthetic_flow"                # the flow stream shipped in lgd_tutorial/pretrained/


def train_stream(stream: str, seed: int, out: Path, overrides=()) -> Trainer:
    """Train one stream of the teaching task for one seed (a fresh run in ``out / f"{stream}_seed{seed}"``)."""
    trainer, _ = train_fresh(RECIPES[stream], [*overrides, *STREAM_OVERRIDES.get(stream, []), f"run.seed={seed}"],
                             out / f"{stream}_seed{seed}")
    return trainer


def evaluate_pair(rgb: Trainer, flow: Trainer, flow_weight: float, plain: Trainer | None = None) -> pd.DataFrame:
    """Both streams' best checkpoints on the validation videos (the recipe's test views), and their fusion;
    with ``plain``, the RGB network without diffusion too (a row ``rgb_none``)."""
    loaded = {}
    for name, trainer in (("rgb", rgb), ("flow", flow), ("rgb_none", plain)):
        if trainer is None:
            continue
        model, cfg = model_from_checkpoint(trainer.out / "best.pt", trainer.device)
        loaded[name] = (model, cfg, recipe_test_set(cfg), trainer.device)
    (rgb_model, rgb_cfg, rgb_data, device), (flow_model, flow_cfg, flow_data, _) = loaded["rgb"], loaded["flow"]
    if (rgb_cfg.data.test_head, rgb_cfg.data.test_average) != (flow_cfg.data.test_head, flow_cfg.data.test_average):
        raise ValueError("the two streams' recipes score their views differently (data.test_head, test_average)")
    *_, table = evaluate_streams((rgb_model, rgb_data), (flow_model, flow_data), class_names(rgb_cfg), flow_weight,
                                 batch_size=8, device=device, head=rgb_cfg.data.test_head,
                                 average=rgb_cfg.data.test_average)
    if "rgb_none" not in loaded:
        return table
    model, cfg, data, device = loaded["rgb_none"]
    r = evaluate_recipe(model, cfg, data, device)
    plain_row = pd.DataFrame([{"stream": "rgb_none", "videos": r.videos, "acc1": r.video_acc1}])
    return pd.concat([table.iloc[:1], plain_row, table.iloc[1:]], ignore_index=True)


def stream_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean top-1 per stream with a 95% Student-t interval over seeds (the whole range of 0..1 when one seed)."""
    rows = []
    for stream, group in runs.groupby("stream", sort=False):
        mean, low, high = t_interval(group["acc1"], bounds=(0.0, 1.0))
        rows.append({"stream": stream, "seeds": len(group), "acc1": mean, "acc1_low": low, "acc1_high": high,
                     "videos": int(group["videos"].iloc[0])})
    return pd.DataFrame(rows)


def save_flow_checkpoint(trainer: Trainer, folder, acc1: float, made_by: dict, overrides=()) -> Path:
    """The flow stream's best weights as the teaching checkpoint ``FLOW_CHECKPOINT`` in ``folder``."""
    model, cfg = model_from_checkpoint(trainer.out / "best.pt")
    d = cfg.data
    info = {"classes": class_names(cfg), "frames": d.num_frames, "stride": d.stride, "size": d.crop_size,
            "modality": "flow", "flow_method": "dis", "flow_bound": d.flow_bound, "seed": cfg.run.seed, "val_acc": acc1,
            "recipe": " ".join([RECIPES["flow"], *overrides]), "autocast": str(trainer.amp_dtype or "off"),
            **made_by}
    return save_pretrained(model, folder, FLOW_CHECKPOINT, info)


def run(seeds=(0, 1, 2), out="runs/two_stream", flow_weight: float = 1.5, overrides=(), argv=(), log=print,
        work=None, plain: bool = True, pretrained_dir=None) -> dict:
    """Train and evaluate both streams (and, with ``plain``, the RGB network without diffusion) for every
    seed; write the CSVs and the provenance to ``out``, the runs (checkpoints, metrics) to ``work`` (default
    ``out / "runs"``), and with ``pretrained_dir`` the first seed's flow model as a teaching checkpoint."""
    out = Path(out)
    work = Path(work) if work else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    started, rows, curves = time.perf_counter(), [], []
    made_by = provenance("two-stream", list(argv))        # the code as it was when the runs started
    for seed in seeds:
        trained = {stream: train_stream(stream, seed, work, overrides)
                   for stream in ("rgb", "rgb_none", "flow") if plain or stream != "rgb_none"}
        curves += [validation_curve(trainer.out, stream=stream, seed=seed) for stream, trainer in trained.items()]
        autocast = {stream: str(trainer.amp_dtype or "off") for stream, trainer in trained.items()}
        table = evaluate_pair(trained["rgb"], trained["flow"], flow_weight, trained.get("rgb_none")).assign(seed=seed)
        rows.append(table)
        if pretrained_dir and seed == seeds[0]:
            flow_acc = float(table.loc[table["stream"] == "flow", "acc1"].iloc[0])
            save_flow_checkpoint(trained["flow"], pretrained_dir, flow_acc, made_by, overrides)
        if log:
            log(f"seed {seed}: " + ", ".join(f"{r.stream} {r.acc1:.3f}" for r in table.itertuples()), flush=True)
    runs = pd.concat(rows, ignore_index=True)
    summary = stream_summary(runs)
    meta = {**made_by, "seconds": time.perf_counter() - started, "autocast": autocast,
            "seeds": list(seeds), "flow_weight": flow_weight, "overrides": list(overrides),
            "recipes": {stream: " ".join([recipe, *STREAM_OVERRIDES.get(stream, [])])
                        for stream, recipe in RECIPES.items() if plain or stream != "rgb_none"}}
    write_results(out, {"runs.csv": runs, "summary.csv": summary, "curves.csv": pd.concat(curves)},
                  "two_stream.json", meta)
    return {"runs": runs, "summary": summary, "meta": meta}
