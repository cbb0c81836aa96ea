# %% [markdown]
# # 1. A tour of LGD
#
# LGD ("Learning Spatio-Temporal Representation with Local and Global Diffusion", Qiu, Yao, Ngo, Tian, Mei,
# CVPR 2019) keeps two representations of a video side by side through the whole network: a **local** feature
# map `x` of shape `(N, C, T, H, W)` and a **global** vector `g` of shape `(N, C)` that summarises the clip.
# Every residual block updates both and lets information flow between them: *local-to-global* (pool the map
# into the vector) and *global-to-local* (broadcast the vector back to every position).
#
# **What you will learn**
# - why a stack of local convolutions misses long-range context, and what one global vector adds;
# - the workbook's synthetic dataset: four classes that need temporal order *and* a relation between two
#   far-apart regions of the frame;
# - a first forward pass of the teaching model `lgd3d_tiny`, with the shapes of both paths block by block;
# - a first training run with the package's real training code (`lgd_tutorial.Trainer`, what `lgd train` runs).
#
# **What it needs:** a CPU (the run line above says how long); no GPU; no downloads (the notebook writes a small synthetic
# dataset to `data/synthetic_tour/`, which git ignores). With `LGD_PROFILE=gpu` the same cells train the
# teaching model with its full recipe (`tiny_synthetic_cpu` on the full synthetic set in `data/synthetic/`).
#
# **Where the parts come from:** the two paths, the two diffusions and the two classifier heads follow the
# authors' later public release (`notebooks/PAPER.md`); the teaching model's size and the synthetic dataset are ours.
# Notebooks 2-4 take the pieces apart.

# %%
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from lgd_tutorial import Trainer, build_model, load_config
from lgd_tutorial.data import ClipDataset, synthetic, test_transform
from lgd_tutorial.notebooks import data_dir, figure_path, profile, show_figure, work_path
from lgd_tutorial.viz import lookup_baseline, plot_learning_curves, read_metrics

torch.manual_seed(0)
GPU = profile() == "gpu"
print("profile:", profile(), "| data folder:", data_dir())

# %% tags=["parameters"]
VIDEOS_PER_CLASS = 320 if GPU else 16     # training videos per class (the full set has 320)
VAL_PER_CLASS = 32 if GPU else 8
EPOCHS = 12 if GPU else 3
DATA_DIR = "synthetic" if GPU else "synthetic_tour"       # inside data_dir()
OBJECT_ONLY_VIDEOS = 600                  # per class, for the object-only ceiling (section 1.2)

# %% [markdown]
# ## 1.1 What a convolution sees
#
# Draw one video of the synthetic dataset (section 1.2 explains it): a small square moves toward a coloured
# bar (the *beacon*) on one edge of the frame. To name the action, a network must relate the square to the
# beacon, which sit far apart.
#
# A convolution's output at one position depends only on a window of the input, its *receptive field*.
# Stacking layers widens it, but the *effective* receptive field (where the gradient of one output position
# with respect to the input is large) stays much smaller than the theoretical one. We measure it on the
# no-diffusion teaching backbone `p3d_tiny` at random initialisation: the gradient of one position of the
# first and second stages with respect to every input pixel. The global vector `g` of `lgd3d_tiny`, by
# construction, depends on every pixel.

# %%
frames, info = synthetic.render(0, np.random.default_rng(3), size=80, frames=16, with_info=True)
clip = torch.from_numpy(frames).permute(3, 0, 1, 2).float()[None] / 255       # (1, 3, T, H, W)
clip = (clip - 0.45) / 0.225
clip = clip[:, :, ::2].clone().requires_grad_(True)                             # 8 frames


def input_saliency(value):
    """|d value / d input| summed over colour and time: which pixels ``value`` depends on."""
    grad, = torch.autograd.grad(value, clip, retain_graph=True)
    saliency = grad.abs().sum((0, 1, 2))
    return saliency / saliency.max()


