"""The reach study: where no convolution connects two cues, does global diffusion carry the context?

``lgd reach-study`` trains the teaching model on the signpost task
(``data.signpost``) at several distances between its two cues, from a near
end where every block of the plain network has positions that see both, to a
far end where none has:

    level   distance   blocks of the plain twin with a position that sees both cues
    near        16     layer1.0 .. layer4.0
    ...
    far        208     none (checked exactly with ``viz.receptive_field_reach``)

At every distance it trains LGD (``both``) and the same network without
diffusion (``none``, which keeps a pooled global head so both have two heads
and the same loss); at the far end also ``global_to_local`` and
``local_to_global`` alone; at the near and the far end the three other ways to
bring in global context (``se``, ``nonlocal``, ``gc``: ``models.context``, on
the plain network with its two heads). The same seeds serve every variant, and one recipe
(fixed on the near end before the study) serves every level.

**The ceiling.** Where no position sees both cues, every feature of the plain
network depends on the sign or on the object, never on both; its heads pool
and apply a linear map, so its logits are a *sum* of a sign term and an object
term. A sum can get three of the four (arrow, motion) combinations of an
exclusive or right, never all four: its accuracy is bounded by the best
additive rule, 75% on balanced data (``additive_ceiling`` computes it on the
validation set). The lookup on either cue alone scores 50%.

For every trained model it also measures (``causal.csv``):

- ``cf_*``: the counterfactual: mirror the sign (only its box changes; the
  label flips) and measure each block's local change out of the sign's reach
  (exactly zero in the plain network) and in reach;
- ``probe_arrow``: a linear probe for the arrow at the object's local feature,
  per block, against the object-only lookup (50%);
- ``acc_fixed_mean`` / ``acc_zeroed``: the local head with U(W_xg g) fixed at
  its mean over training clips, or zeroed, per block and in all blocks;
- for the competitors (``se``, ``nonlocal``, ``gc``, ``models.context``):
  ``acc_fixed_mean`` with each context block's term (SE's gate, GC's vector,
  the non-local map) fixed at its mean, ``acc_removed`` with each block made
  the identity, and for non-local blocks ``nl_js_query`` / ``nl_js_clip``: the
  mean Jensen-Shannon distance between two query positions' attention maps in
  one clip, and between one query's maps in two clips (GCNet's observation).

Outputs in ``--out``: ``levels.csv`` (layout, reach, ceiling and single-cue
lookups per distance), ``runs.csv``, ``curves.csv``, ``causal.csv``,
``summary.csv``, ``paired.csv``, ``reach_study.png``, ``competitors.png`` (with
the competitors) and ``reach_study.json``.
Every CSV row names the command and commit that made it. Each trained model
is kept in ``--models`` (not shipped); ``--pretrained-dir`` ships the
``both`` and ``none`` models of the near and the far end chosen by the rule
in ``SELECTION_RULE``.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from itertools import product
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import signpost
from ..models import build_model, load_pretrained
from ..models.pretrained import save_pretrained
from ..stats import clopper_pearson, paired_differences, t_interval
from ..viz.causal import attention_distances, counterfactual_change, fix_context, fix_global_to_local, linear_probe, lookup_baseline, mean_context_term, mean_global_to_local, object_and_global_features, receptive_field_reach
from ..viz.causal_plots import VARIANT_LABELS
from ..viz.render import save_figure
from ..viz.taps import lgd_blocks
from .reach_plots import plot_competitors, plot_reach_study
from .results import provenance as utils_provenance
from .results import write_results
from .study import CONTEXT_VARIANTS, Recipe, count_parameters, head_accuracy, steps_to, to_clips, train_variant

FAR_VARIANTS = ("both", "none", "global_to_local", "local_to_global")
COMPETITORS = tuple(CONTEXT_VARIANTS)           # se, nonlocal, gc: at the near and the far end
ORDER = FAR_VARIANTS + COMPETITORS
SOLVED = 0.9
SELECTION_RULE = ("each shipped variant's median seed by final local-head accuracy: the seeds sorted by "
                  "(accuracy, seed), the one at index (n - 1) // 2 (the lower median; equal accuracies ordered by "
                  "seed)")


@dataclass
class ReachSettings(Recipe):
    """The task's layout, the distances and the recipe (the same for every level and variant)."""

    distances: list[int] = field(default_factory=lambda: [16, 64, 128, 208])
    height: int = 32
    sign_width: int = 16
    object_size: int = 8
    room: int = 32
    train_per_class: int = 512
    val_per_class: int = 128
    epochs: int = 10
    target: float = SOLVED
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    far_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6, 7])
    counterfactual_clips: int = 64
    probe_clips: int = 256
    competitors: list[str] = field(default_factory=lambda: list(COMPETITORS))

    def __post_init__(self):
        unknown = [c for c in self.competitors if c not in COMPETITORS]
        if unknown:
            raise ValueError(f"competitors: unknown {unknown}; choose from {list(COMPETITORS)}")
        if len(self.distances) < 1 or sorted(self.distances) != list(self.distances):
            raise ValueError(f"distances: give increasing pixel distances, got {self.distances}")
        for d in self.distances:
            self.layout(d)                                                   # raises on a bad layout

    def layout(self, distance: int) -> dict:
        return signpost.geometry(distance, self.height, self.sign_width, self.object_size, self.room)

    @property
    def far(self) -> int:
        return self.distances[-1]

    def jobs(self) -> list[tuple[int, str, int]]:
        """(distance, variant, seed) for every run, far end first, seeds interleaved across variants."""
        far = [(self.far, v, s) for s, v in product(self.far_seeds, FAR_VARIANTS + tuple(self.competitors))]
        rest = [(d, v, s) for d in reversed(self.distances[:-1])
                for s, v in product(self.seeds, ("both", "none") + (tuple(self.competitors) if d == self.distances[0]
                                                                    else ()))]
        return far + rest


