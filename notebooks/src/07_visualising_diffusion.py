# %% [markdown]
# # 7. Visualising diffusion
#
# Every LGD block adds the term `U(W_xg g_new)` to its local map: the same C-vector at every position and
# frame, computed from the global path. This notebook looks at that term in a trained model, block by block:
# how large it is next to the local activation, how similar the local features are to the global vector, what
# changes when it is cut, and where the class evidence sits in space and time.
#
# **What you will learn**
# - how to read a block's taps (local map, residual, global vector, global-to-local term) without editing the model;
# - the ratio map |global-to-local term| / |F(x) + S(x)| per position and frame, and the cosine of each local
#   position to the global vector;
# - the ablation: cut the global path from a block on and measure what moves;
# - kernel class evidence and video Grad-CAM (clip-level vs per-frame weights, with the normalisation chosen
#   explicitly), frames x blocks grids, GIF export and interactive explorers.
#
# **What it needs:** a CPU, about a minute; no GPU. A trained teaching model: the checkpoint notebook 5 leaves
# in `runs/notebook05_lgd/best.pt` (in the workbook run, the full teaching recipe: validation accuracy 1.00),
# or any checkpoint you name in `CHECKPOINT`. Without one this notebook trains a stand-in for a few seconds;
# a stand-in is barely trained, so its maps show the tools, not what a trained model learnt (section 7.8 says
# what a fully trained model shows). With `LGD_PROFILE=gpu` the stand-in is the full recipe.
#
# **Where the parts come from:** the LGD block and its two diffusions follow the authors' release
# (`PAPER.md`). The kernelized classifier, whose per-position terms give the evidence maps, is our
# reconstruction. The diffusion maps, the ablation hooks and the video adaptation of Grad-CAM (the `grad-cam`
# package on 5D taps) are this project's tools, not the paper's.

# %%
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from lgd_tutorial.config import load_config
from lgd_tutorial.data import synthetic
from lgd_tutorial.data.transforms import test_transform, to_tensor
from lgd_tutorial.evaluate import model_from_checkpoint
from lgd_tutorial.notebooks import figure_path, profile, repository_root
from lgd_tutorial.train import train
from lgd_tutorial.viz import (ablate_global_path, class_evidence, clip_to_frames, collect_taps, cut_global_path,
                              diffusion_explorer, diffusion_grid, diffusion_maps, evidence_explorer,
                              evidence_overlay, export_animation, figure_grid, gradcam_explorer, gradcam_strip,
                              normalize_maps, save_figure, tap_layers, upsample, video_gradcam)

torch.manual_seed(0)
torch.set_num_threads(2)
GPU = profile() == "gpu"
ROOT = repository_root()
print("profile:", profile())

# %% tags=["parameters"]
CHECKPOINT = "runs/notebook05_lgd/best.pt"      # relative to the repository root
FALLBACK_DIR = "runs/notebook07_fallback"

# %% [markdown]
# ## 7.1 A trained model
#
# Maps of a randomly initialised network say little (at initialisation the global-to-local term is one
# constant vector: notebook 2). We load the checkpoint of notebook 5 if it is there; otherwise we train the
# teaching model on a small generated synthetic set. Either way `model_from_checkpoint` gives the model in eval
# mode and its config, from which we take the clip size it was trained on.

# %%
checkpoint = ROOT / CHECKPOINT
if checkpoint.exists():
    source = f"notebook 5's checkpoint ({CHECKPOINT})"
else:
    overrides = [f"run.out_dir={ROOT / FALLBACK_DIR}", "run.progress=false", "run.resume=false"]
    if not GPU:                     # seconds: 32 training videos, 6 steps
        overrides += [f"data.root={ROOT / 'runs' / 'notebook07_synthetic'}", "data.synthetic_videos_per_class=8",
                      "data.synthetic_val_per_class=2", "optim.epochs=3", "optim.warmup_epochs=0.5"]
    result = train(load_config("tiny_synthetic_cpu", overrides))
    checkpoint = ROOT / FALLBACK_DIR / "best.pt"
    source = f"a stand-in trained here ({result['global_step']} steps)"
