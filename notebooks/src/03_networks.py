# %% [markdown]
# # 3. The LGD-3D and LGD-2D networks
#
# **What you will learn**
# - how LGD blocks are stacked into stages, and how the local map and the global vector change shape from
#   the stem to the last stage;
# - the difference between LGD-3D (P3D units, the release's network) and LGD-2D (a 2D ResNet on TSN segments,
#   our reconstruction);
# - ImageNet inflation: how a 2D ResNet-50's weights become a 3D network's, and the check that makes it
#   trustworthy: a static video gives the 2D network's features on every frame;
# - where the parameters and FLOPs of LGD-3D R50 go, part by part.
#
# **What it needs:** a CPU; no GPU, no data. ImageNet weights cannot be downloaded here,
# so the inflation uses a *randomly initialised* torchvision ResNet-50: the check is about the mapping of
# weights, which any weights test as well as trained ones.
#
# **Where the parts come from:** LGD-3D, its stem, the A/B/C cycle and the inflation rule follow the
# authors' release (`notebooks/PAPER.md`); LGD-2D and the teaching models' sizes are our reconstruction.

# %%
import matplotlib.pyplot as plt
import torch
import torchvision

from lgd_tutorial.models import PARTS, build_model, inflate_from_2d, list_models, parameter_breakdown, summarize
from lgd_tutorial.notebooks import figure_path, profile, show_figure

torch.manual_seed(0)
GPU = profile() == "gpu"
print("profile:", profile(), "| registered models:", ", ".join(list_models()))

# %% [markdown]
# ## 3.1 Stages of LGD blocks
#
# A network is a stem followed by four stages. The first block of stages 2-4 halves H and W and widens the
# channels; the others keep the shape. *Every* residual block is an LGD block, so both representations
# travel through the whole network. The first global vector is the pooled stem output.
#
# `lgd3d_tiny` is the teaching model: ResNet-18-shaped, a quarter of the width, one block per stage.

# %%
tiny = build_model("lgd3d_tiny", num_classes=10).eval()
clip = torch.randn(1, 3, 8, 112, 112)
with torch.no_grad():
    stem = tiny.stem(clip)
    local, global_, taps = tiny.forward_features(clip, return_taps=True)
print(f"{'input':<10} local {tuple(clip.shape)}")
print(f"{'stem':<10} local {tuple(stem.shape)}   global {tuple(stem.mean((2, 3, 4)).shape)}")
for tap, block in zip(taps, tiny.blocks()):
    unit = type(block.residual.conv1).__name__
    print(f"{tap.name:<10} local {tuple(tap.local.shape)}   global {tuple(tap.global_.shape)}   unit {unit}")

# %% [markdown]
# The temporal size stays 4 from the stem to the end: the stem strides time (2 frames in the teaching model,
# 4 in the release) and nothing else does. The global vector always has the width of its stage.
#
# ## 3.2 LGD-3D and LGD-2D side by side
#
# LGD-2D (reconstruction **R**) uses the same blocks with spatial convolutions only: the local path is a 2D
# ResNet on every frame (TSN segments), and only the global path, which pools over *all* frames, links
# frames together. Its stem does not stride time, so T segments stay T.

# %%
tiny2d = build_model("lgd2d_tiny", num_classes=10).eval()
segments = torch.randn(1, 3, 4, 112, 112)
with torch.no_grad():
    _, _, taps2d = tiny2d.forward_features(segments, return_taps=True)
for tap3d, tap2d in zip(taps, taps2d):
    print(f"{tap3d.name:<10} LGD-3D local {tuple(tap3d.local.shape)}   LGD-2D local {tuple(tap2d.local.shape)}")
temporal_convs = lambda m: sum(1 for x in m.modules() if isinstance(x, torch.nn.Conv3d) and x.kernel_size[0] == 3)
print("3x1x1 temporal convs: LGD-3D", temporal_convs(tiny), "| LGD-2D", temporal_convs(tiny2d))