QUICK = dict(distances=[16, 208], train_per_class=8, val_per_class=8, epochs=1, batch_size=8, evals_per_epoch=1,
             seeds=[0], far_seeds=[0, 1], counterfactual_clips=4, probe_clips=16)


# --------------------------------------------------------------------------- the task and its reach

def render_split(s: ReachSettings, distance: int, split: str) -> dict:
    """One split of one level in memory: ``frames`` uint8 (N, T, H, W, 3), ``labels``, ``arrows``, ``motions``,
    ``tracks``. Every (label, arrow) cell holds the same number of clips (``signpost.clip_cues``; give an even
    ``per_class``). Clip k has the same cues, colours and shares of the room at every distance; its texture and
    noise differ with the strip's size."""
    layout = s.layout(distance)
    per_class = s.train_per_class if split == "train" else s.val_per_class
    videos, labels, arrows, motions, tracks = [], [], [], [], []
    for number in range(per_class * len(signpost.CLASSES)):
        label, arrow = signpost.clip_cues(number)
        rng = np.random.default_rng([s.data_seed, {"train": 0, "val": 1}[split], number])
        video, info = signpost.render(label, rng, layout, s.frames, with_info=True, arrow=arrow)
        videos.append(video)
        labels.append(label)
        arrows.append(info["arrow"])
        motions.append(info["motion"])
        tracks.append(info["track"])
    return {"frames": torch.from_numpy(np.stack(videos)), "labels": torch.tensor(labels), "arrows": arrows,
            "motions": motions, "tracks": tracks}


def connecting_blocks(model_or_arch, layout: dict, frames: int) -> list[str]:
    """Blocks of the plain twin that have a position whose theoretical receptive field holds both the sign
    and the object (anywhere on its track)."""
    model = build_model(model_or_arch, 2) if isinstance(model_or_arch, str) else model_or_arch
    sign = receptive_field_reach(model, signpost.sign_region(layout), frames)
    thing = receptive_field_reach(model, signpost.object_region(layout), frames)
    names = [name for name, _ in lgd_blocks(model)]
    return [name for name, a, b in zip(names, sign, thing) if bool((a & b).any())]


def reach_distance(s: ReachSettings, limit: int = 1024) -> int:
    """The least distance at which no block of the plain twin connects the two cues (the network's reach)."""
    low, high = 0, limit
    if connecting_blocks(s.arch, s.layout(high), s.frames):
        raise ValueError(f"{s.arch}: the cues still connect at distance {limit}")
    while low < high:
        middle = (low + high) // 2
        if connecting_blocks(s.arch, s.layout(middle), s.frames):
            low = middle + 1
        else:
            high = middle
    return low


def additive_ceiling(arrows, motions, labels) -> float:
    """The best accuracy of a rule whose score is a sum f(arrow) + g(motion): any labelling of the four
    (arrow, motion) cells except the two exclusive-or patterns, scored on the given clips."""
    cells = [(a, m) for a in signpost.ARROWS for m in signpost.ARROWS]
    keys = list(zip(arrows, motions))
    labels = np.asarray(labels)
    best = 0.0
    for pattern in product((0, 1), repeat=4):
        rule = dict(zip(cells, pattern))
        # a 2 x 2 table is additive (a sign of f(a) + g(m)) unless it is an exclusive or of its rows and columns
        if rule[cells[0]] != rule[cells[1]] and rule[cells[0]] != rule[cells[2]] and rule[cells[0]] == rule[cells[3]]:
            continue
        best = max(best, float(np.mean([rule[k] == y for k, y in zip(keys, labels)])))
    return best


