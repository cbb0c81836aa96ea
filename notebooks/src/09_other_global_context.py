# %% [markdown]
# # 9. Other ways to bring in global context: squeeze-excitation, non-local and global-context blocks
#
# LGD is one answer to "how does a convolution at one position learn about the whole clip?". Three other
# answers are widely used, and each can be put into the same P3D backbone:
#
# - **squeeze-and-excitation** (SE; Hu et al., CVPR 2018) pools the map to a vector and *gates* each channel
#   with it;
# - **non-local** blocks (Wang et al., CVPR 2018; the comparison in the LGD paper) let every position attend to
#   every other;
# - the **global-context** block (GCNet; Cao et al., ICCVW 2019) noticed that non-local attention maps are
#   almost the same for every query position, and replaced them with one attention-pooled vector per clip,
#   transformed and *added* to every position.
#
# **What you will learn**
#
# 1. write the four blocks side by side as equations and find the one thing only LGD has (9.1);
# 2. build them, see where each sits in the network, and check that each starts as the identity (9.2);
# 3. read their cost at full size and at the teaching size (9.3);
# 4. read their accuracy on the signpost task of notebook 7, at its near end and beyond the reach of every
#    convolution (9.4);
# 5. measure what each block sees on its trained models (9.5);
# 6. implement the global-context block's forward pass yourself (exercise).
#
# **What it needs:** a CPU; no GPU and no earlier notebook (notebook 7 explains the
# signpost task). It reads the results shipped in `figures/reach_study/` (`lgd reach-study`) and
# `figures/context_budget/` (`lgd summary --budget`).
#
# **Where the parts come from:** the three blocks follow their papers' equations and insertion points; the code
# is the package's own (`lgd_tutorial/models/context.py`). Training them on the signpost task, and every
# measurement here, are this project's, not any paper's.

# %%
import json
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from lgd_tutorial.models import build_model, parameter_breakdown
from lgd_tutorial.notebooks import figure_path, shipped_path, show_figure
from lgd_tutorial.experiments.reach_study import COMPETITORS, competitor_tables
from lgd_tutorial.experiments.reach_plots import plot_competitors

torch.manual_seed(0)
torch.set_num_threads(2)

# %% tags=["parameters"]
STUDY_DIR = None                          # the reach study's CSVs; None: figures/reach_study in this repository
BUDGET_DIR = None                         # lgd summary --budget's CSV; None: figures/context_budget

# %% [markdown]
# ## 9.1 Four blocks, four equations
#
# Write x for a block's map (N, C, T, H, W), F(x) for its residual branch and S(x) for its shortcut, P for
# average pooling over (T, H, W) and U for broadcasting a C-vector back to every position. Each W is a small
# learned map (two linear layers with a bottleneck of C/16).
#
# | block | what it computes | global context is ... | how it reaches the local map |
# | --- | --- | --- | --- |
# | LGD | g' = ReLU(W_gx P(x) + W_gg **g**);  x' = ReLU(F(x) + S(x) + U(W_xg g')) | a state **g** carried from block to block | added |
# | SE | x' = ReLU(F(x) · 2σ(W2 ReLU(W1 P(F(x)))) + S(x)) | recomputed in each block from F(x) | multiplied, per channel |
# | GC | x' = ReLU(F(x) + U(W2 ReLU(LN(W1 Σ_j a_j F(x)_j))) + S(x)),  a = softmax_j(w_k · F(x)_j) | recomputed in each block | added |
# | non-local | z_i = x_i + BN(W_z Σ_j softmax_j(θ(x_i) · φ(x_j)) g(x_j)) | one weighted sum per position | added, different at each position |
#
# Read the table row by row. SE and GC both pool the map to one C-vector; SE *multiplies* the map by it (a
# channel can be switched off or amplified, but a channel that is zero everywhere stays zero), GC *adds* it,
# exactly like LGD's global-to-local term U(W_xg g'). The difference between GC and LGD is the **g** on the
# right-hand side of LGD's first equation: LGD keeps a global vector that each block updates and passes on, and
# that starts from the stem's pooled output, while GC (and SE, and the non-local block) recompute their context
# from scratch in every block, from that block's own map. The non-local block is the most expressive: every
# position gets its own weighted sum of every other. GCNet's observation is that, trained, those weights are
# often almost the same for every query position; section 9.5 measures that on this task.