local_only = build_model("p3d_tiny", num_classes=4).eval()
_, _, taps = local_only.forward_features(clip, return_taps=True)
object_y, object_x = info["track"][8]
maps, probed = {}, {}
for tap in taps[:2]:
    x = tap.local                                                              # (1, C, T', H', W')
    scale = clip.shape[-1] / x.shape[-1]
    h, w = int(object_y / scale), int(object_x / scale)
    title = f"one position of {tap.name}\n(local map {tuple(x.shape[2:])})"
    maps[title] = input_saliency(x[0, :, 1, h, w].sum())
    probed[title] = ((w + 0.5) * scale - 0.5, (h + 0.5) * scale - 0.5)      # the position's centre, in pixels
with_global = build_model("lgd3d_tiny", num_classes=4).eval()
_, global_, _ = with_global.forward_features(clip, return_taps=True)
maps[f"the global vector g\n(lgd3d_tiny, {global_.shape[1]} numbers)"] = input_saliency(global_.sum())

fig, axes = plt.subplots(1, 4, figsize=(14, 4.2), layout="constrained")
size = info["object_size"]
for ax in axes:                                                 # the object, boxed in every panel
    ax.add_patch(plt.Rectangle((object_x - 0.5, object_y - 0.5), size, size, fill=False, edgecolor="cyan", lw=1.5))
axes[0].imshow(frames[8])
axes[0].set_title(f"frame 8: beacon at the {info['side']}\n(cyan box: the object)")
for ax, (title, saliency) in zip(axes[1:], maps.items()):
    ax.imshow(frames[8], alpha=0.5)
    image = ax.imshow(saliency, cmap="magma", alpha=0.7, vmin=0, vmax=1)
    if title in probed:                                         # the probed position: the object's, in that map
        ax.plot(*probed[title], marker="+", color="cyan", ms=12, mew=2)
    ax.set_title(title)
    covered = (saliency > 0.01).float().mean().item()
    ax.set_xlabel(f"{covered:.0%} of pixels\nabove 1% of the peak")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(image, ax=axes[1:].tolist(), fraction=0.03, label="|d output / d pixel|\n/ its maximum")
fig.suptitle("What one output depends on: local positions see a neighbourhood (+: the position probed), "
             "the global vector sees all")
show_figure(fig, figure_path("01_receptive_fields.png"))

# %% [markdown]
# A local position near the square depends on its neighbourhood; by the second stage that neighbourhood has
# grown, yet most of the weight stays near the centre. The global vector depends on the whole frame. LGD's
# global-to-local diffusion adds `g` back to *every* position of the local map, so after one block each
# position can use what happens anywhere in the clip.
#
# ### Exercise 1 (warm-up): the theoretical receptive field
#
# Write `receptive_field(kernels, strides)`: the number of input pixels (along one axis) that one output
# position of a stack of convolutions sees, given each layer's kernel size and stride. Hint: keep the current
# size `r` and the *jump* `j` (the input distance between two neighbouring positions of the current layer);
# each layer adds `(k - 1) * j`, then multiplies `j` by its stride.

# %% tags=["exercise:receptive_field"]
def receptive_field(kernels, strides):
    ### BEGIN SOLUTION
    size, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        size += (kernel - 1) * jump
        jump *= stride
    return size
    ### END SOLUTION

# %% tags=["exercise:receptive_field"]
from lgd_tutorial.exercises import check_receptive_field

check_receptive_field(receptive_field)