model, cfg = model_from_checkpoint(checkpoint)
val_acc = torch.load(checkpoint, weights_only=True, map_location="cpu")["best_acc"]
WELL_TRAINED = val_acc >= 0.8
print(f"model: {cfg.model.arch}, diffusion={cfg.model.diffusion}, from {source}")
print(f"validation accuracy {val_acc:.2f} (chance 0.25):",
      "trained" if WELL_TRAINED else "barely trained - read the maps as a demonstration of the tools only")

# %% [markdown]
# ## 7.2 Clips whose geometry we know
#
# The synthetic classes (notebook 1) are what a small square (the *object*) does relative to a coloured bar
# along one edge (the *beacon*): approach it, leave it, pass it, or wait. We render one clip per class with
# `synthetic.render(..., with_info=True)`, which also returns where it drew the object in every frame and on
# which side the beacon is; then the same sampling and test transform as in training (8 frames with stride 2,
# short side and centre crop at the training size). Knowing the geometry lets us *measure* whether a map sits
# on the object or on the beacon, instead of judging by eye.

# %%
d = cfg.data
size, frames_in_video = synthetic.DEFAULTS["size"], synthetic.DEFAULTS["frames"]
indices = list(range(0, d.num_frames * d.stride, d.stride))
transform = test_transform(d.crop_size, d.test_short_side, 1)


def make_clip(label, seed=0):
    """(clip (1, 3, T, H, W), object mask (T, H, W), beacon mask (T, H, W), beacon side) for one class."""
    video, info = synthetic.render(label, np.random.default_rng([seed, label]), size, frames_in_video,
                                   with_info=True)
    clip = transform(to_tensor(video[indices]))[None]
    scale = d.test_short_side / size
    offset = (round(size * scale) - d.crop_size) // 2                  # the centre crop's offset
    height = clip.shape[-1]
    obj = np.zeros((len(indices), height, height), bool)
    beacon = np.zeros_like(obj)
    o, band = info["object_size"] * scale, round(info["band"] * scale)
    for k, t in enumerate(indices):
        y, x = (np.array(info["track"][t]) * scale - offset).round().astype(int)
        obj[k, max(0, y):y + int(np.ceil(o)), max(0, x):x + int(np.ceil(o))] = True
    edge = {"left": np.s_[:, :, :band - offset], "right": np.s_[:, :, height - band + offset:],
            "top": np.s_[:, :band - offset, :], "bottom": np.s_[:, height - band + offset:, :]}[info["side"]]
    beacon[edge] = True
    return clip, obj, beacon, info["side"]


clips = [make_clip(label) for label in range(len(synthetic.CLASSES))]
with torch.no_grad():
    probs = torch.cat([model(c[0]) for c in clips]).softmax(-1)
for label, (name, row) in enumerate(zip(synthetic.CLASSES, probs)):
    print(f"{name:<16} beacon {clips[label][3]:<6} predicted: {synthetic.CLASSES[int(row.argmax())]:<16} "
          f"p(true) = {row[label]:.2f}")

LABEL = 0                                          # "approach beacon": the clip most figures below use
clip, obj_mask, beacon_mask, side = clips[LABEL]
frames = clip_to_frames(clip)
outline = {"object": obj_mask.astype(float), "beacon": beacon_mask.astype(float)}
fig = figure_grid(frames, outline, alpha=0.45, cmap="viridis", max_frames=8,
                  title=f"'{synthetic.CLASSES[LABEL]}' clip, beacon on the {side}: where the object and the beacon are")
display(fig)

# %% [markdown]
# ## 7.3 Taps: what every block computes
#
# `collect_taps(model, clip)` runs one forward pass with `forward_features(return_taps=True)` and keeps, for
# every block, the local output, the global output, the residual `F(x) + S(x)` (the local activation *before*
# the global term is added), the broadcast global-to-local term `U(W_xg g_new)` and the local-to-global
# contribution. The model is not changed: the taps are `nn.Identity` modules the blocks already call.

# %%
record = collect_taps(model, clip)
rows = []
for block in record.blocks:
    rows.append({"block": block["name"], "local (N, C, T, H, W)": tuple(block["local"].shape),
                 "global (N, C)": tuple(block["global"].shape),
                 "global-to-local term": tuple(block["global_to_local"].shape)})
