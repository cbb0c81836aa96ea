"""The LGD block and the networks built from it (LGD-3D, LGD-2D).

An LGD block keeps two representations (authors' release, notebooks/PAPER.md):
a *local* map x (N, C, T, H, W) and a *global* vector g (N, C). It updates
both, with two diffusions between them:

    g_new = ReLU( W_gx P(x) + W_gg g )                 local-to-global
    x_new = ReLU( F(x) + S(x) + U(W_xg g_new) )        global-to-local

P pools over (T, H, W); U broadcasts a C-vector to every (t, h, w); F is the
residual branch (ending in BN), S the shortcut. Each W is two Linear layers
with bias and a bottleneck of C // 16 (nothing between them); the weight of
W_xg's last layer starts at zero, so at start the global-to-local term is the
same constant (that layer's bias) at every position of every clip.

Ablations (``diffusion=``):
- "both": the equations above.
- "local_to_global": the global path is computed as above but never added
  back into the local path (x_new = ReLU(F(x) + S(x))).
- "global_to_local": the global path does not read the local map
  (g_new = ReLU(W_gg g), starting from g0 = P(stem output)), but is added to it.
- "none": no global path and no LGD parameters: a plain P3D ResNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .classifier import KernelizedClassifier
from .context import CONTEXTS, build_context, nonlocal_after
from .p3d import Bottleneck, BasicBlock, Shortcut, Spatial2D, Stem, p3d_unit

from ..constants import DIFFUSIONS, MODALITIES
MIN_BOTTLENECK = 8


def projection(in_features: int, out_features: int) -> nn.Sequential:
    """Two Linear layers with bias and a bottleneck of C // 16 (at least 8), nothing between.

    The floor of 8 only matters for the narrow teaching models (C < 128).
    """
    hidden = max(out_features // 16, MIN_BOTTLENECK)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.Linear(hidden, out_features))


class _Pool(torch.autograd.Function):
    """x.mean((2, 3, 4)) whose gradient stays a broadcast view.

    Autograd's own mean backward materialises a full-size (N, C, T, H, W) tensor (the gradient expanded,
    then divided) before adding it into x's gradient: one more write and read of the block's input per
    block and step. Dividing the (N, C) gradient first and returning it expanded (a view with zero strides)
    gives the same numbers, and the accumulation into x's gradient reads it for free.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.shape = x.shape
        return x.mean((2, 3, 4))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        n = ctx.shape[2] * ctx.shape[3] * ctx.shape[4]
        return (grad / n)[:, :, None, None, None].expand(ctx.shape)


def pool(x: Tensor) -> Tensor:
    """P: global average pool over (T, H, W): (N, C, T, H, W) -> (N, C) (a lean backward: ``_Pool``)."""
    return _Pool.apply(x) if x.requires_grad else x.mean((2, 3, 4))


def broadcast(g: Tensor) -> Tensor:
    """U: a C-vector per clip as a view that broadcasts over (T, H, W): (N, C) -> (N, C, 1, 1, 1)."""
    return g[:, :, None, None, None]


@dataclass
class BlockTaps:
    """What one LGD block computed in a forward pass (``forward_features(x, return_taps=True)``).

    ``local`` is the block's local output x_new (N, C, T, H, W); ``residual``
    F(x) + S(x) before the global term is added; ``global_`` its global output
    g_new (N, C); ``global_to_local`` the broadcast term U(W_xg g_new) (a view
    of shape (N, C, T, H, W)); ``local_to_global`` W_gx P(x) (N, C). A path the
    block does not have is None.
    """

    name: str
    local: Tensor
    residual: Tensor
    global_: Tensor | None = None
    global_to_local: Tensor | None = None
    local_to_global: Tensor | None = None
    context: Tensor | None = None


