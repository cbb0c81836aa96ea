# %% [markdown]
# # 2. Building blocks: P3D convolutions and the two diffusions
#
# **What you will learn**
# - how a pseudo-3D (P3D) unit splits a 3x3x3 convolution into a spatial 1x3x3 and a temporal 3x1x1 one, in three ways (A, B, C);
# - how the residual branch F and the shortcut S make a residual unit;
# - the two diffusions of an LGD block, built one step at a time with a shape check after each:
#   **local-to-global** `g_new = ReLU(W_gx P(x) + W_gg g)` and **global-to-local** `x_new = ReLU(F(x) + S(x) + U(W_xg g_new))`;
# - what pooling `P` and broadcasting `U` do, in a picture.
#
# **What it needs:** a CPU; no GPU, no data (random tensors only).
#
# **Where the parts come from:** the P3D units and the LGD block equations follow the first author's public
# PyTorch release (see `notebooks/PAPER.md`); the code is the package's own (`lgd_tutorial/models/p3d.py` and `lgd.py`).

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from lgd_tutorial.models import lgd, p3d
from lgd_tutorial.notebooks import figure_path, profile, show_figure

torch.manual_seed(0)
print("profile:", profile())

# %% [markdown]
# ## 2.1 A clip is a 5D tensor
#
# Every tensor in this workbook is laid out as `(N, C, T, H, W)`: clips in the batch, channels, frames,
# height, width. We use a tiny feature map so that every number printed below is easy to read.

# %%
N, C, T, H, W = 2, 8, 4, 14, 14
x = torch.randn(N, C, T, H, W)
print("x:", tuple(x.shape))

# %% [markdown]
# ## 2.2 Spatial and temporal convolutions
#
# A full 3x3x3 kernel mixes space and time at once. P3D factorises it: `S` is a 1x3x3 convolution (a 2D
# convolution on every frame on its own), `T` a 3x1x1 convolution (at every pixel, across 3 neighbouring
# frames). Padding keeps T, H and W unchanged; a spatial stride halves H and W but never T.

# %%
spatial = p3d.spatial_conv(C, 16)
temporal = p3d.temporal_conv(16, 16)
print("S(x):        ", tuple(spatial(x).shape))
print("T(S(x)):     ", tuple(temporal(spatial(x)).shape))
print("S, stride 2: ", tuple(p3d.spatial_conv(C, 16, stride=2)(x).shape))

full = nn.Conv3d(C, 16, 3, padding=1, bias=False)
count = lambda m: sum(p.numel() for p in m.parameters())
print(f"parameters: full 3x3x3 {count(full)}, S + T {count(spatial) + count(temporal)}")

# %% [markdown]
# The factorised pair has fewer parameters than a full 3D kernel here, and (the point of P3D) its spatial
# half has exactly the shape of a 2D ImageNet kernel, so it can start from ImageNet weights (notebook 3).
#
# ## 2.3 The three P3D units
#
# | unit | formula |
# | --- | --- |
# | A (serial) | `ReLU(BN(T(S(x))))` |
# | B (parallel) | `ReLU(BN(S(x) + T(x)))` |
# | C (serial, with a residual) | `s = ReLU(BN(S(x)))`, `ReLU(s + T(s))` |
#
# The network cycles A, B, C, A, ... over its residual blocks. All three map `(N, C_in, T, H, W)` to
# `(N, C_out, T, H/s, W/s)`:

# %%
for unit in (p3d.P3DA, p3d.P3DB, p3d.P3DC):
    out = unit(C, 16, stride=2)(x)
    print(f"{unit.__name__}: {tuple(x.shape)} -> {tuple(out.shape)}")
    assert out.shape == (N, 16, T, H // 2, W // 2)
print("the unit of residual blocks 0..5:", [p3d.p3d_unit(i).__name__ for i in range(6)])

# %% [markdown]
# ## 2.4 The residual unit: F(x) + S(x)
#
# A residual block adds a branch `F` (here a ResNet-18 style `BasicBlock`: two P3D units, the second
# ending in BN without ReLU) to a shortcut `S`. When the block changes the width or the resolution, `S`
# is a 1x1x1 convolution with the same stride, followed by BN, so that the two can be added.

# %%
residual = p3d.BasicBlock(C, 16, stride=2, unit=p3d.P3DA)
shortcut = p3d.Shortcut(C, 16, stride=2)
f_x, s_x = residual(x), shortcut(x)
print("F(x):", tuple(f_x.shape), " S(x):", tuple(s_x.shape))
assert f_x.shape == s_x.shape, "F and S must agree to be added"
plain = torch.relu(f_x + s_x)
print("ReLU(F(x) + S(x)):", tuple(plain.shape))

# %% [markdown]
# That is a plain P3D ResNet block. An LGD block adds a second representation beside it.
#
# ## 2.5 Pooling P and broadcasting U
#
# The **global** representation is one C-vector per clip. `P` turns a local map into such a vector by
# averaging over all T x H x W positions; `U` goes the other way: it lets one vector be added to every
# position of a map. `U` copies nothing: it gives the vector shape `(N, C, 1, 1, 1)` and PyTorch's
# broadcasting does the rest.

# %%
g = lgd.pool(x)
print("P(x):", tuple(g.shape))
print("U(g):", tuple(lgd.broadcast(g).shape))
print("x + U(g):", tuple((x + lgd.broadcast(g)).shape))
assert torch.allclose(g[0, 3], x[0, 3].mean())

# %% [markdown]
# A picture makes this concrete. Take one channel of a clip in which a bright square moves from left to
# right. `P` turns the four frames into one number (the average brightness); `U` puts that number back at
# every frame and pixel. Where the square is, *when* it is there, is gone from the global vector: that is
# what the local path keeps.

# %%
moving = torch.zeros(1, 1, T, 14, 14)
for t in range(T):
    moving[0, 0, t, 4:9, 1 + 2 * t:6 + 2 * t] = 1.0           # a 5 x 5 square, whole in every frame
pooled = lgd.pool(moving)                                   # (1, 1)
spread = (torch.zeros_like(moving) + lgd.broadcast(pooled))[0, 0]
fig, axes = plt.subplots(2, T + 1, figsize=(2.3 * (T + 1), 4.6), layout="constrained")
style = dict(vmin=0, vmax=1, cmap="magma")
for t in range(T):
    axes[0, t].imshow(moving[0, 0, t], **style)
    axes[0, t].set_title(f"x, frame {t}")
    axes[1, t].imshow(spread[t], **style)
    axes[1, t].set_title(f"U(P(x)), frame {t}")
shown = axes[0, T].imshow(pooled.reshape(1, 1), **style)
axes[0, T].set_title(f"P(x) = {pooled.item():.3f}")
axes[1, T].axis("off")
axes[1, T].text(0, 0.5, "the same value\nat every (t, h, w)", fontsize=11)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes[:, :T].ravel().tolist(), fraction=0.02, label="value of the channel")
fig.suptitle("Pooling P (local -> global) and broadcasting U (global -> local), one channel")
show_figure(fig, figure_path("02_pool_broadcast.png"))

# %% [markdown]
# ### Exercise 1 (warm-up): pooling and broadcasting
#
# Write `my_pool(x)` (`(N, C, T, H, W)` -> `(N, C)`, the mean over T, H and W) and `my_broadcast(g)`
# (`(N, C)` -> a tensor that adds to every position of an `(N, C, T, H, W)` map) without using the package.

# %% tags=["exercise:pool_broadcast"]
def my_pool(x):
    ### BEGIN SOLUTION
    return x.mean(dim=(2, 3, 4))
    ### END SOLUTION


def my_broadcast(g):
    ### BEGIN SOLUTION
    return g[:, :, None, None, None]
    ### END SOLUTION

# %% tags=["exercise:pool_broadcast"]
from lgd_tutorial.exercises import check_pool_broadcast

check_pool_broadcast(my_pool, my_broadcast)

# %% [markdown]
# ## 2.6 The projections W
#
# Each diffusion goes through a small projection: two Linear layers with bias and a bottleneck of
# `C // 16` (at least 8 in the narrow teaching models), nothing between them. Three of them per block:
# `W_gg` carries the old global vector, `W_gx` reads the pooled local map, `W_xg` maps the new global vector
# back to the local path.

# %%
C_in, C_out = C, 16
W_gg = lgd.projection(C_in, C_out)
W_gx = lgd.projection(C_in, C_out)
W_xg = lgd.projection(C_out, C_out)
print(W_gx)

# %% [markdown]
# ## 2.7 Local-to-global, step by step
#
# $$g_{\text{new}} = \mathrm{ReLU}\big(W_{gx}\,P(x) + W_{gg}\,g\big)$$
#
# In code, `g_new = ReLU(W_gx P(x) + W_gg g)`. The incoming global vector `g` has the block's input width `C_in`;
# the new one has its output width `C_out`. Note that `P` pools the block's **input** `x`.

# %%
g = torch.randn(N, C_in)                    # the global vector entering the block
pooled = lgd.pool(x)                        # P(x): (N, C_in)
from_local = W_gx(pooled)                   # W_gx P(x): (N, C_out)
carried = W_gg(g)                           # W_gg g: (N, C_out)
g_new = torch.relu(from_local + carried)
for name, value in [("P(x)", pooled), ("W_gx P(x)", from_local), ("W_gg g", carried), ("g_new", g_new)]:
    print(f"{name:<10} {tuple(value.shape)}")
assert g_new.shape == (N, C_out)

# %% [markdown]
# ## 2.8 Global-to-local, step by step
#
# $$x_{\text{new}} = \mathrm{ReLU}\big(F(x) + S(x) + U(W_{xg}\,g_{\text{new}})\big)$$
#
# In code, `x_new = ReLU(F(x) + S(x) + U(W_xg g_new))`: the **new** global vector is projected, broadcast to
# every position, and added to the residual sum before the ReLU.

# %%
term = lgd.broadcast(W_xg(g_new))           # U(W_xg g_new): (N, C_out, 1, 1, 1)
x_new = torch.relu(f_x + s_x + term)        # (N, C_out, T, H/2, W/2)
print("U(W_xg g_new):", tuple(term.shape))
print("x_new:        ", tuple(x_new.shape))
assert x_new.shape == f_x.shape