pd.DataFrame(rows)

# %% [markdown]
# The term has the local map's shape, but it is one vector repeated at every (t, h, w): its *size* is the same
# everywhere. What varies from position to position is the local activation it is added to.
#
# ### Exercise 1: the ratio map by hand
#
# Write `ratio_map(block_taps)`: for one entry of `record.blocks`, the Euclidean norm over the channels of the
# global-to-local term divided by that of the residual `F(x) + S(x)`, at every position: shape (N, T, H, W).
# (Add a small epsilon to the denominator.)

# %% tags=["exercise:global_to_local_ratio"]
def ratio_map(block_taps):
    ### BEGIN SOLUTION
    return block_taps["global_to_local"].norm(dim=1) / (block_taps["residual"].norm(dim=1) + 1e-6)
    ### END SOLUTION

# %% tags=["exercise:global_to_local_ratio"]
from lgd_tutorial.exercises import check_global_to_local_ratio

check_global_to_local_ratio(ratio_map)

# %% [markdown]
# ## 7.4 How much global context reaches each position
#
# `diffusion_maps` computes that ratio for every block, and the cosine similarity of each local position to the
# block's global vector. First the numbers per block, averaged over each clip, for the four classes:

# %%
summaries = []
for label, (c, *_rest) in enumerate(clips):
    for row in diffusion_maps(model, c).summary():
        summaries.append({"class": synthetic.CLASSES[label], **row})
summary = pd.DataFrame(summaries)
table = summary.pivot_table(index="block", values=["ratio_mean", "ratio_max", "cosine_mean"], aggfunc="mean")
print(table.round(3).to_string())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for name, group in summary.groupby("class", sort=False):
    axes[0].plot(group["block"], group["ratio_mean"], marker="o", label=name)
    axes[1].plot(group["block"], group["cosine_mean"], marker="o", label=name)
axes[0].set_title("mean |global-to-local term| / |F(x) + S(x)|")
axes[1].set_title("mean cosine(local position, global vector)")
axes[1].axhline(0, color="k", linewidth=0.5)
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(figure_path("07_diffusion_per_block.png"), dpi=100)
plt.show()

# %% [markdown]
# Now where, and when: the frames x blocks grid. Each row is one block's ratio map, upsampled from the block's
# resolution to the clip's and overlaid on the frames. `normalize="shared"` divides every block by the largest
# ratio of any block, so the rows compare with each other; the row label gives the block's mean.

# %%
grid = diffusion_grid(model, clip, kind="ratio", normalize="shared", max_frames=8,
                      title=f"{cfg.model.arch}, '{synthetic.CLASSES[LABEL]}': global-to-local term / F(x) + S(x)")
save_figure(grid, figure_path("07_diffusion_grid.png"), dpi=100)
display(grid)

# %% [markdown]
# Because the term is the same vector everywhere, a high ratio marks positions where the *local* activation is
# weak: there the global context makes up a larger part of what the next block sees. The maps of the first
# blocks are sharp (16 x 16 positions for a 64-pixel clip), those of the last block coarse (2 x 2).
#
# The cosine grid asks a different question: does a position already look like the clip's summary? Red is
# aligned with the global vector, blue opposed.

# %%
cosine = diffusion_grid(model, clip, kind="cosine", normalize="shared", max_frames=8,
                        title="cosine(local position, global vector), -1 blue .. +1 red")
save_figure(cosine, figure_path("07_cosine_grid.png"), dpi=100)
display(cosine)

# %% [markdown]
# ## 7.5 Cutting the global path
#
# `cut_global_path(model, from_block)` is a context manager whose forward hooks replace the global-to-local
# term by zeros from that block on; the global vectors are still computed and still reach the classifier's
# global head. `ablate_global_path` runs the clip with and without the cut and reports how much each block's
# local map moved (||local_cut - local|| / ||local||) and how the prediction changed.

# %%
with cut_global_path(model, from_block="layer3.0") as cut:
    with torch.no_grad():
        cut_logits = model(clip)
print("cut in:", cut, "| p(true) with cut:", f"{cut_logits.softmax(-1)[0, LABEL]:.3f}",
      "| hooks removed afterwards:", all(not b.tap_global_to_local._forward_hooks for _, b in model.named_lgd_blocks()))

