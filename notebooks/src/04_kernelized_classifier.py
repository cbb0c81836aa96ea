# %% [markdown]
# # 4. The kernelized classifier
#
# **Read this first: this notebook teaches a reconstruction.** The paper says that a kernelized classifier
# combines the final local and global representations, but its exact formula could not be read for this
# project (`notebooks/PAPER.md`). What you see here is our reconstruction, chosen so that with a linear kernel it is
# *exactly* the two linear heads of the authors' later public release.
#
# **What you will learn**
# - the reconstructed classifier `s_c = mean_i k_l(x_i, u_c) + b_c + lambda (k_g(g, v_c) + b'_c)`;
# - why the linear kernel gives the release's two heads, and what a Gaussian kernel changes;
# - the class-evidence map: the per-position terms `k_l(x_i, u_c)` over space-time, on a teaching model
#   trained for a few seconds on a toy task.
#
# **What it needs:** a CPU; no GPU, no data (a toy task is generated in the notebook).

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from lgd_tutorial.models import KernelizedClassifier, build_model
from lgd_tutorial.notebooks import figure_path, profile, show_figure
from lgd_tutorial.viz.figcheck import NO_COLORBAR

torch.manual_seed(0)
GPU = profile() == "gpu"
print("profile:", profile())

# %% [markdown]
# ## 4.1 Scores from both representations
#
# The network ends with a local map `x` of shape `(N, C, T, H, W)` and a global vector `g` of shape `(N, C)`.
# Each class `c` has a local template `u_c` and a global template `v_c` (each a C-vector). The local score
# compares **every position** `x_i` with `u_c` and averages; the global score compares `g` with `v_c`.

# %%
C, K = 32, 5
local = torch.randn(2, C, 4, 3, 3)
global_ = torch.randn(2, C)
linear = KernelizedClassifier(C, K, kernel="linear").eval()           # eval: no dropout
heads = linear(local, global_)                                        # a dict: logits, local_logits, global_logits
for name, value in heads.items():
    print(f"{name:<14} {tuple(value.shape)}")

# %% [markdown]
# ## 4.2 The linear kernel is the release's two heads
#
# With `k(a, u) = a . u`, the mean over positions of `x_i . u_c` equals `P(x) . u_c`: pooling first and then
# one Linear layer gives the same number. So the local term is "pool, then Linear" and the global term is
# "Linear on g": the release's two heads with summed logits (lambda = 1).

# %%
pooled = local.mean((2, 3, 4))
as_two_heads = (pooled @ linear.local_head.weight.T + linear.local_head.bias
                + global_ @ linear.global_head.weight.T + linear.global_head.bias)
print("same logits as two linear heads:", torch.allclose(heads["logits"], as_two_heads, atol=1e-6))

evidence = linear.evidence(local)                                    # (N, K, T, H, W)
print("evidence map:", tuple(evidence.shape))
print("mean of the evidence map + bias = local logits:",
      torch.allclose(evidence.mean((2, 3, 4)) + linear.local_head.bias, heads["local_logits"], atol=1e-6))

# %% [markdown]
# ## 4.3 The Gaussian kernel
#
# `k(a, u) = alpha exp(-||a - u||^2 / (2 sigma^2))` with a learned bandwidth sigma and scale alpha. A position
# now scores high only when it is *close* to the template, not just aligned with it; the score is bounded, so
# one very strong position cannot dominate the mean. The bandwidth decides how close is close:

# %%
distance = torch.linspace(0, 4, 200)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for sigma in (0.5, 1.0, 2.0):
    axes[0].plot(distance, torch.exp(-distance**2 / (2 * sigma**2)), label=f"sigma = {sigma}")
axes[0].set_xlabel("||a - u||")
axes[0].set_ylabel("k(a, u) / alpha")
axes[0].set_title("Gaussian kernel")
axes[0].legend()
projection = torch.linspace(-4, 4, 200)
axes[1].plot(projection, projection, color="k")
axes[1].set_xlabel("a . u")
axes[1].set_ylabel("k(a, u)")
axes[1].set_title("Linear kernel: unbounded")
fig.tight_layout()
show_figure(fig, figure_path("04_kernels.png"))

gaussian = KernelizedClassifier(C, K, kernel="gaussian").eval()
print("learned bandwidth starts at sqrt(C) =", f"{gaussian.local_head.log_bandwidth.exp().item():.2f}")
print("gaussian logits:", tuple(gaussian(local, global_)["logits"].shape))

# %% [markdown]
# ### Exercise 1 (core): the Gaussian kernel
#
# Write `gaussian_kernel(features, templates, bandwidth, scale)`: `features` is `(..., C)` (e.g. every
# position of a map), `templates` is `(K, C)`; return `(..., K)` with
# `scale * exp(-||features - templates[c]||^2 / (2 bandwidth^2))`.

# %% tags=["exercise:gaussian_kernel", "points:2"]
def gaussian_kernel(features, templates, bandwidth, scale):
    ### BEGIN SOLUTION
    squared = ((features[..., None, :] - templates) ** 2).sum(-1)
    return scale * torch.exp(-squared / (2 * bandwidth**2))
    ### END SOLUTION