class LGDBlock(nn.Module):
    """One residual block with local and global diffusion.

    ``forward(x, g)`` maps local (N, C_in, T, H, W) and global (N, C_in) (or None
    when diffusion="none") to local (N, C, T, H', W') and global (N, C).

    The projections a diffusion setting leaves out are None (``local_to_global``,
    ``global_to_global``, ``global_to_local``). The ``tap_*`` modules are
    ``nn.Identity``: they change nothing, but give forward hooks (and Grad-CAM) a
    module that returns exactly one tensor: ``tap_local`` the block's local
    output (5D), ``tap_global`` its global output (N, C), ``tap_global_to_local``
    the broadcast term U(W_xg g_new) (5D); None where the path is off.

    ``context`` is None or a block of ``models.context`` (SE, GC, non-local): SE
    and GC act on the residual branch F(x) before the shortcut is added, a
    non-local block on the block's output.
    """

    def __init__(self, residual: nn.Module, shortcut: nn.Module, in_channels: int, out_channels: int,
                 diffusion: str = "both", context: nn.Module | None = None):
        super().__init__()
        if diffusion not in DIFFUSIONS:
            raise ValueError(f"diffusion must be one of {DIFFUSIONS}, got {diffusion!r}")
        self.diffusion = diffusion
        self.residual = residual
        self.shortcut = shortcut
        self.context = context
        self.tap_local = nn.Identity()
        has_global = diffusion != "none"
        reads_local = diffusion in ("both", "local_to_global")
        writes_local = diffusion in ("both", "global_to_local")
        self.tap_global = nn.Identity() if has_global else None
        self.global_to_global = projection(in_channels, out_channels) if has_global else None     # W_gg
        self.local_to_global = projection(in_channels, out_channels) if reads_local else None     # W_gx
        self.global_to_local = projection(out_channels, out_channels) if writes_local else None   # W_xg
        self.tap_global_to_local = nn.Identity() if writes_local else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The release's start: W_xg's last weight is zero, so U(W_xg g) begins as a constant (its bias)."""
        if self.global_to_local is not None:
            nn.init.zeros_(self.global_to_local[-1].weight)

    def diffuse_local_to_global(self, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor | None]:
        """g_new = ReLU(W_gx P(x) + W_gg g); also returns W_gx P(x) (None if that path is off)."""
        carried = self.global_to_global(g)
        if self.local_to_global is None:
            return torch.relu(carried), None
        from_local = self.local_to_global(pool(x))
        return torch.relu(carried + from_local), from_local

    def forward(self, x: Tensor, g: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(x_new, g_new); g is None without a global path."""
        out, g_new, _ = self._run(x, g, None)
        return out, g_new

    def forward_with_taps(self, x: Tensor, g: Tensor | None, name: str) -> tuple[Tensor, Tensor | None, BlockTaps]:
        """(x_new, g_new, BlockTaps) for the block called ``name``: the same result as ``forward``, with its
        intermediate tensors kept (the residual is not added to in place)."""
        return self._run(x, g, name)

    def _run(self, x: Tensor, g: Tensor | None, name: str | None):
        keep = name is not None                                    # keep the intermediate tensors for the taps
        branch = self.residual(x)
        on_branch = self.context is not None and self.context.position == "branch"
        context_term = None
        if on_branch:
            branch, context_term = self.context.contribute(branch)  # SE or GC on F(x)
        residual = branch + self.shortcut(x)                       # F(x) + S(x)
        g_new, from_local, term = None, None, None
        out = residual
        if self.diffusion != "none":
            g_new, from_local = self.diffuse_local_to_global(x, g)
            g_new = self.tap_global(g_new)
        if self.global_to_local is not None:
            term = self.tap_global_to_local(broadcast(self.global_to_local(g_new)).expand_as(residual))
            # A broadcast add (term is a view, never materialised); in place unless the taps keep the residual.
            out = residual.add(term) if keep else residual.add_(term)
        out = torch.relu(out) if keep else out.relu_()
        if self.context is not None and not on_branch:
            out, context_term = self.context.contribute(out)       # a non-local block after the residual block
        out = self.tap_local(out)
        return out, g_new, (BlockTaps(name, out, residual, g_new, term, from_local, context_term) if keep else None)