# %% [markdown]
# ### Exercise 2 (core): an LGD block forward pass
#
# Write `lgd_forward(block, x, g)` returning `(x_new, g_new)`. Use only the block's modules
# (`block.residual`, `block.shortcut`, `block.global_to_global` = W_gg, `block.local_to_global` = W_gx,
# `block.global_to_local` = W_xg) and `lgd.pool` / `lgd.broadcast` (or your own from Exercise 1).
# The check runs it against `LGDBlock` with the same weights and tells you which diffusion is off.

# %% tags=["exercise:lgd_block", "points:3"]
def lgd_forward(block, x, g):
    ### BEGIN SOLUTION
    g_new = torch.relu(block.local_to_global(lgd.pool(x)) + block.global_to_global(g))
    x_new = torch.relu(block.residual(x) + block.shortcut(x) + lgd.broadcast(block.global_to_local(g_new)))
    return x_new, g_new
    ### END SOLUTION

# %% tags=["exercise:lgd_block"]
from lgd_tutorial.exercises import check_lgd_block

check_lgd_block(lgd_forward)

# %% [markdown]
# What a wrong answer looks like: a block that forgets global-to-local gets a message that names it.

# %%
from lgd_tutorial.exercises import ExerciseError


def forgets_global_to_local(block, x, g):
    g_new = torch.relu(block.local_to_global(lgd.pool(x)) + block.global_to_global(g))
    return torch.relu(block.residual(x) + block.shortcut(x)), g_new


try:
    check_lgd_block(forgets_global_to_local)
except ExerciseError as error:
    print("check says:", error)

# %% [markdown]
# ## 2.9 The package's LGDBlock does the same
#
# `lgd.LGDBlock` holds F, S and the three projections, and computes both diffusions in `forward(x, g)`.
# Copy our projections into it and compare with the step-by-step version of 2.7 and 2.8. (In a fresh block the last layer of `W_xg` starts at zero, so at
# the start of training the global path adds the same constant everywhere; copying our random weights
# makes the comparison meaningful.)

# %%
block = lgd.LGDBlock(residual, shortcut, C_in, C_out).eval()      # eval: BN uses running statistics
block.global_to_global.load_state_dict(W_gg.state_dict())
block.local_to_global.load_state_dict(W_gx.state_dict())
block.global_to_local.load_state_dict(W_xg.state_dict())
with torch.no_grad():
    x_ref, g_ref = block(x, g)
    by_hand_g = torch.relu(W_gx(lgd.pool(x)) + W_gg(g))
    by_hand_x = torch.relu(residual(x) + shortcut(x) + lgd.broadcast(W_xg(by_hand_g)))
print("global paths agree:", torch.allclose(g_ref, by_hand_g, atol=1e-6))
print("local paths agree: ", torch.allclose(x_ref, by_hand_x, atol=1e-6))

# %% [markdown]
# ### Exercise 3 (core): P3D-B
#
# Write `MyP3DB(in_channels, out_channels, stride=1, activate=True)`, the parallel unit
# `ReLU(BN(S(x) + T(x)))`, with submodules named `spatial`, `temporal` and `bn` (use `p3d.spatial_conv`
# and `p3d.temporal_conv`). Careful: both convolutions read the unit's input, so both need the stride.

# %% tags=["exercise:p3d_b", "points:2"]
class MyP3DB(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1, activate=True):
        super().__init__()
        ### BEGIN SOLUTION
        self.spatial = p3d.spatial_conv(in_channels, out_channels, stride)
        self.temporal = p3d.temporal_conv(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm3d(out_channels)
        self.activate = activate
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        out = self.bn(self.spatial(x) + self.temporal(x))
        return torch.relu(out) if self.activate else out
        ### END SOLUTION

# %% tags=["exercise:p3d_b"]
from lgd_tutorial.exercises import check_p3d_unit

check_p3d_unit("B", MyP3DB)

# %% [markdown]
# ## Summary
#
# - P3D splits a 3D convolution into a spatial 1x3x3 and a temporal 3x1x1 convolution, combined serially
#   (A), in parallel (B) or serially with a residual (C).
# - A residual unit adds a branch F ending in BN to a shortcut S.
# - `P` averages a local map into one vector per clip; `U` adds a vector to every position.
# - Local-to-global: `g_new = ReLU(W_gx P(x) + W_gg g)`; global-to-local:
#   `x_new = ReLU(F(x) + S(x) + U(W_xg g_new))`. Each projection W is two Linear layers with a C/16 bottleneck.
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. Count the parameters of the three projections of a block with C_in = C_out = 256 and compare them
#    with the block's convolutions. Where does LGD's extra cost go?
# 2. Write P3D-A and P3D-C the same way and check them with `check_p3d_unit("A", ...)` and `check_p3d_unit("C", ...)`.
# 3. Why can adding `U(W_xg g_new)` to a map be done without ever materialising a (N, C, T, H, W) copy of it?