# %% tags=["exercise:gaussian_kernel"]
from lgd_tutorial.exercises import check_gaussian_kernel

check_gaussian_kernel(gaussian_kernel)

# %% [markdown]
# ## 4.4 A class-evidence map over space-time
#
# To see evidence that means something, the model must have learnt something. A toy task, generated here:
# each clip is noise with one bright square that moves **right** (class 0) or **left** (class 1), at a random
# place. We train `lgd3d_tiny` for a few seconds, then look at the evidence for the true class at every
# position of the final local map, upsampled to the frames.

# %%
FRAMES, SIZE, STEPS = (8, 96, 150) if GPU else (8, 64, 30)


def toy_clips(n, generator):
    clips = 0.3 * torch.randn(n, 3, FRAMES, SIZE, SIZE, generator=generator)
    labels = torch.randint(0, 2, (n,), generator=generator)
    side = SIZE // 6
    for i in range(n):
        top = int(torch.randint(0, SIZE - side, (1,), generator=generator))
        start = int(torch.randint(0, SIZE - side - 2 * FRAMES, (1,), generator=generator))
        for t in range(FRAMES):
            left = start + 2 * t if labels[i] == 0 else start + 2 * (FRAMES - 1 - t)
            clips[i, :, t, top:top + side, left:left + side] += 2.0
    return clips, labels


generator = torch.Generator().manual_seed(0)
model = build_model("lgd3d_tiny", num_classes=2, dropout=0.0)
optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
model.train()
for step in range(STEPS):
    clips, labels = toy_clips(8, generator)
    heads = model(clips, return_heads=True)
    loss = F.cross_entropy(heads["local_logits"], labels) + F.cross_entropy(heads["global_logits"], labels)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    if step % 10 == 0 or step == STEPS - 1:
        print(f"step {step:3d}  loss {loss.item():.3f}")

model.eval()
test_clips, test_labels = toy_clips(32, torch.Generator().manual_seed(1))
with torch.no_grad():
    accuracy = (model(test_clips).argmax(1) == test_labels).float().mean().item()
print(f"accuracy on 32 new clips: {accuracy:.2f} (chance 0.50)")

# %%
clip, label = test_clips[:1], int(test_labels[0])
with torch.no_grad():
    local, global_ = model.forward_features(clip)
    evidence = model.classifier.evidence(local)[0, label]                 # (T', H', W')
upsampled = F.interpolate(evidence[None, None], size=(FRAMES, SIZE, SIZE), mode="trilinear",
                          align_corners=False)[0, 0]
print("evidence map for the true class:", tuple(evidence.shape), "-> upsampled", tuple(upsampled.shape))

shown = range(0, FRAMES, 2)
fig, axes = plt.subplots(2, len(shown), figsize=(2.4 * len(shown) + 1, 5), layout="constrained")
for column, t in enumerate(shown):
    axes[0, column].imshow(clip[0, 0, t], cmap="gray").set_gid(NO_COLORBAR)     # the frame itself (one channel)
    axes[0, column].set_title(f"frame {t}")
    axes[1, column].imshow(clip[0, 0, t], cmap="gray").set_gid(NO_COLORBAR)
    heat = axes[1, column].imshow(upsampled[t], cmap="inferno", alpha=0.6,
                                  vmin=upsampled.min().item(), vmax=upsampled.max().item())
    axes[1, column].set_title("evidence, " + ("right" if label == 0 else "left"))
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(heat, ax=axes[1].tolist(), fraction=0.03, label="evidence of the true class\n(one scale for all frames)")
fig.suptitle("Class evidence k_l(x_i, u_c) of the true class over space-time (linear kernel)")
show_figure(fig, figure_path("04_class_evidence.png"))

# %% [markdown]
# The final map is coarse (the network divides H and W by 32), so the evidence is blocky. Whether training
# puts the evidence on the moving square is a question to measure on a model that learned the task, not to
# read off a picture; notebook 7 (section 7.8) draws the same map on its far-end model and says what a map of
# a model at chance can and cannot show.
#
# ## Summary
#
# - The kernelized classifier is a **reconstruction**: `s_c = mean_i k_l(x_i, u_c) + b_c + lambda (k_g(g, v_c) + b'_c)`.
# - With the linear kernel it is exactly the release's two heads (pool, then Linear; Linear on g).
# - The Gaussian kernel scores closeness to a class template, bounded and with a learned bandwidth.
# - The per-position terms form a class-evidence map over space-time whose mean is the local score.
#
# **More exercises** (stretch, ungraded: open questions; solutions in `notebooks/solutions/more_exercises.md`)
# 1. Train the toy model with `kernel="gaussian"` and compare the accuracy and the evidence maps.
# 2. Set `global_weight=0` and then a large value: how do the local and global heads share the work?
# 3. Show that with the Gaussian kernel the mean of the evidence map is still the local score (before bias).