# %% [markdown]
# For a feeling of the numbers: `receptive_field([7, 3] + [3] * 8, [2, 2] + [1] * 8)` is a 7x7 stride-2 stem,
# a 3x3 stride-2 max-pool and eight 3x3 convolutions. How many layers does it take before one position
# *could* see a whole 80-pixel frame? The effective field measured above is smaller still.
# %% [markdown]
# ## 1.2 The synthetic dataset
#
# The workbook brings its own small dataset (`lgd_tutorial.data.synthetic`), real mp4 files in the Kinetics
# layout, so every loader and the training code run on it unchanged. Each video shows a textured background,
# a beacon along one edge (left, right, top or bottom, random colour), two still flickering distractor squares,
# noise, camera jitter, and a small object square. The four classes say what the object does relative to the
# beacon:
#
# | class | the object |
# | --- | --- |
# | approach beacon | moves straight toward the beacon's edge |
# | leave beacon | moves straight away from it |
# | pass beacon | moves parallel to it |
# | wait | stays where it is |
#
# Every side, colour and direction occurs in every class; colours carry no information.

# %%
shown = [0, 5, 10, 15]
fig, axes = plt.subplots(len(synthetic.CLASSES), len(shown) + 1, figsize=(12, 10), layout="constrained",
                         gridspec_kw={"width_ratios": [1] * len(shown) + [1.2]})
for row, name in enumerate(synthetic.CLASSES):
    video, drawn = synthetic.render(row, np.random.default_rng(10 + row), size=80, frames=16, with_info=True)
    for column, t in enumerate(shown):
        axes[row, column].imshow(video[t])
        y, x = drawn["track"][t]                           # the object, boxed: its colour may be the beacon's
        axes[row, column].add_patch(plt.Rectangle((x - 1.5, y - 1.5), drawn["object_size"] + 2,
                                                  drawn["object_size"] + 2, fill=False, edgecolor="white", lw=1.2))
        axes[row, column].set_xticks([])
        axes[row, column].set_yticks([])
        axes[row, column].set_title(f"frame {t}", fontsize=9)
    axes[row, 0].set_ylabel(name, fontsize=11)
    track = np.array(drawn["track"]) + drawn["object_size"] / 2                    # object centre (y, x)
    size, band = 80, drawn["band"]
    distance = {"left": track[:, 1] - band, "right": size - band - track[:, 1],
                "top": track[:, 0] - band, "bottom": size - band - track[:, 0]}[drawn["side"]]
    axes[row, -1].plot(distance, marker="o", markersize=3)
    axes[row, -1].set_ylim(0, 80)
    axes[row, -1].set_ylabel("distance to beacon (px)")
    axes[row, -1].set_title(f"beacon: {drawn['side']}", fontsize=9)
axes[-1, -1].set_xlabel("frame")
fig.suptitle("The four synthetic classes (one video each; white box: the object) and the object's distance to "
             "the beacon")
show_figure(fig, figure_path("01_synthetic_classes.png"), dpi=80)

# %% [markdown]
# Why a purely local network struggles here:
# - **temporal order**: a single frame shows where the object *is*, not where it goes; approach and leave
#   differ only in the order of the frames;
# - **long-range context**: "the object moves left" means approach when the beacon is on the left, leave
#   when it is on the right and pass when it is at the top or bottom. The object never comes near the beacon
#   (it keeps a gap, inside a central square that is the same for every side), so the label is a relation
#   between two far-apart regions, which a global path carries to every position.
#
# How far does the object alone get you? We can measure it without any network: render many videos, keep only
# what the object does (its direction of motion, or none, and which quadrant of the frame it starts in), learn
# the most frequent class for each such view on half of the videos and score that rule on the other half
# (`lookup_baseline`; notebook 7 uses it again). No
# rule that sees only the object can do better than this table, up to sampling error.

# %%
def object_view(label, seed):
    """What a viewer of the object alone sees: its motion direction (or 'still') and its start quadrant, as text."""
    _, drawn = synthetic.render(label, np.random.default_rng([77, seed]), size=80, frames=2, with_info=True)
    y0, x0 = drawn["track"][0]
    quadrant = ("top" if y0 < 40 else "bottom") + ("-left" if x0 < 40 else "-right")
    return f"{synthetic.motion_of(drawn['track'])}, starts {quadrant}"


