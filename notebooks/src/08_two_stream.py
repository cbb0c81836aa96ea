# %% [markdown]
# # 8. Two streams: what motion alone can tell
#
# **What you will learn**
# - what optical flow is, how it is computed (TV-L1, and OpenCV's fast DIS), stored in 8 bits with a bound, and
#   read back into the same clips, samplers and views as the RGB frames;
# - what it costs: frames per second per core for each method, and the core-hours for Kinetics-400;
# - the flow network: the same LGD-3D with a 2-channel stem, initialised from ImageNet by averaging the RGB stem
#   kernel over its colours (TSN's cross-modality initialisation);
# - late fusion: the two streams' video scores added with a weight, and what each stream and the fusion score
#   on the teaching task, over seeds.
#
# **What it needs:** a CPU (the flow of the synthetic set's validation videos, and the shipped
# flow model evaluated on it; `TRAIN_FLOW = True` also trains a short flow run here); the results over seeds are
# shipped in `figures/two_stream/` with the command that made them.
#
# **Where the parts come from.** Two-stream networks: Simonyan and Zisserman (2014); TV-L1 flow clipped at 20
# pixels and stored in 8 bits, cross-modality initialisation and the 1 : 1.5 weighting of RGB and flow scores:
# TSN (Wang et al., 2016). The paper reports two-stream LGD-3D results on Kinetics and flow-stream results on
# UCF101 and HMDB51 (`notebooks/PAPER.md`); the authors' later release is RGB only, so the flow recipe here is the
# RGB recipe with flow as input, and the teaching experiment is ours.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import hsv_to_rgb

from lgd_tutorial import Trainer, load_config, load_pretrained, model_from_checkpoint
from lgd_tutorial.builders import recipe_test_set
from lgd_tutorial.data import flow, synthetic
from lgd_tutorial.experiments import bench_flow
from lgd_tutorial.evaluation import evaluate_recipe
from lgd_tutorial.experiments.two_stream import FLOW_CHECKPOINT
from lgd_tutorial.notebooks import data_dir, figure_path, inline_figures, profile, shipped_path, show_figure, work_path
from lgd_tutorial.viz import plot_learning_curves

inline_figures()
print("profile:", profile())

# %% tags=["parameters"]
DATA_DIR = data_dir() / "synthetic"        # the teaching set (made on first use); its flow goes in flow_dis/
VIDEOS_PER_CLASS, VAL_PER_CLASS = 320, 32      # the teaching set's size (the recipe's defaults)
TRAIN_FLOW = profile() == "gpu"               # train a flow run here (else: evaluate the shipped flow model, 8.3)
FLOW_EPOCHS = 4                               # that run's length (the full recipe over seeds: 8.4)
OVERRIDES = []                                # extra key=value for the flow recipe
RATE_SIZES = (80, 256)                        # frame sides at which the methods are timed
RATE_PAIRS = 2                                # frame pairs timed per method and size

# %% [markdown]
# ## 8.1 Optical flow of a synthetic clip
#
# Optical flow gives, for every pixel, how far it moved between two frames: a displacement (x, y) in pixels.
# `lgd prepare flow` computes it for every video of a manifest (in parallel, resumable, one file per video) and
# stores it in 8 bits: clipped to +-`bound` pixels and mapped to 0..255, so reading it back is exact to within
# bound / 255 of a pixel (the format is in `lgd_tutorial/data/flow.py`). The command for this dataset:
#
#     lgd prepare flow --root data/synthetic --manifest manifest_train.csv manifest_val.csv \
#         --out data/synthetic/flow_dis --method dis --config tiny_synthetic_flow_cpu
#
# (`--config` names the recipe the flow is for: it sets the short side the flow is computed at, the largest
# scale the recipe trains at, 80 pixels here, which is the synthetic videos' own size.)
#
# The cell below does the same from Python, with DIS (the fast method; TV-L1 is many times slower, and 8.2
# measures by how much), for the validation videos: the shipped flow model is evaluated on them in 8.3. With
# `TRAIN_FLOW = True` it does the training videos too, which the flow run here needs. Videos whose flow is
# already stored are skipped.

