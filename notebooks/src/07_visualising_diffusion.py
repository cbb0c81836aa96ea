# %% [markdown]
# # 7. Visualising diffusion: does global context reach local features?
#
# LGD's claim is that every block's local map receives the clip's global context: the term `U(W_xg g_new)` is
# added at every position. This notebook tests that claim on trained models instead of describing it. We take
# two networks trained on the same data with the same recipe, LGD and the same network without diffusion, and
# ask, block by block:
#
# 1. **Counterfactual.** Move the beacon to the opposite edge and change nothing else. Which local features
#    change? Without diffusion only those whose receptive field covers the beacon can; with LGD, any other
#    change can only have come through the global path.
# 2. **Probes.** Can the beacon's side (a fact about a far-away region) be read from the local feature *at the
#    object*?
# 3. **Effective receptive fields.** Which input pixels does the local feature at the object depend on?
# 4. **Ablation.** What do the two heads score when the global path is cut?
# 5. **Evidence spreading** and, last, **Grad-CAM**, with what they can and cannot show.
#
# **What it needs:** a CPU and about a minute; no GPU, and no earlier notebook. It loads the teaching
# checkpoints shipped with the package (`lgd_tutorial.models.load_pretrained`), which `lgd study` trained (the
# README gives the study's multi-seed result; notebook 5 shows its curves).
#
# **Where the parts come from:** the LGD block and its two diffusions follow the authors' release. The
# kernelized classifier, whose per-position terms give the evidence maps, is our reconstruction. The task, the
# counterfactuals, probes, receptive-field tools, ablation hooks and the video adaptation of Grad-CAM are this
# project's, not the paper's.

# %%
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from lgd_tutorial.data import synthetic
from lgd_tutorial import StudySettings, head_accuracy, load_pretrained, render_split, to_clips
from lgd_tutorial.notebooks import figure_path, repository_root, show_figure
from lgd_tutorial.viz import (ablate_global_path, beacon_counterfactuals, beacon_region, class_evidence,
                              clip_to_frames, collect_taps, counterfactual_change, cut_global_path, cut_paths,
                              diffusion_explorer, diffusion_grid, effective_receptive_field, evidence_explorer,
                              evidence_on_the_square, export_animation, figure_grid, gradcam_explorer,
                              fix_global_to_local, gradcam_strip, linear_probe, lookup_baseline,
                              mean_global_to_local, normalize_maps, object_features,
                              one_region_clips, plot_counterfactual, plot_effective_fields, plot_probes,
                              receptive_field_reach, swap_beacon, tap_layers,
                              train_on_one_region_clips, upsample, video_gradcam)

torch.manual_seed(0)
torch.set_num_threads(2)

# %% tags=["parameters"]
LGD_NAME = "lgd3d_tiny_beacon_both"       # shipped teaching checkpoints (lgd_tutorial.models.list_pretrained())
PLAIN_NAME = "lgd3d_tiny_beacon_none"
COUNTERFACTUAL_CLIPS = 64                 # validation clips whose beacon is moved
PROBE_CLIPS_PER_CLASS = 128               # training clips per class for the probes (tested on the validation set)
SPREADING_SEEDS = (0, 1, 2)

# %% [markdown]
# ## 7.1 Two trained networks and their data
#
# `load_pretrained(name)` checks the file's sha256 against the manifest shipped beside it, builds the model and
# returns it in eval mode with everything recorded about it: the command and commit that trained it, its seed,
# the data seed, its validation accuracy and the data layout. Both were trained by the same `lgd study` run.
# The plain network has a second, *pooled* global head so that both networks have the same two heads and the
# same loss, CE(local) + CE(global).

# %%
lgd, lgd_info = load_pretrained(LGD_NAME)
plain, plain_info = load_pretrained(PLAIN_NAME)
models = {"LGD": lgd, "plain": plain}
pd.DataFrame([{"checkpoint": name, "diffusion": info["diffusion"],
               "parameters": sum(p.numel() for p in m.parameters()), "seed": info["seed"],
               "data seed": info["data_seed"], "validation accuracy (local head)": info["val_acc"],
               "sha256": info["sha256"][:12] + "...", "made by": f"{info['command']} @ {info['commit']}"}
              for name, info, m in ((LGD_NAME, lgd_info, lgd), (PLAIN_NAME, plain_info, plain))])

# %% [markdown]
# Each checkpoint is the *first* seed of its variant in the study, chosen before training, not the best one.
# How typical is it? The study's final accuracy for every seed of the two variants (from the shipped
# `figures/diffusion_study/runs.csv`; read the README or notebook 5 for the comparison with intervals):