def level_table(s: ReachSettings, data: dict) -> pd.DataFrame:
    """Per distance: the layout, the blocks that connect the cues, the ceiling and the single-cue lookups."""
    reach = reach_distance(s)
    rows = []
    for d in s.distances:
        layout, train, val = s.layout(d), data[d]["train"], data[d]["val"]
        connecting = connecting_blocks(s.arch, layout, s.frames)
        ceiling = 1.0 if connecting else additive_ceiling(val["arrows"], val["motions"], val["labels"].tolist())
        rows.append({"distance": d, "reach": reach, "relative_distance": d / reach, "width": layout["width"],
                     "height": layout["height"], "pixels": layout["width"] * layout["height"],
                     "connecting_blocks": " ".join(connecting) or "none", "ceiling_plain": ceiling,
                     "lookup_arrow": lookup_baseline(train["arrows"], train["labels"].tolist(), val["arrows"],
                                                     val["labels"].tolist()),
                     "lookup_object": lookup_baseline(train["motions"], train["labels"].tolist(), val["motions"],
                                                      val["labels"].tolist()),
                     "chance": 1 / len(signpost.CLASSES)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- causal measurements

@torch.no_grad()
def local_accuracy(model, frames: torch.Tensor, labels: torch.Tensor, batch: int = 64) -> float:
    return head_accuracy(model, frames, labels, batch)["local"]


def measure(model, variant: str, s: ReachSettings, distance: int, train: dict, val: dict) -> list[dict]:
    """The causal measurements of one trained model (rows: measure, block, value)."""
    layout = s.layout(distance)
    names = [name for name, _ in lgd_blocks(model)]
    rows = []

    def add(measure_, block, value):
        rows.append({"measure": measure_, "block": block, "value": float(value)})

    # the counterfactual: the arrow mirrored, nothing else changed
    n = min(s.counterfactual_clips, len(val["labels"]))
    frames = val["frames"][:n].numpy()
    flipped = [signpost.flip_sign(f, layout) for f in frames]
    region = flipped[0][1]
    reach = receptive_field_reach(model, region, s.frames)
    result = counterfactual_change(model, to_clips(torch.from_numpy(frames)),
                                   to_clips(torch.from_numpy(np.stack([f for f, _ in flipped]))))
    for name, change, reached in zip(names, result.change, reach):
        far, near = change[:, ~reached], change[:, reached]
        add("cf_max_out", name, far.max() if far.numel() else float("nan"))
        add("cf_mean_out", name, far.mean() if far.numel() else float("nan"))
        add("cf_mean_in", name, near.mean() if near.numel() else float("nan"))
        add("share_out", name, (~reached).float().mean())
    flipped_labels = 1 - val["labels"][:n]
    add("acc_counterfactual", "all", (result.logits_cf["local_logits"].argmax(1) == flipped_labels).float().mean())

    # the probe: the arrow read from the object's local feature, per block
    m = min(s.probe_clips, len(train["labels"]), len(val["labels"]))
    arrow = {a: i for i, a in enumerate(signpost.ARROWS)}
    y_train = torch.tensor([arrow[a] for a in train["arrows"][:m]])
    y_val = torch.tensor([arrow[a] for a in val["arrows"][:m]])
    feats_train, g_train = object_and_global_features(model, to_clips(train["frames"][:m]), train["tracks"][:m],
                                                      s.object_size)
    feats_val, g_val = object_and_global_features(model, to_clips(val["frames"][:m]), val["tracks"][:m],
                                                  s.object_size)
    for name, a, b in zip(names, feats_train, feats_val):
        add("probe_arrow", name, linear_probe(a, y_train, b, y_val))
    add("probe_object_only", "all", lookup_baseline(train["motions"][:m], y_train.tolist(), val["motions"][:m],
                                                    y_val.tolist()))

    # the global vector itself: does it know the arrow, and the label (both cues combined)?
    for name, a, b in zip(names, g_train, g_val):
        if a is not None:
            add("probe_global_arrow", name, linear_probe(a, y_train, b, y_val))
            add("probe_global_label", name, linear_probe(a, train["labels"][:m], b, val["labels"][:m]))

    # the ablations of the global-to-local term
    intact = local_accuracy(model, val["frames"], val["labels"])
    add("acc_intact", "all", intact)
    if variant in ("both", "global_to_local"):
        means = mean_global_to_local(model, to_clips(train["frames"][:m]))
        zeros = [None if t is None else torch.zeros_like(t) for t in means]
        for kind, terms in (("acc_fixed_mean", means), ("acc_zeroed", zeros)):
            for i, name in enumerate(names):
                with fix_global_to_local(model, [t if j == i else None for j, t in enumerate(terms)]):
                    add(kind, name, local_accuracy(model, val["frames"], val["labels"]))
            with fix_global_to_local(model, terms):
                add(kind, "all", local_accuracy(model, val["frames"], val["labels"]))
    if variant in COMPETITORS:
        # the same question for the other blocks: does their context say something about *this* clip?
        means = mean_context_term(model, to_clips(train["frames"][:m]))
        identity = [None if t is None else (torch.ones_like(t) if variant == "se" else torch.zeros_like(t))
                    for t in means]
        for kind, terms in (("acc_fixed_mean", means), ("acc_removed", identity)):
            for i, name in enumerate(names):
                if terms[i] is None:
                    continue
                with fix_context(model, [t if j == i else None for j, t in enumerate(terms)]):
                    add(kind, name, local_accuracy(model, val["frames"], val["labels"]))
            with fix_context(model, terms):
                add(kind, "all", local_accuracy(model, val["frames"], val["labels"]))
    if variant == "nonlocal":
        for name, (within, across) in attention_distances(model, to_clips(val["frames"][:n])).items():
            add("nl_js_query", name, within)
            add("nl_js_clip", name, across)
    return rows


# --------------------------------------------------------------------------- running

_DATA: dict = {}          # distance -> {"train": ..., "val": ...}; filled before the worker processes fork


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_job(s: ReachSettings, job: tuple[int, str, int], models: Path, log=print) -> dict:
    """Train one (distance, variant, seed), save its model, measure it; returns its rows."""
    distance, variant, seed = job
    train, val = _DATA[distance]["train"], _DATA[distance]["val"]
    t0 = time.perf_counter()
    model, curve = train_variant(s, variant, seed, train, val, log=lambda line: None,
                                 num_classes=len(signpost.CLASSES), flip_dims=(-2,))
    seconds = time.perf_counter() - t0
    total, lgd = count_parameters(model)
    final = {f"acc_{h}": curve[-1][f"acc_{h}"] for h in ("local", "global", "combined")}
    key = {"distance": distance, "variant": variant, "seed": seed}
    name = job_name(job)
    save_pretrained(model, models / name, name, {"classes": signpost.CLASSES, "frames": s.frames, **s.layout(distance),
                                          "size": [s.height, s.layout(distance)["width"]], **key,
                                          "val_acc": final["acc_local"], "val_acc_heads": final,
                                          "data_seed": s.data_seed, "recipe": asdict(s)})
    causal = [{**key, **row} for row in measure(model, variant, s, distance, train, val)]
    log(f"  d={distance:>3} {variant:>15} seed {seed}: local {final['acc_local']:.3f} global "
        f"{final['acc_global']:.3f} ({seconds:.0f} s train, {time.perf_counter() - t0 - seconds:.0f} s measure)")
    return {"run": {**key, "data_seed": s.data_seed, "parameters": total, "lgd_parameters": lgd, **final,
                    "steps_to_target": steps_to(curve, s.target), "steps": curve[-1]["step"],
                    "seconds": round(seconds, 1)},
            "curve": [{**key, **{k: v for k, v in row.items() if k not in key}} for row in curve],
            "causal": causal}


def job_name(job: tuple[int, str, int]) -> str:
    distance, variant, seed = job
    return f"reach_d{distance}_{variant}_seed{seed}"


def run_study(s: ReachSettings, out: Path, models: Path | None = None, pretrained_dir: Path | None = None,
              workers: int | None = None, argv=(), log=print, remeasure: bool = False) -> pd.DataFrame:
    """Train and measure every job (resuming a folder that holds some), write the outputs; returns the summary.

    ``remeasure``: measure the runs found in ``out`` again with the current ``measure`` (from their saved
    models), for measurements added after they were trained; nothing is retrained. A run that fails is
    reported by name after the others finish (they are kept; a rerun resumes)."""
    out.mkdir(parents=True, exist_ok=True)
    models = Path(models or out / "models")
    started = time.perf_counter()
    meta = {**utils_provenance("reach-study", list(argv)), "settings": asdict(s), "selection_rule": SELECTION_RULE}
    done = _load_done(out, models, s)
    if remeasure and not done["keys"]:
        raise ValueError(f"--remeasure: no finished runs in {out} (with their models in {models})")
    for d in s.distances:
        _DATA[d] = {split: render_split(s, d, split) for split in ("train", "val")}
    log(f"rendered {len(s.distances)} levels of {s.train_per_class * 2} training and {s.val_per_class * 2} "
        f"validation clips")
    levels = level_table(s, _DATA)
    write_results(out, {"levels.csv": levels})
    if remeasure:
        for result in done["results"]:
            run = result["run"]
            job = (int(run["distance"]), run["variant"], int(run["seed"]))
            model, _ = load_pretrained(job_name(job), models / job_name(job))
            data = _DATA[job[0]]
            result["causal"] = [{"distance": job[0], "variant": job[1], "seed": job[2], **row}
                                for row in measure(model, job[1], s, job[0], data["train"], data["val"])]
        log(f"measured {len(done['results'])} runs again")
    todo = [job for job in s.jobs() if job not in done["keys"]]
    log(f"{len(s.jobs()) - len(todo)} runs found in {out}, {len(todo)} to do")
    workers = workers or min(2, os.cpu_count() or 1)
    results = done["results"]
    calls = done["calls"]
    this_call = {"command": meta["command"], "commit": meta["commit"], "runs": 0}
    failed = []

    def keep(result):
        if not this_call["runs"]:
            calls.append(this_call)
        this_call["runs"] += 1
        results.append(result)
        _write_partial(out, results)
        write_results(out, {}, "elapsed.json", {"seconds": time.perf_counter() - started + done["seconds"],
                                                "calls": calls, "settings": asdict(s)}, indent=2)

    if workers > 1 and len(todo) > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(run_job, s, job, models, log): job for job in todo}
            for future in as_completed(futures):
                try:
                    keep(future.result())
                except Exception as error:                          # keep the others; name this one
                    failed.append(f"{job_name(futures[future])}: {error!r}")
                    log(f"  FAILED {failed[-1]}")
    else:
        for job in todo:
            keep(run_job(s, job, models, log))
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed (the others are kept in {out}; run again to resume): "
                           + "; ".join(failed))
    meta["seconds"] = round(time.perf_counter() - started + done["seconds"], 1)
    meta["trained_by"] = calls
    summary = write_outputs(out, levels, *_frames(results), meta)
    if pretrained_dir is not None:
        ship_checkpoints(s, out, models, Path(pretrained_dir), meta)
    log(f"done in {meta['seconds']:.0f} s -> {out}")
    return summary