# %%
DATA_DIR = Path(DATA_DIR)
synthetic.generate(DATA_DIR, videos_per_class=VIDEOS_PER_CLASS, val_per_class=VAL_PER_CLASS, progress=False)
FLOW_DIR = DATA_DIR / "flow_dis"
start = time.perf_counter()
manifests = {split: flow.extract(DATA_DIR / f"manifest_{split}.csv", DATA_DIR, FLOW_DIR, "dis", workers=2,
                                 progress=False, manifest_name=f"flow_manifest_{split}.csv")
             for split in (("train", "val") if TRAIN_FLOW else ("val",))}
extraction_seconds = time.perf_counter() - start
for split, table in manifests.items():
    print(f"{split}: {flow.status_counts(table)}")
computed = sum(t.loc[t["status"] == "done", "frames"].sum() - (t["status"] == "done").sum() for t in manifests.values())
print(f"{extraction_seconds:.1f} s for this cell; {computed:,} flow frames computed now "
      f"({computed / max(extraction_seconds, 1e-9):.0f} frames/s on 2 processes)" if computed else
      f"{extraction_seconds:.1f} s: every video's flow was already stored")


# %% [markdown]
# One clip per class: a frame, the flow between two frames drawn as colour (the hue is the direction, the
# brightness the speed), and its x and y components. Before reading the pictures, know what moves: the object
# moves a little every frame, and the camera jitters (every frame shifted by up to `synthetic.CAMERA_JITTER`
# pixels, so by up to twice that between two frames), which moves *every* edge of the
# frame at once (the beacon's, the distractors', the texture's). The measurements after the figure say which
# of the two the flow shows.

# %%
def flow_colour(field, scale=None):
    """(H, W, 2) flow -> RGB: hue = direction, value = speed (relative to ``scale``)."""
    magnitude = np.linalg.norm(field, axis=-1)
    angle = (np.arctan2(field[..., 1], field[..., 0]) + np.pi) / (2 * np.pi)
    value = np.clip(magnitude / (scale or magnitude.max() + 1e-6), 0, 1)
    return hsv_to_rgb(np.stack([angle, np.ones_like(angle), value], axis=-1))


fig, axes = plt.subplots(4, 5, figsize=(12.5, 10), layout="constrained",
                         gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.9]})
examples = {}
for row, label in enumerate(synthetic.CLASSES):
    frames, info = synthetic.render(row, np.random.default_rng([8, row]), size=80, frames=16, with_info=True)
    field = flow.compute_flow(frames, "dis")
    examples[label] = (frames, field, info)
    t = 7
    panels = [(frames[t], f"{label}: frame {t}"), (flow_colour(field[t], scale=3.0), "flow (colour: direction)"),
              (field[t, ..., 0], "x component"), (field[t, ..., 1], "y component")]
    for ax, (image, title) in zip(axes[row], panels):
        shown = ax.imshow(image, cmap="coolwarm", vmin=-3, vmax=3) if image.ndim == 2 else ax.imshow(image)
        y, x = info["track"][t]                            # the object, boxed
        ax.add_patch(plt.Rectangle((x - 1.5, y - 1.5), info["object_size"] + 2, info["object_size"] + 2, fill=False,
                                   edgecolor="black" if image.ndim == 2 else "white", lw=1))
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    axes[row, 4].set_axis_off()
fig.colorbar(shown, ax=axes[:, 2:4].ravel().tolist(), fraction=0.04, location="bottom",
             label="flow component (pixels per frame; + is right / down)")