# %%
study_runs = pd.read_csv(repository_root() / "figures" / "diffusion_study" / "runs.csv")
shipped_seeds = study_runs[study_runs["variant"].isin([lgd_info["variant"], plain_info["variant"]])]
print(shipped_seeds.pivot(index="seed", columns="variant", values="acc_local").round(3).to_string())
for info in (lgd_info, plain_info):
    others = shipped_seeds[(shipped_seeds["variant"] == info["variant"]) & (shipped_seeds["seed"] != info["seed"])]
    print(f"{info['variant']}: the shipped seed {info['seed']} scored {info['val_acc']:.3f}; the other seeds "
          f"{', '.join(f'{v:.3f}' for v in others['acc_local'])}")

# %% [markdown]
# The data are the synthetic classes of notebook 1 (what a small *object* does relative to a coloured *beacon*
# bar on one edge: approach, leave, pass, wait) in the layout the study uses: the object never comes closer than
# `gap` pixels to the beacon, and it moves inside a central square that is the same whichever edge holds the
# beacon. So nothing near the object tells which side the beacon is on, and the label needs both. We render the
# study's validation set again from its data seed (it is deterministic) and draw one clip.

# %%
settings = StudySettings(**lgd_info["recipe"])
layout = synthetic.geometry(settings.size, settings.band, settings.object_size, settings.gap)
strip = layout["band"] + synthetic.CAMERA_JITTER     # the camera jitter can widen the beacon by a pixel
val = render_split(settings, "val")
labels = val["labels"]
print(f"validation set: {len(labels)} clips of {settings.frames} frames at {settings.size} x {settings.size}; "
      f"beacon {layout['band']} px thick, object {layout['object_size']} px, at least {layout['gap']} px apart")


def object_box(i, frame):
    """(y, x, size) of the object in ``frame`` of validation clip ``i``."""
    y, x = val["tracks"][i][frame]
    return y, x, layout["object_size"]


EXAMPLE = int(np.flatnonzero(labels.numpy() == synthetic.CLASSES.index("approach beacon"))[0])
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, frame in zip(axes, (0, 2, 5, 7)):
    ax.imshow(val["frames"][EXAMPLE, frame].numpy())
    y, x, s = object_box(EXAMPLE, frame)
    ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), s, s, fill=False, edgecolor="white"))
    ax.set_title(f"frame {frame}", fontsize=9)
    ax.axis("off")
fig.suptitle(f"'{synthetic.CLASSES[int(labels[EXAMPLE])]}', beacon on the {val['sides'][EXAMPLE]} "
             "(the object is boxed)", fontsize=10)
plt.show()

# %% [markdown]
# ## 7.2 The counterfactual: move the beacon, change nothing else
#
# `swap_beacon` swaps the two edge strips on the beacon's axis (as wide as the beacon plus the one pixel the
# camera jitter can add): the beacon moves to the opposite
# edge, and every pixel inside the strips' complement (the object, the distractors, the background) stays
# exactly as it was. An "approach" clip becomes a "leave" clip.
#
# Which local features *can* change? A convolution only reads its neighbourhood, so without a global path a
# block's feature at (t, h, w) depends only on the pixels in its theoretical receptive field.
# `receptive_field_reach` computes, for every block, which positions have a receptive field that touches the
# changed strips (exactly: it runs the plain twin of the network with all weights positive). Outside that
# reach, the plain network's features **must not move at all**; LGD's may, but only through `U(W_xg g)`.
#
# We measure the change of every local feature, ||x - x_cf|| over the channels divided by the block's mean
# feature norm on the clip, on the first validation clips:

# %%
subset = slice(0, COUNTERFACTUAL_CLIPS)
rows, outputs = beacon_counterfactuals(models, val["frames"][subset].numpy(), val["sides"][subset],
                                       strip, to_clips)
with cut_paths(lgd, global_to_local=True):
    rows_cut, _ = beacon_counterfactuals({"LGD, global-to-local cut": lgd}, val["frames"][subset].numpy(),
                                         val["sides"][subset], strip, to_clips)
counterfactual = pd.DataFrame(rows + rows_cut)
print(counterfactual.round(4).to_string(index=False))

plain_rows = counterfactual[counterfactual["model"] == "plain"]
lgd_rows = counterfactual[counterfactual["model"] == "LGD"]
cut_rows = counterfactual[counterfactual["model"] == "LGD, global-to-local cut"]
far_blocks = plain_rows["share out of reach"] > 0
assert (plain_rows.loc[far_blocks, "max change out of reach"] == 0).all(), "a plain feature moved out of reach"
assert (cut_rows.loc[cut_rows["share out of reach"] > 0, "max change out of reach"] == 0).all()
lgd_far = lgd_rows[lgd_rows["share out of reach"] > 0]
assert (lgd_far["mean change out of reach"] > 0).all(), "the beacon reached no LGD feature out of reach"
print(f"\nBlocks with positions the strips cannot reach: {', '.join(lgd_far['block'])}.")
print("Plain network there: every change is exactly 0 (asserted).")
for _, row in lgd_far.iterrows():
    print(f"LGD at {row['block']}: mean change {row['mean change out of reach']:.4f} out of reach "
          f"(largest {row['max change out of reach']:.4f}), against {row['mean change in reach']:.4f} in reach: "
          f"{row['mean change out of reach'] / row['mean change in reach']:.2%} of it.")