views = pd.DataFrame([{"seed": seed, "label": label, "view": object_view(label, seed)}
                      for seed in range(OBJECT_ONLY_VIDEOS) for label in range(len(synthetic.CLASSES))])
learn, score = views[views["seed"] % 2 == 0], views[views["seed"] % 2 == 1]       # every class in both halves
accuracy = lookup_baseline(list(learn["view"]), learn["label"], list(score["view"]), score["label"])
n = len(score)
half = 1.96 * np.sqrt(accuracy * (1 - accuracy) / n)
print(f"best rule that sees only the object: {accuracy:.3f} on {n} held-out videos "
      f"(95% interval {accuracy - half:.3f}-{accuracy + half:.3f}); chance {1 / len(synthetic.CLASSES):.2f}")
print("given a motion direction, the share of each class:")
print(pd.crosstab(views["view"].str.split(",").str[0], views["label"].map(dict(enumerate(synthetic.CLASSES))),
                  normalize="index").round(2).to_string())
assert abs(accuracy - 0.5) < 0.05, "the object-only ceiling is no longer about 50%: the text below needs updating"

# %% [markdown]
# The object alone separates *wait* from *moving* and no more: for a moving object, approach, leave and pass
# remain about equally likely (the table above), which is where the measured ceiling comes from. The rest needs
# the beacon.
#
# Now write a small copy of the dataset to disk. `generate` is deterministic for a seed and keeps existing
# files when the settings match, so running the cell again costs nothing.

# %%
data_root = data_dir() / DATA_DIR
synthetic.generate(data_root, videos_per_class=VIDEOS_PER_CLASS, val_per_class=VAL_PER_CLASS, progress=False)
manifest_path = data_root / "manifest_train.csv"
manifest = pd.read_csv(manifest_path)
print(f"{len(manifest)} training videos in {data_root}; statuses:",
      manifest["status"].value_counts().to_dict())
manifest.head()

# %% [markdown]
# ## 1.3 A first forward pass
#
# `ClipDataset` reads the manifest, decodes a clip of 8 frames (every second frame) and normalises it. The
# teaching model `lgd3d_tiny` is ResNet-18-shaped at a quarter of the width, with one LGD block per stage. Its
# `forward_features(..., return_taps=True)` returns, per block, the local map and the global vector.

# %%
dataset = ClipDataset(manifest_path, mode="test", num_frames=8, stride=2, transform=test_transform(64, 64, 1))
views, label, _, _ = dataset[0]                        # test mode: (views, 3, T, H, W), here one view
clip = views[:1]                                                       # (N=1, 3, T, H, W)
print("clip:", tuple(clip.shape), "label:", synthetic.CLASSES[label])

model = build_model("lgd3d_tiny", num_classes=len(synthetic.CLASSES)).eval()
with torch.no_grad():
    local, global_, taps = model.forward_features(clip, return_taps=True)
    heads = model(clip, return_heads=True)
print(f"{'block':<10} {'local x (N, C, T, H, W)':<26} global g (N, C)")
for tap in taps:
    print(f"{tap.name:<10} {str(tuple(tap.local.shape)):<26} {tuple(tap.global_.shape)}")
for name, value in heads.items():
    print(f"{name:<14} {tuple(value.shape)}")
print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")

# %% [markdown]
# The local map shrinks in H and W and widens in C from stage to stage (the stem already divides T by 2);
# the global vector widens with it. The classifier turns the final local map and global vector into one
# score per class (`logits`), also kept per head (`local_logits`, `global_logits`): the release trains both
# heads. Untrained, the probabilities are close to uniform:

# %%
print({name: f"{p:.2f}" for name, p in zip(synthetic.CLASSES, heads["logits"].softmax(1)[0].tolist())})