# the key for the direction colours: a flow field that points away from the centre, at every speed up to 3 px
grid = np.stack(np.meshgrid(np.linspace(-3, 3, 61), np.linspace(-3, 3, 61)), axis=-1)
key = axes[0, 4]
key.imshow(flow_colour(grid, scale=3.0), extent=(-3, 3, 3, -3))
key.set_axis_on()
key.set_title("key: colour = direction,\nbrightness = speed", fontsize=9)
key.set_xlabel("x (px / frame)", fontsize=8)
key.set_ylabel("y (px / frame, down)", fontsize=8)
key.tick_params(labelsize=7)
fig.suptitle("One clip per class: a frame and the flow to the next one (boxed: the object)")
show_figure(fig, figure_path("08_flow.png"))

# %% [markdown]
# How much of the flow comes from the beacon? The mean speed in a strip along the beacon's inner edge, against
# the same strip on the opposite side of the frame (no beacon there) and the object itself, over the clips above:

# %%
rows = []
for label, (frames, field, info) in examples.items():
    speed = np.linalg.norm(field, axis=-1).mean(0)                         # (H, W), averaged over time
    band, size = info["band"], frames.shape[1]
    strips = {"left": np.s_[:, band - 2: band + 2], "right": np.s_[:, size - band - 2: size - band + 2],
              "top": np.s_[band - 2: band + 2, :], "bottom": np.s_[size - band - 2: size - band + 2, :]}
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[info["side"]]
    track = np.array(info["track"])
    y, x = int(track[:, 0].mean()), int(track[:, 1].mean())
    rows.append({"class": label, "beacon side": info["side"], "beacon edge": speed[strips[info["side"]]].mean(),
                 "opposite edge": speed[strips[opposite]].mean(),
                 "object (mean position)": speed[y: y + info["object_size"], x: x + info["object_size"]].mean()})
edges = pd.DataFrame(rows)
edges.round(3)

# %%
# Does the object stand out? Remove the camera's motion (the median flow of each frame) and compare the object's
# remaining speed with the background's, frame by frame.
stand = []
for label, (frames, field, info) in examples.items():
    residual = field - np.median(field, axis=(1, 2), keepdims=True)      # the camera's shift removed
    speed = np.linalg.norm(residual, axis=-1)                             # (T - 1, H, W)
    track, s = np.array(info["track"]), info["object_size"]
    for t in range(len(speed)):
        mask = np.zeros(speed.shape[1:], dtype=bool)
        mask[track[t, 0]: track[t, 0] + s, track[t, 1]: track[t, 1] + s] = True
        background = speed[t][~mask]
        stand.append({"class": label, "object moves (px)": float(np.linalg.norm(track[min(t + 1, len(track) - 1)]
                                                                                  - track[t])),
                      "object": float(speed[t][mask].mean()), "background 95th pct": float(np.percentile(background, 95)),
                      "background mean": float(background.mean())})
stand = pd.DataFrame(stand)
stand["stands out"] = stand["object"] > stand["background 95th pct"]
moving = stand[stand["object moves (px)"] > 0]
print(f"the object moves {moving['object moves (px)'].mean():.2f} px per frame on average (classes that move); "
      f"the camera jitters by up to {synthetic.CAMERA_JITTER} px")
print(f"with the camera's motion removed, the object's flow is above the background's 95th percentile in "
      f"{moving['stands out'].mean():.0%} of the moving frames (object {moving['object'].mean():.2f} px, background "
      f"mean {moving['background mean'].mean():.2f}, 95th percentile {moving['background 95th pct'].mean():.2f})")
object_visible = moving["stands out"].mean() > 0.8
print("so the flow shows the object's motion clearly" if object_visible else
      "so in this synthetic set the object's motion does not stand out clearly from the jittering edges: a flow "
      "network has to find a small signal among edges that move as much")

# %%
ratio = edges["beacon edge"].mean() / edges["opposite edge"].mean()
print(f"mean speed at the beacon's edge / at the opposite edge: {ratio:.2f}; "
      + ("the beacon's edge moves more than the background when the camera jitters, so flow can show where the "
         "beacon is" if ratio > 1.5 else "about the same: flow barely shows where the beacon is"))