# %% [markdown]
# ## 3.3 ImageNet inflation
#
# The release starts LGD-3D from a 2D ResNet trained on ImageNet:
# - every 2D kernel k x k becomes 1 x k x k (the spatial convolutions take it as is);
# - the stem's 7 x 7 kernel sits at temporal index 2 of its 4 taps, zeros elsewhere;
# - 3x1x1 temporal kernels start as the identity (centre tap 1) in P3D-A units, as zeros in B and C units.
#
# With these rules a clip whose frames are all the same image passes through the network exactly as the
# image passes through the 2D ResNet. We check that on ResNet-50 with the global path switched off
# (`diffusion="none"`, the plain P3D backbone), at a small resolution to stay fast on a CPU.

# %%
resnet = torchvision.models.resnet50().eval()          # random weights: nothing can be downloaded here
with torch.no_grad():                                  # non-trivial BN statistics, as trained weights have
    for module in resnet.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
backbone = inflate_from_2d(build_model("p3d_r50", num_classes=10), resnet.state_dict()).eval()
print("stem kernel:", tuple(backbone.stem.conv.weight.shape),
      "| non-zero temporal taps:", [t for t in range(4) if backbone.stem.conv.weight[:, :, t].any()])

# %%
size = 112 if GPU else 64
image = torch.randn(1, 3, size, size)
static = image[:, :, None].expand(1, 3, 8, size, size).contiguous()     # 8 identical frames
moving = static.clone()
moving[:, :, 4:] = torch.roll(image, shifts=size // 4, dims=3)[:, :, None]   # second half: image shifted


def resnet_layer4(img):
    y = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(img))))
    return resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(y))))


with torch.no_grad():
    reference = resnet_layer4(image)                      # (1, 2048, h, w)
    ours_static, _ = backbone.forward_features(static)    # (1, 2048, 2, h, w)
    ours_moving, _ = backbone.forward_features(moving)
scale = reference.abs().max()
static_error = [((ours_static[:, :, t] - reference).abs().max() / scale).item() for t in range(ours_static.shape[2])]
moving_error = [((ours_moving[:, :, t] - reference).abs().max() / scale).item() for t in range(ours_moving.shape[2])]
print("relative difference from ResNet-50, per temporal position")
print("  static video:", [f"{e:.1e}" for e in static_error])
print("  moving video:", [f"{e:.1e}" for e in moving_error])
assert max(static_error) < 1e-4

# %% [markdown]
# The static clip reproduces the 2D features to float precision at every temporal position. The clip whose
# second half shows the image shifted matches at its first position and not at its second: each temporal
# position still sees its own frames. The temporal kernels are only *initialised* to do nothing; training
# teaches them motion. A picture of the same check:

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
ref_map = reference[0].mean(0)
for ax, (title, data) in zip(axes, [("ResNet-50 on the image", ref_map),
                                    ("inflated P3D, static clip, t=0", ours_static[0, :, 0].mean(0)),
                                    ("inflated P3D, moving clip, t=1", ours_moving[0, :, 1].mean(0))]):
    shown = ax.imshow(data, cmap="viridis", vmin=ref_map.min().item(), vmax=ref_map.max().item())
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes.tolist(), fraction=0.03, label="feature, mean over channels\n(ResNet-50's range)")
fig.suptitle("Last-stage features averaged over channels: a static video gives the 2D network's features")
show_figure(fig, figure_path("03_static_video_check.png"))

# %% [markdown]
# ### Exercise 1 (core): inflate a kernel
#
# Write `inflate(weight, time)` that turns a 2D kernel `(O, I, k, k)` into a 3D one `(O, I, time, k, k)`
# following the release: the 2D kernel at temporal index `time // 2`, zeros elsewhere.