effects = []
for from_block in record.names:
    for label, (c, *_rest) in enumerate(clips):
        ab = ablate_global_path(model, c, from_block)
        for row in ab.summary():
            effects.append({"cut from": from_block, "class": synthetic.CLASSES[label], **row,
                            "p(true)": float(ab.probs[0, label]), "p(true) cut": float(ab.probs_cut[0, label]),
                            "prediction kept": bool(ab.prediction[0] == ab.prediction_cut[0]),
                            "KL": float(ab.kl[0])})
effects = pd.DataFrame(effects)
change = effects.pivot_table(index="cut from", columns="block", values="relative_change", aggfunc="mean")
outcome = effects.groupby("cut from", sort=False)[["p(true)", "p(true) cut", "prediction kept", "KL"]].mean()
print("relative change of each block's local map (mean over the four clips):")
print(change.round(3).to_string())
print("\nprediction (mean over the four clips):")
print(outcome.round(3).to_string())

fig, ax = plt.subplots(figsize=(6, 3.4))
image = ax.imshow(change.values, cmap="magma", vmin=0)
ax.set_xticks(range(len(change.columns)), change.columns)
ax.set_yticks(range(len(change.index)), [f"cut from {name}" for name in change.index])
for (i, j), value in np.ndenumerate(change.values):
    ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w" if value < change.values.max() / 2 else "k")
ax.set_xlabel("block whose local map is compared")
ax.set_title("||local_cut - local|| / ||local||")
fig.colorbar(image)
fig.tight_layout()
fig.savefig(figure_path("07_ablation.png"), dpi=100)
plt.show()

# %% [markdown]
# Blocks before the cut do not move (zeros left of the diagonal): the cut only acts downstream. Every block from
# the cut on moves, and the change grows with depth as the missing term compounds.
#
# ## 7.6 Where the class evidence sits
#
# The reconstructed kernelized classifier scores every position of the final local map against each class
# template; `class_evidence` returns those per-position terms (N, K, T', H', W'), whose mean is the local score
# (notebook 4). `evidence_overlay` upsamples one class's map to the clip and blends it over the frames. One row
# per class template, on the same clip:

# %%
evidence, logits = class_evidence(model, clip)
rows = {}
for k, name in enumerate(synthetic.CLASSES):
    _, heat, _ = evidence_overlay(model, clip, class_index=k, normalize="clip")
    rows[f"{name}\nlogit {logits[0, k]:.1f}"] = heat
print("final local map (T', H', W'):", tuple(evidence.shape[2:]), "-> each position covers",
      f"{clip.shape[-1] // evidence.shape[-1]} x {clip.shape[-1] // evidence.shape[-1]} pixels")
fig = figure_grid(frames, rows, max_frames=8, title="kernel class evidence k_l(x_i, u_c), per-class min-max")
save_figure(fig, figure_path("07_evidence.png"), dpi=100)
display(fig)

# %% [markdown]
# ## 7.7 Video Grad-CAM
#
# Grad-CAM weighs a layer's channels by the gradient of a class score and sums them. On video there are two
# choices to make, and `video_gradcam` makes you state both:
#
# - **weights**: `method="gradcam"` averages the gradients over (T, H, W), one weight per channel for the whole
#   clip; `method="gradcam_frame"` averages over (H, W) only, so each frame is explained with its own weights;
# - **normalisation**: `normalize="clip"` divides by the clip's maximum (frames compare with each other),
#   `"frame"` divides each frame by its own maximum (every frame with any evidence reaches 1: good to see
#   *where* in a frame, useless to compare *when*), `None` keeps raw values.
#
# The target layer must return one 5D tensor: a block's `tap_local`. At the last block, Grad-CAM with
# clip-level weights and the linear kernel is the kernel evidence again (up to the ReLU and scaling); earlier
# blocks are finer.

# %%
predicted = int(logits.argmax(-1)[0])
variants = {}
for block in ("layer4.0", "layer2.0"):
    layers = tap_layers(model, "local", [block])
    for method, norm in (("gradcam", "clip"), ("gradcam_frame", "frame")):
        cam = video_gradcam(model, clip, predicted, normalize=norm, method=method, target_layers=layers)[0]
        variants[f"{block}\n{method}, {norm}"] = cam