# %% [markdown]
# ## 8.2 What flow costs: TV-L1 against DIS
#
# TV-L1 is the flow two-stream networks were trained on; DIS is OpenCV's fast method. Both timed on one core (one
# OpenCV thread, as `lgd prepare flow` runs one process per core), at the synthetic set's size and at 256 pixels
# (Kinetics' usual short side for flow), with DIS's mean end-point error against TV-L1 (pixels). The same
# measurement is `lgd data bench --flow`.

# %%
rates = bench_flow.flow_rates(sizes=RATE_SIZES, pairs=RATE_PAIRS)
rates.round(3)

# %%
at = rates.set_index(["method", "size"])
big = max(RATE_SIZES)
tvl1, dis = at.loc[("tvl1", big)], at.loc[("dis", big)]
frames_in_set = sum(int(t["frames"].clip(lower=1).sum()) - len(t) for t in manifests.values())
print(f"at {big} px: TV-L1 {tvl1['frames_per_s_per_core']:.2f} frames/s per core, DIS "
      f"{dis['frames_per_s_per_core']:.1f} ({dis['frames_per_s_per_core'] / tvl1['frames_per_s_per_core']:.0f}x "
      f"faster, {dis['epe_vs_tvl1']:.2f} px from TV-L1 on average)")
print(f"Kinetics-400 ({bench_flow.KINETICS400_VIDEOS:,} videos x {bench_flow.KINETICS_FRAMES_PER_VIDEO} frames at 340 x 256): "
      f"{tvl1['kinetics400_core_hours']:,.0f} core-hours with TV-L1, {dis['kinetics400_core_hours']:,.0f} with DIS")
small = at.loc[("tvl1", min(RATE_SIZES)), "frames_per_s_per_core"]
print(f"the {' and '.join(manifests)} videos extracted here ({sum(len(t) for t in manifests.values()):,} videos) with "
      f"TV-L1 on 2 cores: about {frames_in_set / small / 2 / 60:.0f} min ({frames_in_set:,} flow frames at "
      f"{small:.1f} frames/s per core)")

# %% [markdown]
# ## 8.3 The flow stream
#
# `tiny_synthetic_flow_cpu` is the teaching recipe with `model.modality: flow`: the same `lgd3d_tiny` with a
# 2-channel stem, reading the stored flow through the same `ClipDataset` (the RGB recipe's frames and stride),
# scale jitter and crop as for RGB, the flow divided by its bound into [-1, 1], and a horizontal flip that also
# negates the x component (what moved right moves left in the mirror).
#
# On a CPU this notebook does not train the flow stream itself (a 20-epoch run would double its time): it
# evaluates the flow model that `lgd two-stream --pretrained-dir` saved from the first seed of the shipped
# runs (`lgd_tutorial/pretrained/`, with the command and commit that made it), and draws the validation
# accuracy of every shipped flow run, epoch by epoch. `TRAIN_FLOW = True` trains a short run here instead
# (`FLOW_EPOCHS` of the recipe's epochs) to show the mechanics, the same `Trainer` as in notebook 5.

# %%
cfg = load_config("tiny_synthetic_flow_cpu", [f"data.root={DATA_DIR}", f"run.out_dir={work_path('notebook08_flow')}",
                                              f"data.synthetic_videos_per_class={VIDEOS_PER_CLASS}",
                                              f"data.synthetic_val_per_class={VAL_PER_CLASS}",
                                              "run.resume=false", "run.progress=false",
                                              f"optim.epochs={FLOW_EPOCHS}", *OVERRIDES])
if TRAIN_FLOW:
    trainer = Trainer.from_config(cfg)
    print(f"{cfg.model.arch}, modality {cfg.model.modality}: stem weight {tuple(trainer.model.stem.conv.weight.shape)}, "
          f"{len(trainer.train_set)} training videos, {cfg.optim.epochs} epochs "
          f"(the recipe: {load_config('tiny_synthetic_flow_cpu').optim.epochs})")
    trainer.fit()
    model, _ = model_from_checkpoint(trainer.out / "best.pt")
    fig = plot_learning_curves(trainer.out / "metrics.csv", x="global_step")
    source = "this run"