# %% [markdown]
# ## 9.2 The blocks in the network
#
# The models are registered like the others: `se_p3d_tiny`, `gc_p3d_tiny` and `nonlocal_p3d_tiny` (and their
# `_r50` versions) are the plain teaching P3D with one kind of block added where its paper adds it. SE and GC go
# into every residual branch, before the shortcut is added. Non-local blocks go after residual blocks of res3
# and res4 (`layer2` and `layer3` here): every other block of those stages, so five in a ResNet-50 and one per
# stage in the teaching model, whose stages have one block each.

# %%
NAMES = {"LGD": "lgd3d_tiny", "plain": "p3d_tiny", "SE": "se_p3d_tiny", "GC": "gc_p3d_tiny",
         "non-local": "nonlocal_p3d_tiny"}
models = {kind: build_model(name, 2).eval() for kind, name in NAMES.items()}
for kind in ("SE", "GC", "non-local"):
    placed = [f"{name} ({type(block.context).__name__})" for name, block in models[kind].named_lgd_blocks()
              if block.context is not None]
    print(f"{kind:<10}", ", ".join(placed))

# %% [markdown]
# Each block starts as the identity, as its paper starts it: GC's last layer and the non-local block's final
# BatchNorm scale are zero, and SE's gate is 2σ(·) with a zero last layer, so it starts at exactly 1. So a
# freshly built SE, GC or non-local network computes *exactly* what the plain network computes with the same
# weights. Check it: copy the plain network's weights into each and compare the logits.

# %%
clip = torch.randn(2, 3, 8, 32, 96)
plain = models["plain"]
with torch.no_grad():
    reference = plain(clip)
    for kind in ("SE", "GC", "non-local"):
        model = build_model(NAMES[kind], 2).eval()
        model.load_state_dict(plain.state_dict(), strict=False)        # the blocks keep their own start
        difference = (model(clip) - reference).abs().max().item()
        print(f"{kind:<10} largest |logit - plain logit| at the start: {difference:.1e}")
        assert difference == 0.0

# %% [markdown]
# ## 9.3 What each costs
#
# Parameters and FLOPs of the teaching models on the signpost strip (8 frames of 32 x 272 pixels, 2 classes),
# computed here (the table after it counts 400 classes, so LGD's second classifier head weighs more there):

