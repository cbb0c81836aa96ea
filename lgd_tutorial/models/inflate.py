"""ImageNet initialisation: inflate a torchvision 2D ResNet into an LGD network.

Authors' release, notebooks/PAPER.md:
- every 2D kernel (k x k) becomes a (1 x k x k) kernel;
- the stem's 7x7 kernel sits at temporal index t // 2 of its t taps (index 2 of
  4), zeros elsewhere;
- 3x1x1 temporal kernels start as the identity (centre tap 1) in P3D-A units
  and as zeros in P3D-B and P3D-C units.

So a static clip (one frame repeated) gives the 2D network's features on
every frame. A flow network (``modality="flow"``, 2 input channels) takes the
stem kernel averaged over the 3 colour channels, once per flow channel: the
cross-modality initialisation of TSN (Wang et al., 2016). A zero flow field
then gives what the 2D network gives for a constant image. The LGD projections and the classifier keep their own
initialisation; the 2D network's ``fc`` is not used.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .lgd import LGDNet
from .p3d import P3DA, BasicBlock, Bottleneck


def _torchvision_names(block_name: str, branch: nn.Module) -> dict[str, str]:
    """Our module prefix -> torchvision prefix for the convs and BNs of one residual block."""
    ours = f"{block_name}.residual"
    if isinstance(branch, Bottleneck):
        pairs = {"conv1": "conv1", "bn1": "bn1", "conv2.spatial": "conv2", "conv2.bn": "bn2",
                 "conv3": "conv3", "bn3": "bn3"}
    elif isinstance(branch, BasicBlock):
        pairs = {"conv1.spatial": "conv1", "conv1.bn": "bn1", "conv2.spatial": "conv2", "conv2.bn": "bn2"}
    else:
        raise TypeError(f"cannot inflate a residual branch of type {type(branch).__name__}")
    names = {f"{ours}.{a}": f"{block_name}.{b}" for a, b in pairs.items()}
    names[f"{block_name}.shortcut.conv"] = f"{block_name}.downsample.0"
    names[f"{block_name}.shortcut.bn"] = f"{block_name}.downsample.1"
    return names


def _inflate_kernel(weight: Tensor, time: int, index: int) -> Tensor:
    """(O, I, k, k) -> (O, I, time, k, k) with the 2D kernel at temporal ``index``, zeros elsewhere."""
    out = weight.new_zeros(weight.shape[0], weight.shape[1], time, *weight.shape[2:])
    out[:, :, index] = weight
    return out


def cross_modality(weight: Tensor, channels: int) -> Tensor:
    """(O, 3, k, k) RGB kernel -> (O, channels, k, k): its mean over the colour channels, repeated."""
    return weight.mean(1, keepdim=True).repeat(1, channels, 1, 1)


@torch.no_grad()
def inflate_from_2d(model: LGDNet, state_dict: dict[str, Tensor] | str | Path) -> LGDNet:
    """Load a torchvision ResNet state dict (or a file holding one) into ``model``, inflated.

    Raises ValueError listing every key that has no counterpart and every
    shape that does not match; nothing is loaded in that case.
    """
    if isinstance(state_dict, (str, Path)):
        state_dict = torch.load(state_dict, map_location="cpu", weights_only=True)
    source = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    prefixes = {"stem.conv": "conv1", "stem.bn": "bn1"}
    for name, block in model.named_lgd_blocks():
        prefixes.update(_torchvision_names(name, block.residual))

    targets = dict(model.state_dict())
    loaded, used, missing, mismatched = {}, set(), [], []
    for ours, theirs in prefixes.items():
        for key, value in targets.items():
            if not key.startswith(ours + "."):
                continue
            source_key = theirs + key[len(ours):]
            if source_key not in source:
                missing.append(source_key)
                continue
            weight = source[source_key]
            used.add(source_key)
            if ours == "stem.conv" and weight.shape[1] == 3 and value.shape[1] != 3:
                weight = cross_modality(weight, value.shape[1])
            if value.dim() == 5 and weight.dim() == 4:
                time = value.shape[2]
                weight = _inflate_kernel(weight, time, time // 2)
            if weight.shape != value.shape:
                mismatched.append(f"{source_key} {tuple(weight.shape)} -> {key} {tuple(value.shape)}")
                continue
            loaded[key] = weight
    unexpected = sorted(set(source) - used)
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append("missing from the 2D state dict: " + ", ".join(sorted(missing)))
        if unexpected:
            problems.append("not used by this model: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatch: " + "; ".join(mismatched))
        raise ValueError("cannot inflate into " + (model.arch or type(model).__name__) + ": " + " | ".join(problems))

    for _, block in model.named_lgd_blocks():
        for unit in block.residual.modules():
            temporal = getattr(unit, "temporal", None)
            if temporal is None:
                continue
            temporal.weight.zero_()
            if isinstance(unit, P3DA):                       # identity over time: centre tap 1
                channels = temporal.weight.shape[0]
                temporal.weight[torch.arange(channels), torch.arange(channels), 1] = 1.0
    model.load_state_dict(loaded, strict=False)
    return model