else:
    model, flow_info = load_pretrained(FLOW_CHECKPOINT)
    print(f"{flow_info['arch']}, modality {model.modality}: stem weight {tuple(model.stem.conv.weight.shape)}; "
          f"made by {flow_info['command']} @ {flow_info['commit']} (seed {flow_info['seed']}, recipe "
          f"{flow_info['recipe']}, autocast {flow_info['autocast']})")
    shipped_curves = pd.read_csv(shipped_path("figures/two_stream") / "curves.csv")
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for seed, run in shipped_curves[shipped_curves["stream"] == "flow"].groupby("seed"):
        ax.plot(run["epoch"], run["acc1"], marker="o", ms=3, label=f"flow, seed {seed}")
    ax.axhline(0.25, color="grey", ls=":", label="chance")
    ax.axhline(0.5, color="grey", ls="--", label="the best without the beacon")
    ax.set(xlabel="epoch", ylabel="validation top-1 (one clip per video)", ylim=(0, 1.02),
           title="The shipped flow runs (figures/two_stream/curves.csv)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    source = f"the shipped seed-{flow_info['seed']} model"
show_figure(fig, figure_path("08_flow_curves.png"), dpi=120)

# %%
flow_result = evaluate_recipe(model, cfg, recipe_test_set(cfg))
print(f"flow stream, {source}:", flow_result.summary())
if not TRAIN_FLOW:
    scored_on = pd.read_csv(shipped_path("figures/two_stream") / "runs.csv").query("stream == 'flow'")["videos"].iloc[0]
    if flow_result.videos != scored_on:
        print(f"it was scored on {scored_on} validation videos, this set has {flow_result.videos}: no comparison")
    else:
        same = abs(flow_result.video_acc1 - flow_info["val_acc"]) < 1e-9
        print(f"when it was saved it scored {flow_info['val_acc']:.3f} on these videos and views: "
              + ("reproduced here" if same else "NOT reproduced here: the flow or the videos differ"))

# %% [markdown]
# ## 8.4 RGB, flow and both, over seeds
#
# One run says little. `lgd two-stream` trains both streams with three seeds each (RGB: `tiny_synthetic_cpu`),
# evaluates them on the same validation videos and fuses their video scores as rgb + 1.5 x flow. It also trains
# the RGB network without diffusion (`rgb_none`, the twin notebook 5 compares with). Its results are shipped;
# this cell reads them and prints how they were made.

# %%
shipped = shipped_path("figures/two_stream")
summary = pd.read_csv(shipped / "summary.csv")
runs = pd.read_csv(shipped / "runs.csv")
meta = json.loads((shipped / "two_stream.json").read_text())
print(f"made by: {meta['command']} @ {meta['commit']} ({meta['seconds'] / 60:.0f} min, {meta['machine']})")
summary.round(3)

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
positions = np.arange(len(summary))
ax.bar(positions, summary["acc1"], color=["tab:blue", "tab:cyan", "tab:orange", "tab:green"][: len(summary)],
       alpha=0.7)
ax.errorbar(positions, summary["acc1"], yerr=[summary["acc1"] - summary["acc1_low"],
                                               summary["acc1_high"] - summary["acc1"]], fmt="none", color="black")
for stream_index, stream in enumerate(summary["stream"]):
    values = runs.loc[runs["stream"] == stream, "acc1"]
    ax.scatter(np.full(len(values), stream_index), values, color="black", s=12, zorder=3)
ax.axhline(0.25, color="grey", ls=":", label="chance")
ax.axhline(0.5, color="grey", ls="--", label="the best without the beacon")
ax.set_xticks(positions, summary["stream"], fontsize=8)
ax.set(ylabel="video top-1 (validation)", ylim=(0, 1.02), title="Mean and 95% interval over seeds; dots: seeds")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))          # beside the bars, never over one
show_figure(fig, figure_path("08_two_stream.png"))