class LGDNet(nn.Module):
    """A ResNet of LGD blocks with a kernelized classifier; LGD-3D and LGD-2D are two settings of it.

    Args:
        block: "bottleneck" (ResNet-50/101) or "basic" (ResNet-18/34).
        layers: residual blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
        num_classes: K.
        unit: "p3d" (P3D A/B/C cycling over the network: LGD-3D) or "2d"
            (spatial convs only, each frame on its own: LGD-2D).
        widths: planes per stage; stem_channels: stem output channels.
        temporal_stride: the stem's temporal kernel and stride (4 in the release).
        diffusion: "both" | "local_to_global" | "global_to_local" | "none".
        kernel, dropout, global_weight: see ``KernelizedClassifier``.
        pooled_global_head: with diffusion="none" only: give the classifier a
            global head anyway, reading P(final local map). The plain network
            then has the same two heads and the same loss as LGD (a control for
            comparisons; it adds no path between positions).

        modality: "rgb" (3 input channels) or "flow" (2: the x and y components of optical flow);
            only the stem's input differs.
        context: None, or "se" | "gc" | "nonlocal": another way to bring in global context
            (``models.context``), placed where its paper places it. The registered ``*_p3d_*`` models use it
            with diffusion="none".

    Input clips are (N, 3, T, H, W) (flow: (N, 2, T, H, W)), T a positive multiple of ``temporal_stride``.
    """

    def __init__(self, block: str, layers, num_classes: int, unit: str = "p3d",
                 widths=(64, 128, 256, 512), stem_channels: int = 64, temporal_stride: int = 4,
                 diffusion: str = "both", kernel: str = "linear", dropout: float = 0.5,
                 global_weight: float = 1.0, pooled_global_head: bool = False, arch: str = "",
                 modality: str = "rgb", context: str | None = None):
        super().__init__()
        if context is not None and context not in CONTEXTS:
            raise ValueError(f"context must be None or one of {CONTEXTS}, got {context!r}")
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {tuple(MODALITIES)}, got {modality!r}")
        if block not in ("bottleneck", "basic"):
            raise ValueError(f"block must be 'bottleneck' or 'basic', got {block!r}")
        if unit not in ("p3d", "2d"):
            raise ValueError(f"unit must be 'p3d' or '2d', got {unit!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.arch, self.diffusion, self.num_classes, self.context = arch, diffusion, num_classes, context
        self.temporal_stride, self.modality, self.in_channels = temporal_stride, modality, MODALITIES[modality]
        self.stem = Stem(stem_channels, temporal_stride, self.in_channels)
        branch = Bottleneck if block == "bottleneck" else BasicBlock
        channels, index = stem_channels, 0
        self.stage_names = []
        for stage, (planes, depth) in enumerate(zip(widths, layers), start=1):
            blocks = self._make_stage(stage, depth, branch, channels, planes, index, unit, diffusion, context)
            self.add_module(f"layer{stage}", blocks)
            self.stage_names.append(f"layer{stage}")
            channels, index = planes * branch.expansion, index + depth
        if pooled_global_head and self.diffusion != "none":
            raise ValueError("pooled_global_head is for diffusion='none'; LGD's global head reads the global path")
        self.num_features = channels
        self.classifier = KernelizedClassifier(channels, num_classes, kernel=kernel,
                                               use_global=diffusion != "none" or pooled_global_head,
                                               global_weight=global_weight, dropout=dropout)
        self._init_weights()

    @staticmethod
    def _make_stage(stage: int, depth: int, branch, channels: int, planes: int, index: int, unit: str,
                    diffusion: str, context: str | None) -> nn.ModuleList:
        """Stage ``stage`` (1-based): ``depth`` LGD blocks, the first one striding by 2 (after stage 1) and
        projecting the shortcut where the shape changes; ``index`` counts the network's blocks before this
        stage (P3D cycles its A/B/C units over that count). Each block checks ``diffusion``."""
        blocks = nn.ModuleList()
        for j in range(depth):
            stride = 2 if (stage > 1 and j == 0) else 1
            out_channels = planes * branch.expansion
            unit_builder = p3d_unit(index + j) if unit == "p3d" else Spatial2D
            shortcut = (Shortcut(channels, out_channels, stride)
                        if stride != 1 or channels != out_channels else nn.Identity())
            extra = None
            if context in ("se", "gc") or (context == "nonlocal" and nonlocal_after(stage, j, depth)):
                extra = build_context(context, out_channels)
            blocks.append(LGDBlock(branch(channels, planes, stride, unit_builder), shortcut,
                                   channels, out_channels, diffusion, extra))
            channels = out_channels
        return blocks

    def _init_weights(self) -> None:
        """He init for convs, BN to identity (the release); each block and the classifier set their own layers."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks():
            if block.context is not None and hasattr(block.context, "reset_parameters"):
                block.context.reset_parameters()             # a non-local block starts as the identity

    def parameter_groups(self) -> dict[tuple[bool, bool], list[nn.Parameter]]:
        """Trainable parameters by role: ``(head, decay) -> [parameters]``.

        ``head`` marks the classifier's parameters (fine-tuning may give them
        another learning rate); ``decay`` the ones weight decay applies to:
        weights of convs and linear layers, not biases, norms or scalars.
        """
        head_ids = {id(p) for p in self.classifier.parameters()}
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for p in self.parameters():
            if p.requires_grad:
                groups.setdefault((id(p) in head_ids, p.ndim > 1), []).append(p)
        return groups

    def named_lgd_blocks(self):
        """Yield ("layer2.1", block) for every LGD block, in order."""
        for stage in self.stage_names:
            for j, block in enumerate(getattr(self, stage)):
                yield f"{stage}.{j}", block

    def blocks(self) -> list[LGDBlock]:
        return [block for _, block in self.named_lgd_blocks()]

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError naming the expected shape (N, C, T, H, W): C = 3 for RGB, 2 for flow."""
        expected = (f"expected a clip batch of shape (N, {self.in_channels}, T, H, W) ({self.modality}) with T a "
                    f"multiple of {self.temporal_stride}")
        if x.dim() != 5:
            raise ValueError(f"{expected}; got {x.dim()} dimensions {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{expected}; got {x.shape[1]} channels in {tuple(x.shape)}")
        frames = x.shape[2]
        if frames < self.temporal_stride or frames % self.temporal_stride:
            raise ValueError(f"{expected}; got T={frames} in {tuple(x.shape)}")

    def forward_features(self, x: Tensor, return_taps: bool = False):
        """Run the stem and every LGD block.

        Returns (local (N, C, T', H', W'), global_ (N, C) or None); with
        ``return_taps`` also a list of ``BlockTaps``, one per block in order.
        """
        self.check_input(x)
        local = self.stem(x)
        global_ = pool(local) if self.diffusion != "none" else None      # g0 = P(stem output)
        taps = []
        for name, block in self.named_lgd_blocks():
            if return_taps:
                local, global_, tap = block.forward_with_taps(local, global_, name)
                taps.append(tap)
            else:
                local, global_ = block(local, global_)
        return (local, global_, taps) if return_taps else (local, global_)

    def forward_head(self, local: Tensor, global_: Tensor | None) -> dict[str, Tensor]:
        """The classifier's scores, always a dict (``KernelizedClassifier.forward``): ``logits``,
        ``local_logits`` and, with a global head, ``global_logits``. The per-position evidence behind the local
        scores is ``self.classifier.evidence(local)``.

        Without a global path but with ``pooled_global_head``, the global head reads P(local).
        """
        if global_ is None and self.classifier.global_head is not None:
            global_ = pool(local)
        return self.classifier(local, global_)

    def forward(self, x: Tensor, return_heads: bool = False):
        """(N, 3, T, H, W) -> logits (N, K); with ``return_heads`` the dict of ``forward_head``.

        The flag stays on ``forward`` (not a second method) because training calls the model through
        DistributedDataParallel, which synchronises gradients only for what runs through ``forward``.
        """
        heads = self.forward_head(*self.forward_features(x))
        return heads if return_heads else heads["logits"]

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier for ``num_classes`` classes, with the same kernel, dropout,
        global head and global weight (fine-tuning on another label set; as timm's ``reset_classifier``)."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        old = self.classifier
        self.classifier = KernelizedClassifier(self.num_features, num_classes, kernel=old.kernel,
                                               use_global=old.global_head is not None,
                                               global_weight=old.global_weight, dropout=old.dropout.p)
        self.classifier.to(next(old.parameters()).device).train(self.training)      # in the model's mode
        self.num_classes = num_classes


class LGD3D(LGDNet):
    """LGD-3D: LGD blocks on a P3D ResNet (authors' release)."""

    def __init__(self, block: str, layers, num_classes: int, **kwargs):
        super().__init__(block, layers, num_classes, unit="p3d", **kwargs)


class LGD2D(LGDNet):
    """LGD-2D (reconstruction R): LGD blocks on a 2D ResNet with TSN-style input.

    The input holds T segments, one frame each, as (N, 3, T, H, W). The local
    path is a 2D ResNet applied to every frame (no temporal convs, stem stride
    1 in time); the global path pools over all frames, so one vector per video
    carries long-range temporal context back into every frame.
    """

    def __init__(self, block: str, layers, num_classes: int, **kwargs):
        kwargs.setdefault("temporal_stride", 1)
        super().__init__(block, layers, num_classes, unit="2d", **kwargs)