# %%
rows = []
base = parameter_breakdown(plain)["total"]
strip = torch.zeros(1, 3, 8, 32, 272)
for kind, model in models.items():
    total = parameter_breakdown(model)["total"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(strip)
    rows.append({"model": NAMES[kind], "parameters": total, "added to plain": total - base,
                 "MFLOPs per clip": round(counter.get_total_flops() / 1e6, 1)})
teaching = pd.DataFrame(rows)
teaching

# %% [markdown]
# At full size (ResNet-50, 16 x 224 x 224) and at the teaching models' own size (8 x 112 x 112), `lgd summary
# --budget` measured parameters, FLOPs and the **training step's time relative to the plain P3D**: every model's
# forward and backward timed in turn, A B C ..., then in reverse, several rounds, so drift in the machine's speed
# falls on all of them alike; the ratio's interval is distribution-free (from order statistics).

# %%
# the shipped results (in the repository, or carried by the installed package), or your own runs' --out folders
study = Path(STUDY_DIR) if STUDY_DIR is not None else shipped_path("figures/reach_study")
budget_dir = Path(BUDGET_DIR) if BUDGET_DIR is not None else shipped_path("figures/context_budget")
budget = pd.read_csv(budget_dir / "budget.csv")
made = json.loads((budget_dir / "budget.json").read_text())
print(f"measured by `{made['command']}` at commit {made['commit']} ({made['machine']})")
budget[["size", "model", "kind", "params", "added_params", "gflops", "ms_per_step", "time_ratio", "ratio_low",
        "ratio_high"]].round(3)

# %%
for size, plain_name in (("16x224", "p3d_r50"), ("8x112", "p3d_tiny")):
    part = budget[budget["size"] == size].set_index("model")
    extra = {m: part.loc[m, "time_ratio"] - 1 for m in part.index if m != plain_name}
    costliest, cheapest = max(extra, key=extra.get), min(extra, key=extra.get)
    flops = {m: part.loc[m, "gflops"] / part.loc[plain_name, "gflops"] - 1 for m in extra}
    print(f"At {size} the training step costs {extra[cheapest]:+.1%} ({cheapest}) to {extra[costliest]:+.1%} "
          f"({costliest}) over the plain P3D's; FLOPs add {min(flops.values()):+.1%} to {max(flops.values()):+.1%} "
          f"(most: {max(flops, key=flops.get)}). Where the FLOPs barely change, the time goes to memory traffic "
          "and small operations, as notebook 6 measures for LGD.")

# %% [markdown]
# ## 9.4 Accuracy at the near and the far end of the signpost task
#
# `lgd reach-study` (notebook 7) trained SE, GC and non-local networks beside LGD and the plain network, with the
# same recipe, data and seeds, at the near end (where every block of the plain network has positions that see
# both cues) and at the far end (where no convolution connects them, and the plain network's ceiling is 0.75).

# %%
levels, runs, causal = (pd.read_csv(study / f"{n}.csv") for n in ("levels", "runs", "causal"))
meta = json.loads((study / "reach_study.json").read_text())
tables = competitor_tables(study)
accuracy = tables["accuracy"]
accuracy.round(3)

# %%
fig = plot_competitors(levels, runs, causal, meta)
show_figure(fig, figure_path("09_competitors.png"))

# %%
acc = accuracy.set_index(["end", "variant"])
near_solvers = [v for v in ("both", "none", *COMPETITORS) if acc.loc[("near", v), "solved"] * 2 > acc.loc[("near", v),
                                                                                                       "seeds"]]
far_solvers = [v for v in ("both", "none", *COMPETITORS) if acc.loc[("far", v), "solved"] > 0]
print("near end, solved by most seeds:", ", ".join(near_solvers) or "none of them")
print("far end, solved by any seed:   ", ", ".join(far_solvers) or "none of them")
for v in ("both", *COMPETITORS):
    r = acc.loc[("far", v)]
    print(f"  far end {v:<9} mean {r['acc_local']:.3f} [{r['acc_low']:.3f}, {r['acc_high']:.3f}], solved "
          f"{int(r['solved'])} of {int(r['seeds'])} (exact 95% interval {r['solved_low']:.2f} to {r['solved_high']:.2f})")

# %% [markdown]
# Read panel (a) with the last two printed lines. At the far end a network needs a path between the sign and
# the square that no convolution provides; all four blocks provide one (the counterfactual below shows that
# mirroring the arrow moves their features out of the sign's reach). Whether the study shows any of them *using*
# it is what the printout says: if no seed solved the far end, the study cannot rank the four there, in the same
# way as notebook 7 could not separate "not needed" from "not learnt" for LGD.

# %%
outside = tables["outside"]
print("change of the local features out of the sign's reach when the arrow is mirrored, relative to the change "
      "within it (median over seeds and blocks):")
print(outside.round(6).to_string(index=False))
plain_out = outside.set_index(["end", "variant"]).loc[("far", "none"), "median_ratio"]
assert plain_out == 0.0, "the plain network cannot change out of the reach of its convolutions"

# %% [markdown]
# ## 9.5 What each block sees
#
# **Non-local: is the attention the same for every query?** For each non-local block of every trained far-end
# model, the study took validation clips and measured the Jensen-Shannon distance (0: the same distribution,
# 1: disjoint) between the attention maps of two random query positions of one clip, and between the maps of
# one query position in two different clips. GCNet's observation predicts the first much smaller than the
# second. Panel (b) shows it per seed.

# %%
attention = tables["attention"]
print(attention.round(3).to_string(index=False))
far_attention = attention[attention["end"] == "far"]
for _, r in far_attention.iterrows():
    print(f"{r['block']}: two queries of one clip {r['within']:.3f} [{r['within_low']:.3f}, {r['within_high']:.3f}], "
          f"one query in two clips {r['across']:.3f} [{r['across_low']:.3f}, {r['across_high']:.3f}]: the first is "
          f"{r['within'] / r['across']:.0%} of the second")
closest = far_attention["within"].min()
print("GCNet's observation would put the first number near 0 (one map for every query). "
      + (f"Here even the closest pair of query maps is {closest:.2f} apart on the 0-to-1 scale: far from one map, "
         "so on these models a query-independent context would not reproduce the non-local blocks."
         if closest > 0.3 else f"Here it is {closest:.2f}: close to one map for every query, as GCNet found."))

# %% [markdown]
# **Global context against LGD: is the context clip-specific?** Fix each block's term at its average over
# training clips (the fix-at-mean ablation of notebook 7, for GC's added vector, SE's gate and the non-local
# map) and measure the local head again. If the context said nothing about *this* clip, accuracy would not move.
# Panel (c) shows the drop per seed.

# %%
fixed = tables["fixed"]
print(fixed.round(3).to_string(index=False))
print("intact: the local head as trained; fixed_mean: every block's term at its mean over training clips; drop: "
      "intact - fixed_mean per seed (mean and 95% interval); removed: every block made the identity (term zeroed, "
      "SE's gate at 1).")
largest = fixed.loc[fixed["drop"].abs().idxmax()]
print(f"The largest mean drop is {largest['drop']:+.3f} ({largest['variant']}, {largest['end']} end)"
      + (": no block type depends measurably on what its context says about the clip, at either end."
         if fixed["drop"].abs().max() < 0.02 and (fixed["drop_low"].fillna(0) <= 0.02).all() else "."))

# %% [markdown]
# **Squeeze-excitation: can a channel gate carry *which way* the arrow points to the square?** The gate is one
# number per channel, the same at every position, so it can tell the square's position about the arrow only by
# scaling channels that are active there. A linear probe for the arrow at the square's feature (panel (d), as in
# notebook 7) measures how much got there: 0.5 is chance, and the square alone gives 0.5.

# %%
probe = tables["probe"]
far_probe = probe[probe["end"] == "far"].pivot_table(index="block", columns="variant", values="probe")
print(far_probe.round(3))
best = {v: far_probe[v].max() for v in far_probe.columns}
print("best block per variant:", ", ".join(f"{v} {value:.3f}" for v, value in best.items()))

# %% [markdown]
# What these readings can and cannot say: they are measured on the models the study trained, and at the far end
# those models are only as informative as their accuracy. A probe near 0.5 on a model at chance says the model
# did not learn to carry the arrow there, not that its block cannot; the near end, where the models did learn,
# shows what a trained block does with its context when convolutions could also have done the work.

# %% [markdown]
# ### Exercise 1 (core): the global-context block
#
# Write `gc_forward(block, x)` for a map x (N, C, T, H, W) from the equation in 9.1, using the block's own
# layers: `block.key` (w_k, a `Linear(C, 1)`), `block.reduce` (W1), `block.norm` (the LayerNorm) and
# `block.expand` (W2). All of them act on the last dimension, so flatten the positions first:
# `x.flatten(2)` is (N, C, L) with L = T·H·W.
#
# 1. attention weights a = softmax over the L positions of w_k · x_j;
# 2. the context c = Σ_j a_j x_j, one C-vector per clip;
# 3. the transform W2 ReLU(LN(W1 c));
# 4. add it to every position of x.
#
# The check runs your function and the package's block with the same weights, and names the step that differs.

# %% tags=["exercise:global_context", "points:3"]
def gc_forward(block, x):
    ### BEGIN SOLUTION
    flat = x.flatten(2)                                                      # (N, C, L)
    weights = torch.softmax(block.key(flat.transpose(1, 2)).squeeze(-1), dim=-1)   # (N, L)
    context = torch.einsum("ncl,nl->nc", flat, weights)                      # (N, C)
    term = block.expand(torch.relu(block.norm(block.reduce(context))))
    return x + term[:, :, None, None, None]
    ### END SOLUTION

# %% tags=["exercise:global_context"]
from lgd_tutorial.exercises import check_global_context

check_global_context(gc_forward)

# %% [markdown]
# What a wrong answer looks like: pooling with a plain average instead of the attention weights (that is SE's
# squeeze, and GCNet's own "simplified" ablation) gets a message that names it, and half the points.

# %%
from lgd_tutorial.exercises import ExerciseError


def averages_instead(block, x):
    context = x.flatten(2).mean(-1)
    return x + block.expand(torch.relu(block.norm(block.reduce(context))))[:, :, None, None, None]


try:
    check_global_context(averages_instead)
except ExerciseError as error:
    print("check says:", error, f"(credit {error.credit})")

# %% [markdown]
# **More exercises**
#
# 1. Add LGD's persistent state to a GC network: keep the GC block's context vector from the previous block and
#    add it (through a linear map) to the next block's context. Which of LGD's equations have you rebuilt?
# 2. The SE gate is 2σ(·) here so that it starts at 1. With the paper's plain σ and default initialisation, what
#    does the gate start at, and what does that do to the residual branch at the first step?
# 3. A non-local block at layer2 of the teaching model on the far-end strip attends over how many key positions
#    (with the 2x2 subsampling)? How many multiply-adds does its attention take per clip, against the block's
#    convolutions?
# 4. Run `lgd summary se_p3d_r50` and `lgd summary gc_p3d_r50`. Which part of each network do the added
#    parameters sit in, and why are GC's a little more than SE's?