# %% [markdown]
# ## 8.5 What motion alone can tell here
#
# The classes are defined by how the object moves *relative to the beacon*. The beacon does not move: it
# appears in the flow only through the camera's jitter (8.1), and 8.1 also measured how clearly the object's own
# motion stands out from that jitter. A model that sees the motion and not the beacon can tell "wait" from the
# rest and no more: 50% at best (the dashed line). The sentences below are computed from the shipped results:

# %%
acc = summary.set_index("stream")
rgb_row, flow_row = acc.loc["rgb"], acc.loc["flow"]
fused_row = acc.loc[[s for s in acc.index if s.startswith("fused")][0]]
print(f"RGB {rgb_row['acc1']:.3f} [{rgb_row['acc1_low']:.3f}, {rgb_row['acc1_high']:.3f}], "
      f"flow {flow_row['acc1']:.3f} [{flow_row['acc1_low']:.3f}, {flow_row['acc1_high']:.3f}], "
      f"fused {fused_row['acc1']:.3f} [{fused_row['acc1_low']:.3f}, {fused_row['acc1_high']:.3f}] "
      f"over {int(rgb_row['seeds'])} seeds")
print("flow alone", "stays at or below the 50% a beacon-blind rule reaches" if flow_row["acc1_high"] <= 0.55 else
      "goes past 50%: it reads the beacon from the jitter at its edge (8.1)")
if flow_row["acc1_high"] < 0.5:
    print(f"in this budget ({meta['recipes']['flow']}) the flow stream does not even reach those 50%: its interval "
          f"ends at {flow_row['acc1_high']:.3f}, so it has learnt little beyond chance (0.25)"
          + ("; 8.1 measured why this is hard: the object stood out from the background's flow in only "
             f"{moving['stands out'].mean():.0%} of its moving frames" if not object_visible else ""))
print("fusion", "beats" if fused_row["acc1_low"] > rgb_row["acc1_high"] else
      "does not separate from" if fused_row["acc1_high"] >= rgb_row["acc1_low"] else "falls below", "RGB alone")

# %% [markdown]
# On Kinetics the two streams are complementary: appearance names the scene and the objects, motion the
# action, and the paper's two-stream LGD-3D is its best Kinetics result. On this task the object's motion is
# in the RGB clip too (several frames of it), so flow can add little that RGB lacks, and it lacks what the task needs
# most, the beacon.
#
# ### Exercise 1 (warm-up): flip a flow clip
#
# Write `flip_flow(clip)` for a flow clip `(2, T, H, W)` (channel 0: x, channel 1: y, centred on zero): the
# horizontal mirror image. Hint: mirror the frames, then think about what the x component means after it.

# %% tags=["exercise:flip_flow"]
def flip_flow(clip):
    ### BEGIN SOLUTION
    return clip.flip(-1) * clip.new_tensor([-1.0, 1.0]).view(2, 1, 1, 1)
    ### END SOLUTION

# %% tags=["exercise:flip_flow"]
from lgd_tutorial.exercises import check_flip_flow

check_flip_flow(flip_flow)

# %% [markdown]
# ## Summary
#
# - Optical flow is stored per video in 8 bits with its bound; reading it back is exact to within bound / 255.
# - TV-L1 costs orders of magnitude more than DIS per frame (8.2): on CPUs, Kinetics-scale TV-L1 is a cluster job.
# - The flow network is the RGB network with a 2-channel stem; ImageNet inflation averages the stem over the
#   colours, so a constant flow field gives the 2D network's response to a grey image (a test checks this).
# - Late fusion adds the streams' video scores; whether it helps depends on what each stream can see (8.5).
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. Extract the validation set's flow with TV-L1 (`lgd prepare flow --method tvl1`) into another folder and
#    evaluate this notebook's flow model on it. How much does the method the model was not trained on cost?
# 2. Change the fusion weight from 0 to 3 and plot the fused accuracy of one seed against it.
# 3. Remove the camera jitter from the synthetic generator (`CAMERA_JITTER = 0`), make a new set, and train the
#    flow stream again. What does 8.1 predict, and what happens?