# %% tags=["exercise:inflate_kernel", "points:2"]
def inflate(weight, time):
    ### BEGIN SOLUTION
    out = weight.new_zeros(weight.shape[0], weight.shape[1], time, *weight.shape[2:])
    out[:, :, time // 2] = weight
    return out
    ### END SOLUTION

# %% tags=["exercise:inflate_kernel"]
from lgd_tutorial.exercises import check_inflate_kernel

check_inflate_kernel(inflate)

# %% [markdown]
# ## 3.4 The budget: parameters and FLOPs per part
#
# `lgd_tutorial.models.summary` counts parameters by part and FLOPs with PyTorch's own counter (a
# multiply-add counts 2). The projections cost parameters but almost no FLOPs: they act on vectors, once per
# clip, while convolutions act at every position.

# %%
rows = {}
for name in ("lgd3d_r50", "p3d_r50"):
    rows[name] = parameter_breakdown(build_model(name, num_classes=400))
print(f"{'part':<18}" + "".join(f"{name:>14}" for name in rows))
for part in (*PARTS, "total"):
    print(f"{part:<18}" + "".join(f"{counts[part] / 1e6:12.2f} M" for counts in rows.values()))
base = rows["p3d_r50"]["total"]
added = rows["lgd3d_r50"]["total"] / base - 1
projections = rows["lgd3d_r50"]["LGD projections"] / base
head = (rows["lgd3d_r50"]["classifier"] - rows["p3d_r50"]["classifier"]) / base
print(f"LGD-3D has {added:.1%} more parameters than P3D ResNet-50: the LGD projections {projections:.1%}, the "
      f"classifier's second (global) head {head:.1%}")
assert abs(added - projections - head) < 1e-9          # nothing else differs

# %%
frames, size = (16, 224) if GPU else (8, 112)
budget = {name: summarize(name, frames=frames, size=size, num_classes=400)["gflops"]
          for name in ("lgd3d_tiny", "p3d_r50", "lgd3d_r50")}
for name, gflops in budget.items():
    print(f"{name:<12} {gflops:8.2f} GFLOPs per {frames}x{size}x{size} clip")
flops_added = budget["lgd3d_r50"] / budget["p3d_r50"] - 1
print(f"LGD adds {100 * flops_added:.3f}% FLOPs to P3D ResNet-50")
assert flops_added < 0.01 < added, "the summary below says: parameters yes, FLOPs almost none"

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
left = 0
counts = rows["lgd3d_r50"]
for part in PARTS:
    ax.barh(["lgd3d_r50"], [counts[part] / 1e6], left=left, label=part)
    left += counts[part] / 1e6
ax.set_xlabel("parameters (millions)")
ax.legend(ncol=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))
ax.set_title("Where LGD-3D R50's parameters go (400 classes)")
fig.tight_layout()
show_figure(fig, figure_path("03_parameter_budget.png"))

# %% [markdown]
# ## Summary
#
# - An LGD network is a stem and four stages of LGD blocks; the local map shrinks in H and W and widens in
#   C, the global vector follows the stage width, T stays at frames / temporal stride.
# - LGD-3D puts P3D units in every block; LGD-2D (reconstruction) uses 2D units per frame and lets only the
#   global path see across frames.
# - Inflation maps ImageNet kernels so that a static video reproduces the 2D network's features exactly:
#   a cheap, decisive test that every weight went to the right place.
# - The LGD projections add a sizeable share of P3D ResNet-50's parameters (printed in 3.4) and under 1% to
#   its FLOPs (asserted there).
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. Run the static-video check on `lgd3d_r50` (with both diffusions). Why is the output no longer exactly
#    the 2D network's? (Hint: what is the global-to-local term at initialisation?)
# 2. Inflate with the I3D rule instead (the 2D kernel copied to every tap and divided by the number of taps).
#    Does the static-video check still hold? And for a moving video?
# 3. From the table, compute how many parameters one LGD block of stage 4 adds, and check it by hand from
#    the projection shapes (two Linear layers, bottleneck C/16).