# %% [markdown]
# ## 1.4 A first trained model
#
# Training uses the package's real code path: a recipe (`tiny_synthetic_cpu`, a YAML file in
# `lgd_tutorial/configs/`) read into dataclasses, a few `key=value` overrides, and the `Trainer`. The same
# lines run the full recipe on a GPU; only the overrides change. The run folder (`work_path("notebook01_tour")`:
# `notebooks/executed/work/notebook01_tour/`, git-ignored and apart from your own `runs/`) gets `config.yaml`, `metrics.csv` and checkpoints.

# %%
run_dir = work_path("notebook01_tour")
overrides = [f"data.root={data_root}", f"data.synthetic_videos_per_class={VIDEOS_PER_CLASS}",
             f"data.synthetic_val_per_class={VAL_PER_CLASS}", f"optim.epochs={EPOCHS}",
             f"run.out_dir={run_dir}", "run.resume=false", "run.progress=false", "run.log_every=2"]
cfg = load_config("tiny_synthetic_cpu", overrides)
shutil.rmtree(run_dir, ignore_errors=True)            # start over: this notebook's run is always fresh
trainer = Trainer.from_config(cfg)
print(f"device {trainer.device}, {len(trainer.train_set)} training videos, {trainer.steps_per_epoch} steps per epoch")
result = trainer.fit()
print(f"best validation accuracy {result['best_acc']:.2f} (chance 0.25)")

# %%
fig = plot_learning_curves(run_dir / "metrics.csv", x="global_step", metrics=["loss", "acc1", "lr"])
show_figure(fig, figure_path("01_first_training.png"), dpi=120)

# %%
val = read_metrics(run_dir / "metrics.csv").query("split == 'val'")
train_rows = read_metrics(run_dir / "metrics.csv").query("split == 'train'")
print(f"validation loss {val['loss'].iloc[0]:.3f} after the first epoch, {val['loss'].iloc[-1]:.3f} after the last; "
      f"the last training loss {train_rows['loss'].iloc[-1]:.3f} against ln 4 = {np.log(4):.3f}, the loss of a "
      f"uniform guess; validation accuracy {val['acc1'].iloc[-1]:.2f} (chance 0.25)")
learned = val["acc1"].iloc[-1] > 0.4 and val["loss"].iloc[-1] < np.log(4) - 0.1
print("this short run has started to learn" if learned else
      "this short run has not learned yet: its losses sit at the uniform guess's and its accuracy near chance")

# %% [markdown]
# On a CPU this is a short run (its size is printed above), and the line just printed says whether it learned
# anything: this cell exists to show the code path (recipe, overrides, trainer, metrics, checkpoints), not a
# result. Learning this task takes the full recipe, one command, `lgd train --config tiny_synthetic_cpu`:

# %%
full = load_config("tiny_synthetic_cpu")
print(f"the full recipe: {full.data.synthetic_videos_per_class * len(synthetic.CLASSES):,} training videos, "
      f"{full.optim.epochs} epochs of batch {full.data.batch_size}, {full.data.num_frames} x {full.data.crop_size}"
      f" x {full.data.crop_size} clips")

# %% [markdown]
#
# Notebook 5 trains and evaluates properly and compares LGD with the same network without diffusion.
#
# ## Summary
#
# - A local convolution's output depends on a neighbourhood; even deep stacks weight the centre heavily. One
#   global vector depends on the whole clip, and LGD diffuses it back to every position in every block.
# - The synthetic dataset needs both temporal order and a long-range relation (object vs beacon).
# - `lgd3d_tiny` carries a local map `(N, C, T, H, W)` and a global vector `(N, C)` through four stages.
# - `load_config(recipe, overrides)` + `Trainer.from_config(cfg).fit()` is the one training path, from a laptop to a GPU.
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. Measure the effective receptive field of `layer3.0` and `layer4.0` of `p3d_tiny` the same way.
# 2. Render 20 videos of "approach beacon" and check that every beacon side occurs.
# 3. Train for longer (`EPOCHS = 10`): does the validation accuracy leave chance? (Notebook 5's full run shows how
#    many steps of the full set that takes, and it is more than this small set gives.)