fig = figure_grid(frames, variants, max_frames=8,
                  title=f"Grad-CAM for '{synthetic.CLASSES[predicted]}': clip-level vs per-frame weights")
save_figure(fig, figure_path("07_gradcam_variants.png"), dpi=100)
display(fig)

strip = gradcam_strip(frames, variants["layer2.0\ngradcam, clip"], label="layer2.0\nGrad-CAM",
                      title=f"Grad-CAM (layer2.0 tap_local, clip-level weights, clip normalisation), "
                            f"class '{synthetic.CLASSES[predicted]}'")
save_figure(strip, figure_path("07_gradcam_strip.png"), dpi=100)
display(strip)

# %% [markdown]
# ## 7.8 Object, beacon, or both? Measuring instead of looking
#
# A map "sits on the object" only if it puts more of its mass inside the object's box than the box's share of
# the frame. For each clip we compute the share of each map's (non-negative) mass inside the object box and
# inside the beacon band, next to their shares of the area. A ratio share / area above 1 means the map
# concentrates there.

# %%
def share(heat, mask):
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0, None)
    return float(heat[mask].sum() / max(heat.sum(), 1e-12))


measures = []
for label, (c, obj, beacon, _side) in enumerate(clips):
    target = int(label)
    maps = {"evidence (true class)": upsample(class_evidence(model, c, target)[0].cpu(), c.shape[2:]).numpy()[0]}
    maps["evidence (true class)"] -= maps["evidence (true class)"].min()
    for block in ("layer2.0", "layer3.0", "layer4.0"):
        maps[f"Grad-CAM {block}"] = video_gradcam(model, c, target, normalize=None,
                                                  target_layers=tap_layers(model, "local", [block]))[0]
    ratio = diffusion_maps(model, c)
    maps["ratio layer2.0"] = upsample(ratio.ratio[1].cpu(), c.shape[2:]).numpy()[0]
    for name, heat in maps.items():
        measures.append({"class": synthetic.CLASSES[label], "map": name,
                         "object share / area": share(heat, obj) / obj.mean(),
                         "beacon share / area": share(heat, beacon) / beacon.mean()})
measures = pd.DataFrame(measures)
concentration = measures.pivot_table(index="map", values=["object share / area", "beacon share / area"],
                                     aggfunc=["mean", "min", "max"])
print(f"object box: {np.mean([c[1].mean() for c in clips]):.3f} of the frame, beacon band: "
      f"{np.mean([c[2].mean() for c in clips]):.3f}")
print(concentration.round(2).to_string())
on_object = concentration[("mean", "object share / area")]
on_beacon = concentration[("mean", "beacon share / area")]
for name in concentration.index:
    where = [part for part, value in (("object", on_object[name]), ("beacon", on_beacon[name])) if value > 1.5]
    print(f"{name:<22} concentrates on: {' and '.join(where) if where else 'neither (spread over the frame)'}")