print("LGD with U(W_xg g) cut in every block: every change out of reach is exactly 0 again (asserted).")

# %% [markdown]
# The assertions are the heart of the matter: without diffusion a far region cannot touch a local feature;
# with LGD it does, and cutting the global-to-local term removes exactly that change. *How much* it moves them
# is the last column of the lines above: compare the change out of reach with the change the beacon causes
# where a convolution can see it. The picture for one clip
# (the mean over the block's temporal positions; each temporal position of the tiny model covers 2 input
# frames after the stem, and its temporal convolutions widen that further):

# %%
one = EXAMPLE if EXAMPLE < COUNTERFACTUAL_CLIPS else 0
frames_cf, region = swap_beacon(val["frames"][one].numpy(), val["sides"][one], strip)
reach = receptive_field_reach(lgd, region, settings.frames)
clip, clip_cf = to_clips(val["frames"][[one]]), to_clips(torch.from_numpy(frames_cf)[None])
changes = {name: counterfactual_change(m, clip, clip_cf) for name, m in models.items()}
y, x, s = object_box(one, settings.frames // 2)
fig = plot_counterfactual(val["frames"][one].numpy(), frames_cf, changes, reach, changes["LGD"].names,
                          object_box=(y, x, s))
show_figure(fig, figure_path("07_counterfactual.png"))

# %% [markdown]
# Does the prediction follow the counterfactual? Moving the beacon turns "approach" into "leave" and back,
# and leaves "pass" and "wait" as they are. Accuracy against the *counterfactual* labels, local head:

# %%
flip = {0: 1, 1: 0, 2: 2, 3: 3}
labels_cf = torch.tensor([flip[int(v)] for v in labels[subset]])
for name, (logits, logits_cf) in outputs.items():
    before = (logits["local_logits"].argmax(1) == labels[subset]).float().mean()
    after = (logits_cf["local_logits"].argmax(1) == labels_cf).float().mean()
    print(f"{name:<6} accuracy on the clips {before:.3f}, on their counterfactuals (labels swapped) {after:.3f}")

# %% [markdown]
# A network that has solved the task must follow the beacon at the output, whichever way the beacon reaches
# it. What the counterfactual adds is *where* and *from which block on* the beacon reaches the object's
# features.
#
# ### Exercise 1 (warm-up): cut the global path yourself
#
# The LGD rows "global-to-local cut" above came from `cut_paths`, which hangs a forward hook on every block's
# `tap_global_to_local` (an `nn.Identity` that carries U(W_xg g)). Write `cut_global_to_local(model)`: register
# on each block that has that tap (`model.blocks()`; it is `None` in a network without diffusion) a forward hook
# that returns zeros in place of the module's output, and return the list of handles.

# %% tags=["exercise:cut_global_to_local", "points:2"]
def cut_global_to_local(model):
    ### BEGIN SOLUTION
    def zero(module, inputs, output):
        return torch.zeros_like(output)

    return [block.tap_global_to_local.register_forward_hook(zero)
            for block in model.blocks() if block.tap_global_to_local is not None]
    ### END SOLUTION

# %% tags=["exercise:cut_global_to_local"]
from lgd_tutorial.exercises import check_cut_global_to_local

check_cut_global_to_local(cut_global_to_local)

# %% [markdown]
# ### Exercise 2 (core): the change no convolution can explain
#
# For one clip, `changes[name].change` holds per block how much each local feature moved when only the beacon
# moved, (N, T', H', W'), and `reach` per block which positions' receptive fields touch the beacon region,
# (T', H', W'). Write `outside_reach_max(change, reach)`: per block, the largest change at the positions the
# beacon *cannot* reach through convolutions (0.0 where every position can).

# %% tags=["exercise:outside_reach", "points:2"]
def outside_reach_max(change, reach):
    ### BEGIN SOLUTION
    return [float(c[:, ~r].max()) if (~r).any() else 0.0 for c, r in zip(change, reach)]
    ### END SOLUTION

# %% tags=["exercise:outside_reach"]
from lgd_tutorial.exercises import check_outside_reach

check_outside_reach(outside_reach_max)

# %% [markdown]
# Before running the next cell, predict: for the plain network, what is the largest change outside the
# reach, block by block? And for LGD? Then measure:

# %%
for name in models:
    values = outside_reach_max(changes[name].change, reach)
    print(f"{name:<6}", "  ".join(f"{block} {value:.2e}" for block, value in zip(changes[name].names, values)))

# %% [markdown] tags=["exercise:outside_reach_explained", "manual", "points:3"]
# ### Exercise 3 (core, written): what the numbers say
#
# In three to five sentences: why is the plain network's value exactly zero in the blocks where it is, what
# path lets LGD's features move there, and why this, not the ratio map of section 7.7, is evidence that global
# context reaches local features. (Graded by hand.)
#
# ### BEGIN SOLUTION
# A model answer: in the plain network a feature can only change if its receptive field covers a changed
# pixel; outside the exact reach no convolution connects it to the beacon, so the change is exactly 0 (a
# measured 0, not a small number). LGD's features there move because the beacon enters the pooled global
# vector (local-to-global) and comes back to every position through U(W_xg g) (global-to-local); cutting
# that term (the "cut" rows) removes the change. The ratio map divides one constant-norm vector by the local
# activation and moves whatever the input does; the counterfactual changes one cause and measures its
# effect, against a control that cannot have it.
#
# Rubric (3 points): 1 for the receptive-field argument for the exact zero; 1 for naming the route through
# the global vector (both diffusions, or the cut as evidence); 1 for saying why an intervention with a
# control is evidence and the ratio map is not.
# ### END SOLUTION

# %% [markdown]
# ## 7.3 Probes: what the feature at the object knows
#
# A linear probe asks whether a property can be read, linearly, from a representation. We take the local
# feature at the object's position (per temporal position, concatenated) in every block, fit a logistic
# regression on clips of the training set and test it on the validation set. Two targets:
#
# - the **beacon's side**, a fact about a region at least `gap` pixels away;
# - the **label**, which needs the object's motion *and* the beacon's side.
#
# Chance is 0.25 for both, but the object alone already says something about both targets: its motion
# gives the label up to 50% (notebook 1), and it also hints at the beacon's *axis* (an object moving left is
# approaching a beacon on the left, leaving one on the right, or passing one at the top or bottom). So the
# baseline a probe must beat is a lookup table from the object's motion (`synthetic.motion_of`) to the most
# frequent target, fitted on the same training clips. Where the plain network's receptive field at the
# object cannot reach the beacon, its probes should sit at that baseline: that is the control.

# %%
probe_settings = StudySettings(**{**lgd_info["recipe"], "train_per_class": PROBE_CLIPS_PER_CLASS})
probe_train = render_split(probe_settings, "train")
side_index = {side: i for i, side in enumerate(synthetic.SIDES)}
targets = {"beacon side": (torch.tensor([side_index[s] for s in probe_train["sides"]]),
                           torch.tensor([side_index[s] for s in val["sides"]])),
           "label": (probe_train["labels"], labels)}
probe_rows = []
for name, model in models.items():
    train_features = object_features(model, to_clips(probe_train["frames"]), probe_train["tracks"],
                                     layout["object_size"])
    val_features = object_features(model, to_clips(val["frames"]), val["tracks"], layout["object_size"])
    block_names = collect_taps(model, to_clips(val["frames"][:1])).names
    for block, a, b in zip(block_names, train_features, val_features):
        for target, (y_train, y_val) in targets.items():
            probe_rows.append({"model": name, "block": block, "target": target,
                               "accuracy": linear_probe(a, y_train, b, y_val)})
probes = pd.DataFrame(probe_rows)
motions_train = [synthetic.motion_of(t) for t in probe_train["tracks"]]
motions_val = [synthetic.motion_of(t) for t in val["tracks"]]
baselines = {target: lookup_baseline(motions_train, y_train, motions_val, y_val)
             for target, (y_train, y_val) in targets.items()}
print(probes.pivot_table(index="block", columns=["target", "model"], values="accuracy").round(3).to_string())
print("the object alone (motion lookup):", {t: round(v, 3) for t, v in baselines.items()})
fig = plot_probes(probes.replace({"model": {"LGD": "both", "plain": "none"}}), baselines)
show_figure(fig, figure_path("07_probes.png"))

# %% [markdown]
# Read the table against the receptive fields of section 7.2. Which probes read *more* than the object alone
# tells? We count a probe as above the baseline when it beats it by more than two standard errors of a
# proportion on this validation set (a rough test; the probe itself is fitted, so treat borderline cases as
# undecided):

# %%
n_val = len(labels)
verdicts = []
for _, row in probes.iterrows():
    base = baselines[row["target"]]
    margin = 2 * np.sqrt(base * (1 - base) / n_val)
    verdicts.append({"model": row["model"], "block": row["block"], "target": row["target"],
                     "probe": round(row["accuracy"], 3), "object alone": round(base, 3),
                     "reads more than the object": bool(row["accuracy"] > base + margin)})
verdicts = pd.DataFrame(verdicts)
print(verdicts.pivot_table(index="block", columns=["target", "model"], values="reads more than the object",
                           aggfunc="first").to_string())
early = verdicts[(verdicts["target"] == "beacon side") & verdicts["block"].isin(lgd_far["block"])]
for model, group in early.groupby("model"):
    print(f"{model}: in the blocks whose feature at the object cannot see the beacon "
          f"({', '.join(group['block'])}), the side probe reads more than the object alone in "
          f"{int(group['reads more than the object'].sum())} of {len(group)}.")

# %% [markdown]
# ## 7.4 Effective receptive fields
#
# The theoretical receptive field says which pixels *can* matter; the effective one says which do. For the
# feature at the object's position in each block, `effective_receptive_field` takes the gradient of the sum of
# its channels with respect to every input pixel, sums |gradient| over colours and frames and divides by its
# maximum (so each panel is scaled to its own maximum, 1). We also measure the share of that gradient mass
# that falls on the beacon strip.

# %%
clip = to_clips(val["frames"][[one]])
middle = settings.frames // 2
cy, cx = (np.array(val["tracks"][one][middle]) + layout["object_size"] / 2)
record = collect_taps(lgd, clip)
fields, beacon_share = {}, []
beacon_strip = beacon_region(val["sides"][one], strip, settings.size)
for name, model in models.items():
    maps = []
    for index, taps in enumerate(record.blocks):
        steps, cells = taps.local.shape[2], taps.local.shape[-1]
        position = (steps // 2, int(cy * cells / settings.size), int(cx * cells / settings.size))
        field = effective_receptive_field(model, clip, index, position)
        maps.append(field)
        beacon_share.append({"model": name, "block": record.names[index],
                             "gradient mass on the beacon": float(field[torch.from_numpy(beacon_strip)].sum()
                                                                  / field.sum())})
    fields[name] = maps
print(pd.DataFrame(beacon_share).pivot(index="block", columns="model").round(4).to_string())
print(f"(the beacon strip is {beacon_strip.mean():.3f} of the frame)")
fig = plot_effective_fields(fields, record.names, val["frames"][one, middle].numpy(), (cy, cx))
show_figure(fig, figure_path("07_effective_fields.png"))

# %% [markdown]
# ## 7.5 The ablation, done properly
#
# Cutting a path at test time asks what a *trained* network still does without it. We score the whole
# validation set with each head separately (the release scores with the local head; the global head reads the
# global vector; "combined" is their sum), intact, with the global-to-local term set to zero in every block,
# and with both diffusions set to zero.
#
# Zeroing has a catch: U(W_xg g) is a large vector even on average, and removing it shifts every activation
# after it, whatever information it carries. A sceptic's control keeps its *average* and removes only what is
# specific to the clip: `fix_global_to_local` replaces it by its mean over the validation set
# (`mean_global_to_local`). If accuracy survives that, the network used the term as a bias; if it falls, it
# used what the global path knows about this clip.

# %%
all_clips = to_clips(val["frames"])
mean_terms = {name: mean_global_to_local(model, all_clips) for name, model in models.items()}
conditions = {"intact": lambda m, name: cut_paths(m, global_to_local=False),
              "global-to-local zeroed": lambda m, name: cut_paths(m, global_to_local=True),
              "both paths zeroed": lambda m, name: cut_paths(m, global_to_local=True, local_to_global=True),
              "global-to-local fixed at its mean": lambda m, name: fix_global_to_local(m, mean_terms[name])}
ablation = []
for name, model in models.items():
    for condition, intervention in conditions.items():
        with intervention(model, name) as hooks:
            accuracy = head_accuracy(model, val["frames"], labels)
        ablation.append({"model": name, "condition": condition, "hooks": hooks,
                         **{f"{head} head": value for head, value in accuracy.items()}})
ablation = pd.DataFrame(ablation)
print(ablation.round(3).to_string(index=False))

# %% [markdown]
# The plain network has nothing to cut (0 hooks), so its rows are the same by construction. For LGD:

# %%
lgd_rows_ab = ablation[ablation["model"] == "LGD"].set_index("condition")
intact = lgd_rows_ab.loc["intact"]
for condition in list(conditions)[1:]:
    row = lgd_rows_ab.loc[condition]
    print(f"{condition:>34}: local head {intact['local head']:.3f} -> {row['local head']:.3f}, "
          f"global head {intact['global head']:.3f} -> {row['global head']:.3f}")

# %% [markdown]
# Which block's term does the trained network depend on, and how? One block at a time, zeroed and fixed at its
# mean:

# %%
per_block = []
for b, block in enumerate(collect_taps(lgd, clip).names):
    with cut_global_path(lgd, from_block=block, to_block=block):
        zeroed = head_accuracy(lgd, val["frames"], labels)
    with fix_global_to_local(lgd, [t if i == b else None for i, t in enumerate(mean_terms["LGD"])]):
        fixed = head_accuracy(lgd, val["frames"], labels)
    per_block.append({"block": block, "local head, zeroed here": zeroed["local"],
                      "local head, fixed at its mean here": fixed["local"]})
per_block = pd.DataFrame(per_block).set_index("block")
print(per_block.round(3).to_string())
uses_clip = per_block["local head, fixed at its mean here"].idxmin()
print(f"\nclip-specific global context matters most in {uses_clip}: fixing its term at the mean takes the local "
      f"head from {intact['local head']:.3f} to {per_block.loc[uses_clip, 'local head, fixed at its mean here']:.3f}")

# %% [markdown]
# Where does the cut act? `ablate_global_path` gives the per-position change of every block's local map,
# ||local_cut - local|| / ||local||, for one clip:

# %%
ab = ablate_global_path(lgd, clip, from_block=0)
fig, axes = plt.subplots(1, len(ab.names), figsize=(3 * len(ab.names), 2.8))
for ax, name, change in zip(axes, ab.names, ab.local_change):
    image = ax.imshow(change[0].mean(0).numpy(), cmap="magma", vmin=0)
    ax.set_title(f"{name}: mean {float(change.mean()):.3f}", fontsize=9)
    ax.axis("off")
    fig.colorbar(image, ax=ax, fraction=0.046)
fig.suptitle("LGD, U(W_xg g) cut in every block: ||local_cut - local|| / ||local|| per position "
             "(mean over temporal positions)", fontsize=9)
fig.tight_layout()
show_figure(fig, figure_path("07_ablation.png"))

# %% [markdown] tags=["exercise:ablation_explained", "manual", "points:3"]
# ### Exercise 4 (stretch, written): explain the ablation
#
# From the per-block table above: in which block does the trained LGD network rely on the *clip-specific*
# content of the global term, and what is the difference between zeroing a block's term and fixing it at its
# mean over the validation set? What would you expect for the plain network, and why? (Graded by hand.)
#
# ### BEGIN SOLUTION
# A model answer: zeroing a term removes both its average (a learned bias the next layers expect) and its
# clip-specific part, so a drop can mean "the network needs a bias there"; fixing it at its mean keeps the
# bias and removes only what the global vector says about *this* clip. The block where fixing at the mean
# costs the most local-head accuracy (printed above) is where the network uses clip-specific global context.
# The plain network has no term to cut or fix: its rows equal the intact ones by construction.
#
# Rubric (3 points): 1 for naming the block from the table; 1 for the bias-versus-content distinction
# between zeroing and fixing at the mean; 1 for the plain network's rows being unchanged by construction.
# ### END SOLUTION

# %% [markdown]
# ## 7.6 Does class evidence stay where the class is?
#
# A second, controlled experiment. In each clip one coloured square, in one cell of the final 4 x 4 map, carries
# the class (red or blue) on grey noise. After a short training we count the held-out clips whose true-class
# kernel evidence peaks in the square's cell (chance: 1/16). A network without a global path can only score the
# class where it sees the square. LGD's global vector *can* carry the class to every position; does it? Several
# seeds:

# %%
spreading = []
for seed in SPREADING_SEEDS:
    held_out = one_region_clips(32, torch.Generator().manual_seed(100 + seed))
    for arch in ("p3d_tiny", "lgd3d_tiny"):
        result = evidence_on_the_square(train_on_one_region_clips(arch, seed=seed), *held_out)
        spreading.append({"arch": arch, "seed": seed, **result})
spreading = pd.DataFrame(spreading)
print(spreading.round(3).to_string(index=False))
peak = spreading.groupby("arch")["peak on the square"].agg(["mean", "min", "max"])
print(f"\nevidence peaks on the square: plain {peak.loc['p3d_tiny', 'mean']:.0%} of clips "
      f"({peak.loc['p3d_tiny', 'min']:.0%}-{peak.loc['p3d_tiny', 'max']:.0%} over seeds), "
      f"LGD {peak.loc['lgd3d_tiny', 'mean']:.0%} ({peak.loc['lgd3d_tiny', 'min']:.0%}-"
      f"{peak.loc['lgd3d_tiny', 'max']:.0%}); chance {spreading['chance'].iloc[0]:.0%}")

# %% [markdown]
# ## 7.7 Taps, and why the ratio map is not evidence
#
# `collect_taps(model, clip)` keeps, for every block, the local output, the global output, the residual
# `F(x) + S(x)` (the local activation *before* the global term), the broadcast global-to-local term
# `U(W_xg g_new)` and the local-to-global contribution, without editing the model.
#
# A tempting picture is the ratio |U(W_xg g_new)| / |F(x) + S(x)| per position. But the numerator is *one
# vector repeated at every position*: its norm is the same everywhere. So the map is a constant divided by the
# local activation, a map of where local activations are weak, whatever the global path carries. We check that
# directly:

# %%
record = collect_taps(lgd, clip)
for taps in record.blocks:
    term = taps.global_to_local.norm(dim=1)
    print(f"{taps.name}: |U(W_xg g)| over positions: min {float(term.min()):.4f}, max {float(term.max()):.4f}"
          f" (constant: {bool(torch.allclose(term, term.flatten()[0].expand_as(term)))})")

# %% [markdown]
# So the counterfactual of section 7.2, not the ratio map, is the measurement of where global context matters.
#
# ### Exercise 5 (core): the ratio map by hand
#
# Write `ratio_map(block_taps)`: for one entry of `record.blocks`, the Euclidean norm over the channels of the
# global-to-local term divided by that of the residual `F(x) + S(x)`, at every position: shape (N, T, H, W).
# (Add a small epsilon to the denominator.)

# %% tags=["exercise:global_to_local_ratio", "points:2"]
def ratio_map(block_taps):
    ### BEGIN SOLUTION
    return block_taps.global_to_local.norm(dim=1) / (block_taps.residual.norm(dim=1) + 1e-6)
    ### END SOLUTION

# %% tags=["exercise:global_to_local_ratio"]
from lgd_tutorial.exercises import check_global_to_local_ratio

check_global_to_local_ratio(ratio_map)

# %% [markdown]
# The frames x blocks grid of that ratio (`diffusion_grid`, one row per block, shared scale) and of the cosine
# of each local position to the block's global vector:

# %%
frames = clip_to_frames(clip)
grid = diffusion_grid(lgd, clip, kind="ratio", normalize="shared", max_frames=8,
                      title="|global-to-local term| / |F(x) + S(x)|: high where the local activation is weak")
show_figure(grid, figure_path("07_diffusion_grid.png"))
cosine = diffusion_grid(lgd, clip, kind="cosine", normalize="shared", max_frames=8,
                        title="cosine(local position, global vector), -1 blue .. +1 red")
show_figure(cosine, figure_path("07_cosine_grid.png"))

# %% [markdown]
# ## 7.8 Kernel evidence and video Grad-CAM
#
# The reconstructed kernelized classifier scores every position of the final local map against each class
# template; `class_evidence` returns those per-position terms, whose mean is the local score (notebook 4).
# Section 7.6 measured how often, in LGD, such maps peak away from where the class is.

# %%
evidence, logits = class_evidence(lgd, clip)
rows = {}
for k, name in enumerate(synthetic.CLASSES):
    rows[f"{name}\nlogit {logits[0, k]:.1f}"] = normalize_maps(upsample(evidence[:, k], clip.shape[2:]).numpy()[0])
fig = figure_grid(frames, rows, max_frames=8, title="LGD: kernel class evidence k_l(x_i, u_c), per-class min-max",
                  colorbar="evidence, min-max per class over the clip")
show_figure(fig, figure_path("07_evidence.png"))

# %% [markdown]
# Grad-CAM weighs a layer's channels by the gradient of a class score and sums them. On video there are two
# choices, and `video_gradcam` makes you state both: **weights** (`method="gradcam"`: one weight per channel
# for the whole clip; `"gradcam_frame"`: per frame) and **normalisation** (`"clip"`: frames compare with each
# other; `"frame"`: each frame scaled to its own maximum; `None`: raw). The target layer is a block's
# `tap_local`. In LGD the gradient also flows through the global path to every pixel (section 7.4), so a
# Grad-CAM map cannot separate "seen here" from "received from the global vector".

# %%
predicted = int(logits.argmax(-1)[0])
variants = {}
for block in ("layer4.0", "layer2.0"):
    layers = tap_layers(lgd, "local", [block])
    for method, norm in (("gradcam", "clip"), ("gradcam_frame", "frame")):
        variants[f"{block}\n{method}, {norm}"] = video_gradcam(lgd, clip, predicted, normalize=norm, method=method,
                                                               target_layers=layers)[0]
fig = figure_grid(frames, variants, max_frames=8,
                  title=f"LGD Grad-CAM for '{synthetic.CLASSES[predicted]}': clip-level vs per-frame weights",
                  colorbar="Grad-CAM / its maximum over the clip or the frame (row label)")
show_figure(fig, figure_path("07_gradcam_variants.png"))
strip = gradcam_strip(frames, variants["layer2.0\ngradcam, clip"], label="layer2.0\nGrad-CAM",
                      title=f"Grad-CAM (layer2.0, clip-level weights and normalisation), "
                            f"'{synthetic.CLASSES[predicted]}'")
show_figure(strip, figure_path("07_gradcam_strip.png"))

# %% [markdown]
# A GIF shows time better than a row of frames; `export_animation` writes `.gif` (Pillow) or `.mp4` (ffmpeg):

# %%
change_layer1 = upsample(changes["LGD"].change[0], clip.shape[2:]).numpy()[0]
gif = export_animation(frames, figure_path("07_diffusion.gif"), heat=normalize_maps(change_layer1, "clip"),
                       fps=3, title="LGD layer1.0: change when the beacon moves")
print(gif.name, f"{gif.stat().st_size:,} bytes")
display(Image(filename=str(gif)))

# %% [markdown]
# ## 7.9 Explorers
#
# `ipywidgets` explorers: a frame slider, a block or class picker and an opacity slider over one clip. Maps are
# computed once per (block, class) and cached, so moving the frame slider only re-blends an image. They need a
# running kernel.

# %%
explorer = diffusion_explorer(lgd, clip, kind="cosine")
explorer

# %%
explorer.frame.value = explorer.frame.max
explorer.block.value = "layer2.0"
print("frame", explorer.frame.value, "block", explorer.block.value, "| image:", len(explorer.image.value), "PNG bytes")

# %%
evidence_view = evidence_explorer(lgd, clip, class_names=synthetic.CLASSES)
evidence_view

# %%
gradcam_view = gradcam_explorer(lgd, clip, class_names=synthetic.CLASSES, method="gradcam", normalize="frame")
gradcam_view

# %% [markdown]
# ## 7.10 What these measurements show, and what they do not
#
# Computed from this run's outputs:

# %%
lgd_early = early[early["model"] == "LGD"]
share_of_in_reach = (lgd_far["mean change out of reach"] / lgd_far["mean change in reach"]).max()
print(f"- Shown: global context reaches local features the convolutions cannot reach from the beacon, in "
      f"{', '.join(lgd_far['block'])}; in the plain network nothing does (exact zero, asserted).")
print(f"- Size: out of reach the change is at most {share_of_in_reach:.2%} of the change the beacon causes "
      f"within reach.")
if lgd_early["reads more than the object"].any():
    print("- Readable: the beacon's side can be read from LGD's feature at the object, beyond what the object "
          f"alone tells, in {', '.join(lgd_early.loc[lgd_early['reads more than the object'], 'block'])}.")
else:
    print("- Not shown: in those blocks the beacon's side cannot be read linearly from LGD's feature at the "
          "object beyond what the object alone tells: the global term there is real but small.")
zeroed_all = lgd_rows_ab.loc["global-to-local zeroed", "local head"]
fixed_all = lgd_rows_ab.loc["global-to-local fixed at its mean", "local head"]
print(f"- Needed: with U(W_xg g) zeroed in every block LGD's local head falls from {intact['local head']:.3f} "
      f"to {zeroed_all:.3f}; fixed at its mean (keeping its average, removing what it says about the clip) to "
      f"{fixed_all:.3f}. Per block, clip-specific global context matters most in {uses_clip} "
      f"({per_block.loc[uses_clip, 'local head, fixed at its mean here']:.3f} when fixed there).")
plain_intact = ablation[(ablation["model"] == "plain") & (ablation["condition"] == "intact")].iloc[0]
print(f"- Plain network, same recipe and seed: local head {plain_intact['local head']:.3f} (one seed; the "
      "multi-seed comparison is the study's, in notebook 5 and the README).")

# %% [markdown]
# ## Summary
#
# - **Counterfactual (7.2):** moving only the beacon leaves every plain-network feature outside the beacon's
#   receptive field exactly unchanged (asserted), while LGD's features there move; cutting U(W_xg g) makes
#   them exactly unchanged again. That is global context reaching local features, measured.
# - **Probes (7.3)** and **effective receptive fields (7.4)** show what the feature at the object can read,
#   block by block, against what the object alone tells (section 7.10 says which way it came out).
# - **Ablation (7.5):** each head on the whole validation set, intact and with paths cut.
# - **Evidence spreading (7.6):** in LGD, class evidence need not sit where the class is; keep that in mind
#   when reading evidence maps and Grad-CAM (7.8).
# - The ratio map (7.7) is a constant over the local activation: not evidence of where diffusion matters.
#
# Whether diffusion changes what is *learned*, beyond where information flows, is the question of the
# multi-seed study (`lgd study`; README and notebook 5).
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. Repeat 7.2 and 7.3 with the `lgd3d_tiny_beacon_global_to_local` and `..._local_to_global` checkpoints:
#    which path is needed for the beacon to reach the object's feature?
# 2. In 7.3, probe the feature at a position *far* from both the object and the beacon. What can it read?
# 3. In 7.5, cut only the local-to-global path (`cut_paths(lgd, global_to_local=False, local_to_global=True)`).