def _frames(results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (pd.DataFrame([r["run"] for r in results]), pd.DataFrame([c for r in results for c in r["curve"]]),
            pd.DataFrame([c for r in results for c in r["causal"]]))


def _write_partial(out: Path, results: list[dict]) -> None:
    runs, curves, causal = _frames(results)
    write_results(out, {"causal.csv": causal, "curves.csv": curves, "runs.csv": runs})    # runs.csv last


def _load_done(out: Path, models: Path, s: ReachSettings) -> dict:
    """Runs an earlier, interrupted call finished (their rows and models are there): resumed, not redone.

    Refuses a folder made with other settings, and rows whose model is missing (a wrong ``--models``). Settings
    that differ only in ``competitors`` resume: the runs of the competitors not yet in the folder are trained."""
    empty = {"keys": set(), "results": [], "seconds": 0.0, "calls": []}
    if not (out / "runs.csv").exists() or not (out / "causal.csv").exists():
        return empty
    elapsed = out / "elapsed.json"
    before = json.loads(elapsed.read_text()) if elapsed.exists() else {}
    # the recipe and the task must match; the list of competitors may differ (a folder grows by new variants)
    comparable = {k: v for k, v in asdict(s).items() if k != "competitors"}
    if before.get("settings") is not None and {k: v for k, v in before["settings"].items()
                                               if k != "competitors"} != comparable:
        changed = sorted(k for k, v in comparable.items() if before["settings"].get(k) != v)
        raise ValueError(f"{out} holds runs made with other settings ({', '.join(changed)} differ): use another "
                         "--out, or the same settings to resume")
    runs, curves, causal = (pd.read_csv(out / n) for n in ("runs.csv", "curves.csv", "causal.csv"))
    drop = ["command", "commit"]
    runs, curves, causal = (t.drop(columns=drop, errors="ignore") for t in (runs, curves, causal))
    wanted = set(s.jobs())
    results, keys = [], set()
    for row in runs.to_dict("records"):
        job = (int(row["distance"]), row["variant"], int(row["seed"]))
        if job not in wanted:
            continue
        path = models / job_name(job) / f"{job_name(job)}.pt"
        if not path.exists():
            raise FileNotFoundError(f"{out / 'runs.csv'} lists {job_name(job)} but its model {path} is missing: "
                                    "pass the --models folder the runs were saved to")
        pick = lambda t: t[(t["distance"] == job[0]) & (t["variant"] == job[1]) & (t["seed"] == job[2])]  # noqa: E731
        results.append({"run": row, "curve": pick(curves).to_dict("records"), "causal": pick(causal).to_dict("records")})
        keys.add(job)
    calls = before.get("calls")
    if calls is None and (out / "reach_study.json").exists():         # a folder finished in one call
        finished = json.loads((out / "reach_study.json").read_text())
        calls = [{"command": finished["command"], "commit": finished["commit"], "runs": len(keys)}]
    return {"keys": keys, "results": results, "seconds": before.get("seconds", 0.0), "calls": calls or []}


# --------------------------------------------------------------------------- summaries

def reach_summary(runs: pd.DataFrame, levels: pd.DataFrame) -> pd.DataFrame:
    """Per distance and variant: local-head accuracy (mean, 95% t-interval clipped to [0, 1]), seeds that
    solved the task (>= 0.9) with a Clopper-Pearson interval, steps to 0.9 over the seeds that got there."""
    rows = []
    for (distance, variant), group in runs.groupby(["distance", "variant"], sort=False):
        mean, low, high = t_interval(group["acc_local"])
        solved = int((group["acc_local"] >= SOLVED).sum())
        s_low, s_high = clopper_pearson(solved, len(group))
        steps = group["steps_to_target"].dropna()
        level = levels.set_index("distance").loc[distance]
        rows.append({"distance": distance, "relative_distance": level["relative_distance"], "variant": variant,
                     "seeds": len(group), "acc_local": mean, "acc_local_low": float(np.clip(low, 0, 1)),
                     "acc_local_high": float(np.clip(high, 0, 1)), "acc_global": group["acc_global"].mean(),
                     "solved": solved, "solved_low": s_low, "solved_high": s_high,
                     "steps_to_target": steps.mean() if len(steps) else float("nan"),
                     "ceiling_plain": level["ceiling_plain"]})
    order = {v: i for i, v in enumerate(ORDER)}
    return pd.DataFrame(rows).sort_values(["distance", "variant"], key=lambda c: c.map(order) if c.name ==
                                          "variant" else c).reset_index(drop=True)


def paired(runs: pd.DataFrame) -> pd.DataFrame:
    """Per distance: LGD - plain local-head accuracy per seed, mean with a 95% t-interval."""
    rows = []
    for distance, group in runs.groupby("distance"):
        table = group.pivot(index="seed", columns="variant", values="acc_local")
        if not {"both", "none"} <= set(table.columns):
            continue
        matched = table[["both", "none"]].dropna()
        diff, (mean, low, high) = paired_differences(matched["both"], matched["none"])
        rows.append({"distance": distance, "pairs": len(diff), "difference": mean, "low": low, "high": high,
                     "lgd_wins": int((diff > 0).sum()), "ties": int((diff == 0).sum())})
    return pd.DataFrame(rows)


def write_outputs(out: Path, levels: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame, causal: pd.DataFrame,
                  meta: dict) -> pd.DataFrame:
    """Summarise a finished study and write every CSV (stamped with command and commit), the JSON and the figure."""
    stamp = {"command": meta["command"], "commit": meta["commit"]}
    tables = {"levels.csv": levels, "runs.csv": runs, "curves.csv": curves, "causal.csv": causal}
    tables = {name: t.drop(columns=list(stamp), errors="ignore") for name, t in tables.items()}
    summary, pairs = reach_summary(tables["runs.csv"], tables["levels.csv"]), paired(tables["runs.csv"])
    write_results(out, {**tables, "summary.csv": summary, "paired.csv": pairs}, "reach_study.json", meta, indent=2,
                  stamp=stamp)
    save_figure(plot_reach_study(tables["levels.csv"], tables["runs.csv"], tables["causal.csv"], meta),
                out / "reach_study.png", dpi=120)
    if set(COMPETITORS) & set(tables["runs.csv"]["variant"]):
        save_figure(plot_competitors(tables["levels.csv"], tables["runs.csv"], tables["causal.csv"], meta),
                    out / "competitors.png", dpi=110)
    return summary


def redraw(folder: Path) -> pd.DataFrame:
    """Summarise a finished folder again from its CSVs and redraw its figure (``lgd reach-study --redraw``)."""
    meta = json.loads((folder / "reach_study.json").read_text())
    tables = [pd.read_csv(folder / f"{n}.csv") for n in ("levels", "runs", "curves", "causal")]
    return write_outputs(folder, *tables, meta)


def select_seed(runs: pd.DataFrame, distance: int, variant: str) -> tuple[int, int, int]:
    """(seed, its index, count) chosen by ``SELECTION_RULE``."""
    group = runs[(runs["distance"] == distance) & (runs["variant"] == variant)]
    ordered = group.sort_values(["acc_local", "seed"]).reset_index(drop=True)
    index = (len(ordered) - 1) // 2
    return int(ordered.loc[index, "seed"]), index, len(ordered)


def ship_checkpoints(s: ReachSettings, out: Path, models: Path, pretrained_dir: Path, meta: dict) -> list[str]:
    """Copy the selected near- and far-end ``both`` / ``none`` models into ``pretrained_dir``."""
    runs = pd.read_csv(out / "runs.csv")
    shipped = []
    for end, distance in (("near", s.distances[0]), ("far", s.far)):
        for variant in ("both", "none"):
            seed, index, count = select_seed(runs, distance, variant)
            name = job_name((distance, variant, seed))
            model, info = load_pretrained(name, models / name)
            group = runs[(runs["distance"] == distance) & (runs["variant"] == variant)].sort_values("seed")
            name = f"{s.arch}_signpost_{end}_{variant}"
            keep = {k: v for k, v in info.items() if k not in ("file", "bytes", "sha256", "arch", "diffusion",
                                                              "build_args")}
            save_pretrained(model, pretrained_dir, name, {
                **keep, "end": end, "selection_rule": SELECTION_RULE,
                "selection": f"seed {seed}: index {index} of {count} seeds sorted by (accuracy, seed)",
                "variant_seeds_acc_local": dict(zip(group["seed"].astype(str), group["acc_local"].round(4))),
                "command": meta["command"], "commit": meta["commit"], "machine": meta["machine"]})
            shipped.append(name)
    return shipped


def report(folder: Path) -> str:
    """The README's Markdown tables and provenance line, from a finished study folder."""
    meta = json.loads((folder / "reach_study.json").read_text())
    levels, summary, pairs = (pd.read_csv(folder / n) for n in ("levels.csv", "summary.csv", "paired.csv"))
    lines = ["| distance (px) | / reach | strip | blocks whose positions see both cues | plain ceiling | "
             "arrow alone | object alone |", "| ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for _, r in levels.iterrows():
        lines.append(f"| {r['distance']} | {r['relative_distance']:.2f} | {r['height']} x {r['width']} | "
                     f"{r['connecting_blocks']} | {r['ceiling_plain']:.3f} | {r['lookup_arrow']:.3f} | "
                     f"{r['lookup_object']:.3f} |")
    lines += ["", "| distance (px) | variant | local head, mean [95% CI] | solved (>= 0.9) [exact 95% CI] | "
              "steps to 0.9 (seeds that got there) | LGD - plain, paired [95% CI] |",
              "| ---: | --- | --- | --- | ---: | --- |"]
    pair = pairs.set_index("distance")
    for _, r in summary.iterrows():
        steps = "-" if math.isnan(r["steps_to_target"]) else f"{r['steps_to_target']:.0f}"
        diff = ""
        if r["variant"] == "both" and r["distance"] in pair.index:
            p = pair.loc[r["distance"]]
            diff = f"{p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"
        lines.append(f"| {r['distance']} | `{r['variant']}` | {r['acc_local']:.3f} [{r['acc_local_low']:.3f}, "
                     f"{r['acc_local_high']:.3f}] | {r['solved']} of {r['seeds']} [{r['solved_low']:.2f}, "
                     f"{r['solved_high']:.2f}] | {steps} | {diff} |")
    trained = "; ".join(f"`{c['command']}` at commit `{c['commit']}` ({c['runs']} runs)"
                        for c in meta.get("trained_by", []))
    lines.append(f"\nTrained by {trained or 'an unrecorded call'}; measured, summarised and shipped by "
                 f"`{meta['command']}` at commit `{meta['commit']}`. {meta['seconds'] / 60:.0f} min in all "
                 f"({meta['machine']}).")
    return "\n".join(lines)


def findings(folder: Path) -> str:
    """What the shipped study shows, in sentences computed from its CSVs (the README prints exactly this)."""
    levels, summary, pairs, causal = (pd.read_csv(folder / f"{n}.csv") for n in ("levels", "summary", "paired",
                                                                                   "causal"))
    cell = summary.set_index(["distance", "variant"])
    near, far = int(levels["distance"].min()), int(levels["distance"].max())
    reach = int(levels["reach"].iloc[0])

    def solved(distance, variant):
        r = cell.loc[(distance, variant)]
        return f"{r['solved']} of {r['seeds']} seeds [{r['solved_low']:.2f}, {r['solved_high']:.2f}]"

    out = [f"The plain network's reach on this strip is {reach} px, the least distance at which no position of "
           f"any block has both cues in its theoretical receptive field (computed exactly). At {near} px the blocks "
           f"{levels['connecting_blocks'].iloc[0].replace(' ', ', ')} all have such positions."]
    out.append(f"Near end: the recipe, the same at every distance, trained the plain network in "
               f"{solved(near, 'none')} and LGD in {solved(near, 'both')}.")
    middle = []
    for d in levels["distance"][1:-1]:
        row = levels.set_index("distance").loc[d]
        middle.append(f"at {d} px ({row['relative_distance']:.2f} x the reach; connecting blocks: "
                      f"{row['connecting_blocks'].replace(' ', ', ')}) LGD solved {solved(d, 'both')} and the plain "
                      f"network {solved(d, 'none')}")
    if middle:
        out.append("In between, " + "; ".join(middle) + ".")
    plain_solves = [int(d) for d in levels["distance"] if cell.loc[(d, "none"), "solved"] * 2 > cell.loc[(d, "none"),
                                                                                                        "seeds"]]
    stops = [int(d) for d in levels["distance"] if int(d) not in plain_solves and
             levels.set_index("distance").loc[d, "connecting_blocks"] != "none"]
    if stops:
        blocks = levels.set_index("distance").loc[stops[0], "connecting_blocks"].replace(" ", ", ")
        out.append(f"So the plain network stops solving the task at {stops[0]} px, where {blocks} still have "
                   "positions that see both cues: within this budget the theoretical receptive field overstates the "
                   "reach the trained network uses.")
    lgd_far, plain_far = cell.loc[(far, "both")], cell.loc[(far, "none")]
    ceiling = float(levels.set_index("distance").loc[far, "ceiling_plain"])
    pair = pairs.set_index("distance").loc[far]
    far_causal = causal[causal["distance"] == far]
    out_in = far_causal.pivot_table(index=["variant", "seed", "block"], columns="measure", values="value")
    relative = (out_in["cf_mean_out"] / out_in["cf_mean_in"]).loc["both"].dropna()      # per (seed, block)
    plain_zero = bool((out_in.loc["none", "cf_max_out"].dropna() == 0).all())
    probe = far_causal[far_causal["measure"] == "probe_arrow"].pivot_table(index="seed", columns=["variant", "block"],
                                                                           values="value")
    out.append(f"Far end ({far} px, {far / reach:.2f} x the reach): LGD solved {solved(far, 'both')}, the plain "
               f"network {solved(far, 'none')} (its ceiling, the best sum of what it sees at each cue, is "
               f"{ceiling:.3f}); mean local-head accuracy {lgd_far['acc_local']:.3f} and {plain_far['acc_local']:.3f}, "
               f"paired difference {pair['difference']:+.3f} [{pair['low']:+.3f}, {pair['high']:+.3f}].")
    moved = int((relative > 0).sum())
    out.append(f"Mirroring the arrow moves LGD's local features out of the sign's reach in {moved} of "
               f"{relative.size} (seed, block) pairs, by {relative.median():.2e} of the change within reach "
               f"(median); the plain network's by "
               + ("exactly 0 in every seed and block." if plain_zero else "more than 0 somewhere: a bug."))
    lgd_probe = {block: t_interval(probe["both"][block]) for block in probe["both"].columns}
    block, (mean, low, high) = max(lgd_probe.items(), key=lambda kv: kv[1][0])
    plain_mean = float(probe["none"].to_numpy().mean())
    out.append(f"A linear probe for the arrow at the square's feature: LGD's best block {block}, "
               f"{mean:.3f} [{low:.3f}, {high:.3f}] over seeds "
               + ("(above chance, 0.5)" if low > 0.5 else "(not distinguishable from chance, 0.5)")
               + f"; the plain network's blocks average {plain_mean:.3f}.")
    g_probe = far_causal[(far_causal["measure"] == "probe_global_arrow") & (far_causal["variant"] == "both")]
    if len(g_probe):
        g_by_block = {b: t_interval(v["value"]) for b, v in g_probe.groupby("block")}
        g_block, (g_mean, g_low, g_high) = max(g_by_block.items(), key=lambda kv: kv[1][0])
        out.append(f"The same probe on LGD's global vector g reads the arrow with {g_mean:.3f} [{g_low:.3f}, "
                   f"{g_high:.3f}] in its best block ({g_block}, the best of four): the square's features can only "
                   "learn the arrow from g, and g holds that much of it.")
    others = {v: int(cell.loc[(far, v), "solved"]) for v in ("global_to_local", "local_to_global", *COMPETITORS)
              if (far, v) in cell.index}
    if lgd_far["solved"] == 0:
        out.append("**So the study does not show that LGD solves a task where only its global path could connect "
                   "the cues:** with the recipe and budget used at every distance, "
                   + ("no run of any variant solved the far end. " if sum(others.values()) == 0 else
                      f"{sum(others.values())} far-end runs of the other variants reached 0.9 "
                      f"({', '.join(f'{v}: {n}' for v, n in others.items() if n)}), none of LGD's. ")
                   + "What it shows is where the plain network stops, and whether global context reaches features "
                   "no convolution connects to its source; not that it carries enough of it to decide the task.")
    elif lgd_far["solved_low"] > plain_far["solved_high"] or (lgd_far["acc_local_low"] > ceiling):
        out.append("Beyond the reach of every convolution, LGD solved clearly more seeds than the plain network "
                   "(non-overlapping exact intervals, or a mean interval above the plain network's ceiling): there "
                   "any success can only have come through the global path.")
    else:
        out.append("LGD solved some far-end seeds, but not clearly more than the plain network (the exact intervals "
                   "overlap).")
    return " ".join(out)


# --------------------------------------------------------------------------- the other ways to bring in context

def competitor_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """The competitors beside LGD and the plain network, from a finished study folder.

    - ``accuracy``: per end (near, far) and variant: seeds, mean local-head accuracy with its t-interval, seeds
      that solved the task with the exact interval;
    - ``attention``: per end and non-local block: the mean Jensen-Shannon distance between two query positions'
      attention maps in one clip (``within``) and between one query's maps in two clips (``across``), mean and
      t-interval over seeds;
    - ``fixed``: per end and variant with a term to fix (``both``, ``global_to_local``, ``se``, ``gc``,
      ``nonlocal``): the local head intact, with every block's term fixed at its mean, and the drop
      (intact - fixed) per seed, mean and t-interval; and with every term removed (zeroed / identity);
    - ``probe``: per end, variant and block: the arrow read at the square's feature (mean over seeds, interval);
    - ``outside``: per end and variant: the median over (seed, block) of the counterfactual change out of the
      sign's reach relative to the change within it.
    """
    folder = Path(folder)
    levels, summary, causal = (pd.read_csv(folder / f"{n}.csv") for n in ("levels", "summary", "causal"))
    ends = {"near": int(levels["distance"].min()), "far": int(levels["distance"].max())}
    variants = [v for v in ("both", "none", *COMPETITORS) if v in set(summary["variant"])]
    accuracy = []
    for end, d in ends.items():
        for v in variants:
            row = summary[(summary["distance"] == d) & (summary["variant"] == v)]
            if len(row):
                r = row.iloc[0]
                accuracy.append({"end": end, "distance": d, "variant": v, "seeds": int(r["seeds"]),
                                 "acc_local": r["acc_local"], "acc_low": r["acc_local_low"],
                                 "acc_high": r["acc_local_high"], "solved": int(r["solved"]),
                                 "solved_low": r["solved_low"], "solved_high": r["solved_high"]})
    wide = causal.pivot_table(index=["distance", "variant", "seed", "block"], columns="measure", values="value")
    attention, fixed, probe, outside = [], [], [], []
    for end, d in ends.items():
        here = causal[causal["distance"] == d]
        nl = here[here["measure"].isin(["nl_js_query", "nl_js_clip"])]
        for block, group in nl.groupby("block", sort=False):
            within = group.loc[group["measure"] == "nl_js_query", "value"]
            across = group.loc[group["measure"] == "nl_js_clip", "value"]
            attention.append({"end": end, "block": block, "seeds": len(within),
                              **dict(zip(("within", "within_low", "within_high"), t_interval(within))),
                              **dict(zip(("across", "across_low", "across_high"), t_interval(across)))})
        for v in ("both", "global_to_local", *COMPETITORS):
            rows = here[(here["variant"] == v) & (here["block"] == "all")]
            table = rows.pivot_table(index="seed", columns="measure", values="value")
            if "acc_fixed_mean" not in table:
                continue
            drop = table["acc_intact"] - table["acc_fixed_mean"]
            removed = table["acc_removed"] if "acc_removed" in table else table.get("acc_zeroed")
            fixed.append({"end": end, "variant": v, "seeds": len(table), "intact": table["acc_intact"].mean(),
                          "fixed_mean": table["acc_fixed_mean"].mean(),
                          **dict(zip(("drop", "drop_low", "drop_high"), t_interval(drop))),
                          "removed": removed.mean() if removed is not None else float("nan")})
        for v in variants:
            part = here[(here["variant"] == v) & (here["measure"] == "probe_arrow")]
            for block, group in part.groupby("block", sort=False):
                probe.append({"end": end, "variant": v, "block": block,
                              **dict(zip(("probe", "probe_low", "probe_high"), t_interval(group["value"])))})
            if (d, v) in wide.index.droplevel([2, 3]):
                w = wide.loc[(d, v)]
                ratio = (w["cf_mean_out"] / w["cf_mean_in"]).dropna()
                if len(ratio):
                    outside.append({"end": end, "variant": v, "pairs": len(ratio), "median_ratio": ratio.median(),
                                    "moved_pairs": int((ratio > 0).sum())})
    return {"accuracy": pd.DataFrame(accuracy), "attention": pd.DataFrame(attention), "fixed": pd.DataFrame(fixed),
            "probe": pd.DataFrame(probe), "outside": pd.DataFrame(outside)}


def competitor_report(folder: Path) -> str:
    """The README's table of LGD, the plain network and the competitors at the near and the far end."""
    t = competitor_tables(folder)["accuracy"]
    lines = ["| end (distance) | variant | local head, mean [95% CI] | solved (>= 0.9) [exact 95% CI] |",
             "| --- | --- | --- | --- |"]
    for _, r in t.iterrows():
        lines.append(f"| {r['end']} ({r['distance']} px) | `{r['variant']}` | {r['acc_local']:.3f} "
                     f"[{r['acc_low']:.3f}, {r['acc_high']:.3f}] | {r['solved']} of {r['seeds']} "
                     f"[{r['solved_low']:.2f}, {r['solved_high']:.2f}] |")
    return "\n".join(lines)


def competitor_findings(folder: Path) -> str:
    """What the study shows about the competitors, in sentences computed from its CSVs."""
    t = competitor_tables(folder)
    acc = t["accuracy"].set_index(["end", "variant"])
    present = [v for v in COMPETITORS if ("far", v) in acc.index]
    if not present:
        return "The study folder holds no runs of the competitors (se, nonlocal, gc)."

    def solved(end, v):
        r = acc.loc[(end, v)]
        return f"{int(r['solved'])} of {int(r['seeds'])}"

    out = ["Near end: " + ", ".join(f"{VARIANT_LABELS[v]} solved {solved('near', v)}" for v in ("both", "none",
                                                                                                  *present)
                                    if ("near", v) in acc.index) + " seeds."]
    far_solved = {v: int(acc.loc[("far", v), "solved"]) for v in ("both", "none", *present) if ("far", v) in acc.index}
    out.append("Far end, beyond the reach of every convolution: " + ", ".join(
        f"{VARIANT_LABELS[v]} {solved('far', v)} (mean {acc.loc[('far', v), 'acc_local']:.3f})" for v in far_solved)
        + ".")
    if sum(far_solved.values()) == 0:
        out.append("No way of bringing in global context solved the far end within this recipe and budget, so the "
                   "study cannot rank them where only global context could connect the cues.")
    attention = t["attention"]
    for end in ("near", "far"):
        part = attention[attention["end"] == end]
        if not len(part):
            continue
        pieces = [f"{r['block']} {r['within']:.2f} between two query positions of one clip against {r['across']:.2f} "
                  f"between one position in two clips" for _, r in part.iterrows()]
        apart = bool((part["within_high"] < part["across_low"]).all())
        out.append(f"Non-local attention, {end} end (mean Jensen-Shannon distance over {int(part['seeds'].max())} "
                   "seeds; 0: the same map, 1: disjoint): " + "; ".join(pieces) + ". "
                   + ("The maps of two query positions are measurably closer to each other than one position's maps "
                      "in two clips (non-overlapping intervals in every block), the direction of GCNet's "
                      f"observation; but at {part['within'].min():.2f} to {part['within'].max():.2f} they are far "
                      "from the same map for every query, so one query-independent context would not reproduce "
                      "these blocks." if apart else
                      "The intervals overlap in at least one block: these data do not show GCNet's observation "
                      "(maps almost the same for every query) on these models."))
    fixed = t["fixed"]
    for end in ("near", "far"):
        part = fixed[(fixed["end"] == end) & fixed["variant"].isin(["both", "gc", "se", "nonlocal"])].set_index(
            "variant")
        if len(part):
            out.append(f"Fixing each block's term at its mean over training clips ({end} end, all blocks at once) "
                       "costs the local head " + ", ".join(
                           f"{VARIANT_LABELS[v]} {_fmt_drop(part.loc[v])}" for v in part.index) + ".")
    near_fixed = fixed[fixed["end"] == "near"]
    if len(near_fixed) and (near_fixed["drop_high"].fillna(near_fixed["drop"]) < 0.01).all():
        out.append("At the near end, where the convolutions see both cues, fixing the context at its mean changes "
                   "nothing for any of them: the models that learned the task did it with their convolutions.")
    probe = t["probe"]
    far_probe = probe[(probe["end"] == "far") & probe["variant"].isin(COMPETITORS)]
    if len(far_probe):
        best = far_probe.loc[far_probe["probe"].idxmax()]
        out.append(f"At the far end no competitor's feature at the square reads the arrow above chance: the best "
                   f"block is {VARIANT_LABELS[best['variant']]}'s {best['block']}, {best['probe']:.3f} "
                   f"[{best['probe_low']:.3f}, {best['probe_high']:.3f}]."
                   if (far_probe["probe_low"] <= 0.5).all() else
                   f"At the far end {VARIANT_LABELS[best['variant']]}'s {best['block']} reads the arrow at the square "
                   f"above chance: {best['probe']:.3f} [{best['probe_low']:.3f}, {best['probe_high']:.3f}].")
    return " ".join(out)


def _fmt_drop(r) -> str:
    if math.isnan(r["drop_low"]):
        return f"{r['drop']:+.3f}"
    return f"{r['drop']:+.3f} [{r['drop_low']:+.3f}, {r['drop_high']:+.3f}]"