# %% [markdown]
# **Reading the numbers.** Two models were looked at while writing this notebook, and they differ:
#
# *A barely trained model* (the stand-in, or notebook 5 run with a shortened recipe: validation accuracy near
# chance). The ratio maps are low on the object, the beacon and the two distractor squares and high on the
# plain background: strong local activations make the constant global term relatively small. Cutting the
# global path moves the local maps by 20 to 50% but leaves the (nearly uniform) prediction where it was.
# Evidence and Grad-CAM sit on neither the object nor the beacon. None of this says anything about what LGD
# learns; it shows what the tools measure.
#
# *A trained model* (notebook 5 in the workbook, or `lgd train --config tiny_synthetic_cpu`: the full recipe,
# about 3 minutes on 2 cores, validation accuracy 1.00):
#
# - The global-to-local term is 15 to 30% of |F(x) + S(x)| on average, largest in the first block; its map is
#   again low on the object, the beacon and the distractors and higher on the background.
# - Local positions are less similar to the global vector the deeper the block (mean cosine from about 0.37 in
#   layer1.0 to about 0.1 in layer4.0): deep local features become specific, the global vector stays a summary.
# - Cutting the global-to-local path, even from the first block, moves the local maps by 10 to 30% yet keeps
#   every one of the four predictions, with probability near 1. At test time this model does not need the term
#   for these clips; whether the path helped it *learn* is what notebook 5's comparison with `diffusion=none`
#   over several seeds asks.
# - How much the kernel evidence and Grad-CAM concentrate on the object box differs between trained models: in
#   one run about the box's share of the area, in another (notebook 5's, seed 0) Grad-CAM at layer2.0 put about
#   twice its share there (0.6 to 3.2 times over the clips). Neither is consistently on the beacon band (from
#   far below to about 1.7 times its share, depending on the clip). In the
#   layer2.0 Grad-CAM of the "approach" clip the hot region lies in the first frames *between* the object and
#   the beacon, where the object is about to move, and fades in later frames. That fits a relation between the
#   two rather than either one alone, but four clips cannot show it.
#
# These are observations on four clips of one model each; treat them as hypotheses to test on more clips and seeds.
#
# ## 7.9 Animations
#
# A GIF shows time better than a row of frames. `export_animation` blends a heat map over every frame and
# writes `.gif` (Pillow) or `.mp4` (the ffmpeg from `imageio-ffmpeg`).

# %%
ratio_layer2 = upsample(diffusion_maps(model, clip).ratio[1].cpu(), clip.shape[2:]).numpy()[0]
gif = export_animation(frames, figure_path("07_diffusion.gif"), heat=normalize_maps(ratio_layer2, "clip"),
                       fps=3, title="layer2.0 ratio")
print(gif.name, f"{gif.stat().st_size:,} bytes")
display(Image(filename=str(gif)))

# %% [markdown]
# ## 7.10 Explorers
#
# The explorers are `ipywidgets`: a frame slider, a block or class picker and an opacity slider over one
# clip. Maps are computed once per (block, class) and cached, so moving the frame slider only re-blends an
# image. They need a running kernel: in a saved notebook you see the last image only.
#
# The diffusion explorer, block by block (the ratio map, shared scale):

# %%
explorer = diffusion_explorer(model, clip, kind="ratio")
explorer

# %% [markdown]
# The controls are ordinary widgets, so they can also be set from code (the image follows):

# %%
explorer.frame.value = explorer.frame.max
explorer.block.value = "layer2.0"
print("frame", explorer.frame.value, "block", explorer.block.value, "| image:", len(explorer.image.value), "PNG bytes")

# %% [markdown]
# Kernel evidence with a class picker, and Grad-CAM with block and class pickers (clip-level weights, per-frame
# normalisation, chosen explicitly):

# %%
evidence_view = evidence_explorer(model, clip, class_names=synthetic.CLASSES)
evidence_view

# %%
gradcam_view = gradcam_explorer(model, clip, class_names=synthetic.CLASSES, method="gradcam", normalize="frame")
gradcam_view

# %% [markdown]
# ## Summary
#
# - Taps (`collect_taps`, `TapRecorder`) read every block's local map, residual, global vector and
#   global-to-local term without editing the model.
# - The ratio map |U(W_xg g_new)| / |F(x) + S(x)| says how much of what a position passes on comes from the
#   global path; since the term is constant over positions, it is high where the local activation is weak.
# - `cut_global_path` / `ablate_global_path` measure what the term changes: local maps downstream of the cut,
#   and the prediction.
# - Kernel evidence (our reconstruction's per-position scores) and video Grad-CAM (clip-level or per-frame
#   weights; clip, frame or no normalisation, always chosen) locate the class evidence; measuring its mass in
#   known regions beats judging overlays by eye.
#
# **More exercises**
# 1. Use `reference="local"` in `diffusion_maps` and compare with the default: why is the ratio to the block's
#    output always smaller where the ReLU keeps the term?
# 2. Cut the global path from the first block for all 32 validation clips of the synthetic set: does the
#    accuracy change? (`lgd_tutorial.evaluate.evaluate` inside `cut_global_path`.)
# 3. Repeat section 7.8 with a model trained with `model.diffusion=none`: does its evidence sit elsewhere?
