"""Three other ways to give a convolutional network global context: SE, non-local and global-context blocks.

Each sits inside a residual block of the same P3D backbone as LGD (``LGDNet(..., context=...)``), with
``diffusion="none"``, so the only difference from the plain network is the block below. With x the residual
branch's output F(x) (N, C, T, H, W), P average pooling over (T, H, W) and U broadcasting a C-vector to every
position:

- **Squeeze-and-excitation** (Hu et al., CVPR 2018), in every residual branch before the shortcut is added:
  ``F'(x) = F(x) * 2 sigmoid(W2 ReLU(W1 P(F(x))))``. A multiplicative, channel-wise gate recomputed in each
  block from that block's own map.
- **Global context** (GCNet, Cao et al., ICCVW 2019), in every residual branch before the shortcut is added:
  ``F'(x) = F(x) + U(W2 ReLU(LN(W1 sum_j a_j F(x)_j)))`` with ``a = softmax_j(w_k . F(x)_j)``: one
  attention-pooled context vector per clip, transformed and *added* to every position. This is LGD's
  global-to-local term U(W_xg g) without LGD's global state g that persists from block to block.
- **Non-local** (Wang et al., CVPR 2018), a block of its own after a residual block:
  ``z_i = x_i + BN(W_z sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j))`` (the "embedded Gaussian" form), every
  position attending to every other. Placed, as in the paper's video models, in res3 and res4 (``layer2`` and
  ``layer3`` here) after every other residual block counted from the stage's last, so a ResNet-50 gets five
  (2 in res3, 3 in res4) and the one-block teaching stages one each; ``phi`` and ``g`` read a 2x2 max-pooled
  map (the paper's subsampling).

Every block starts as the identity, as the papers start them: the last layer of GC's transform and the
non-local block's final BN scale are zero. SE's paper uses a plain sigmoid gate, which starts near 0.5 on every
channel; here the gate is ``2 sigmoid`` with a zero-initialised last layer, so it starts at exactly 1 (and can
still switch a channel off or double it). Bottlenecks are C // 16, at least 8, as for LGD's projections.

``forward(x)`` returns the block's output; ``contribute(x)`` returns (output, the term the block contributed).
Each block passes that term through an ``nn.Identity`` tap (``tap``) so hooks can read or replace it: SE's gate (N, C, 1, 1, 1), GC's added vector (N, C, 1, 1, 1), the non-local block's added map
(N, C, T, H, W); the non-local block also keeps its last attention map in ``attention`` when
``keep_attention`` is set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .p3d import pointwise_conv

CONTEXTS = ("se", "gc", "nonlocal")
MIN_BOTTLENECK = 8


def bottleneck(channels: int) -> int:
    return max(channels // 16, MIN_BOTTLENECK)


class SqueezeExcitation(nn.Module):
    """Gate each channel of the residual branch by a function of its pooled map: F * 2 sigmoid(W2 ReLU(W1 P(F)))."""

    position = "branch"

    def __init__(self, channels: int):
        super().__init__()
        hidden = bottleneck(channels)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)
        self.tap = nn.Identity()
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def contribute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(gated map, gate (N, C, 1, 1, 1))."""
        squeezed = x.mean((2, 3, 4))
        gate = self.tap((2 * torch.sigmoid(self.expand(torch.relu(self.reduce(squeezed)))))[:, :, None, None, None])
        return x * gate, gate

    def forward(self, x: Tensor) -> Tensor:
        return self.contribute(x)[0]


class GlobalContext(nn.Module):
    """Add one attention-pooled, transformed context vector to every position of the residual branch."""

    position = "branch"

    def __init__(self, channels: int):
        super().__init__()
        hidden = bottleneck(channels)
        self.key = nn.Linear(channels, 1)                         # w_k: one attention logit per position
        self.reduce = nn.Linear(channels, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.expand = nn.Linear(hidden, channels)
        self.tap = nn.Identity()
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def context(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(context vector (N, C), attention (N, T*H*W)) of a map (N, C, T, H, W)."""
        flat = x.flatten(2)                                                    # (N, C, L)
        attention = torch.softmax(self.key(flat.transpose(1, 2)).squeeze(-1), dim=-1)   # (N, L)
        return torch.einsum("ncl,nl->nc", flat, attention), attention

    def contribute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(map with the context added, the added vector (N, C, 1, 1, 1))."""
        context, _ = self.context(x)
        term = self.tap(self.expand(torch.relu(self.norm(self.reduce(context))))[:, :, None, None, None])
        return x + term, term

    def forward(self, x: Tensor) -> Tensor:
        return self.contribute(x)[0]


class NonLocal(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection, after a residual block."""

    position = "output"

    def __init__(self, channels: int, subsample: bool = True):
        super().__init__()
        inner = max(channels // 2, 1)
        self.theta = pointwise_conv(channels, inner)
        self.phi = pointwise_conv(channels, inner)
        self.value = pointwise_conv(channels, inner)
        self.out = pointwise_conv(inner, channels)
        self.bn = nn.BatchNorm3d(channels)
        self.subsample = subsample
        self.tap = nn.Identity()
        self.keep_attention = False
        self.attention: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero BN scale: the block starts as the identity (the non-local paper's initialisation)."""
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def _keys(self, x: Tensor) -> Tensor:
        if self.subsample and x.shape[3] > 1 and x.shape[4] > 1:
            return F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
        return x

    def contribute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x + the attended map, the attended map BN(W_z y) (N, C, T, H, W))."""
        n, _, t, h, w = x.shape
        keys = self._keys(x)
        query = self.theta(x).flatten(2).transpose(1, 2)                       # (N, L, C')
        key = self.phi(keys).flatten(2)                                        # (N, C', L')
        value = self.value(keys).flatten(2).transpose(1, 2)                    # (N, L', C')
        attention = torch.softmax(query @ key, dim=-1)                         # (N, L, L'): rows sum to 1
        if self.keep_attention:
            self.attention = attention.detach()
        y = (attention @ value).transpose(1, 2).reshape(n, -1, t, h, w)
        term = self.tap(self.bn(self.out(y)))
        return x + term, term

    def forward(self, x: Tensor) -> Tensor:
        return self.contribute(x)[0]


def build_context(kind: str, channels: int) -> nn.Module:
    if kind == "se":
        return SqueezeExcitation(channels)
    if kind == "gc":
        return GlobalContext(channels)
    if kind == "nonlocal":
        return NonLocal(channels)
    raise ValueError(f"context must be one of {CONTEXTS}, got {kind!r}")


def nonlocal_after(stage: int, index: int, depth: int) -> bool:
    """Whether a non-local block follows block ``index`` of ``stage`` (1-based, ``depth`` blocks): res3 and res4
    (stages 2 and 3), every other block counted from the stage's last."""
    return stage in (2, 3) and (depth - 1 - index) % 2 == 0
