"""The kernelized classifier over the local and global representations.

**Reconstruction (R).** The paper's exact formula could not be read; this is
our reconstruction, a kernel machine with learned class templates:

    s_c = mean_i k_l(x_i, u_c) + b^l_c  +  lambda * ( k_g(g, v_c) + b^g_c )

``x_i`` is the final local feature at position i = (t, h, w), ``g`` the final
global vector, ``u_c`` / ``v_c`` learned templates of class c.

- ``kernel="linear"``: k(a, b) = a . b. Then mean_i x_i . u_c = P(x) . u_c, so
  the classifier *is* the authors' release: a local head (pool -> Dropout(0.5)
  -> Linear) and a global head (Dropout(0.5) -> Linear) with summed logits
  (lambda = 1).
- ``kernel="gaussian"``: k(a, b) = alpha * exp(-||a - b||^2 / (2 sigma^2)) with
  a learned bandwidth sigma and a learned output scale alpha per path.

The per-position terms k_l(x_i, u_c) form a class-evidence map over
space-time, (N, K, T, H, W); its mean over positions is the local score.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..constants import KERNELS


class KernelHead(nn.Module):
    """k(x, u_c) + b_c for every class c: templates ``weight`` (K, C) and ``bias`` (K,).

    Laid out like ``nn.Linear`` so that, with the linear kernel, its weights are
    exactly a linear head's.
    """

    def __init__(self, in_channels: int, num_classes: int, kernel: str):
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(num_classes, in_channels))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.normal_(self.weight, std=0.01)
        if kernel == "gaussian":
            # sigma starts at sqrt(C): squared distances between C-dim
            # features grow like C, so exp(-d^2 / 2 sigma^2) starts away from 0.
            self.log_bandwidth = nn.Parameter(torch.tensor(0.5 * math.log(in_channels)))
            self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def similarity(self, features: Tensor) -> Tensor:
        """k(features, u_c) without the bias: (..., C) -> (..., K)."""
        if self.kernel == "linear":
            return features @ self.weight.t()
        sq_dist = (features.pow(2).sum(-1, keepdim=True) - 2 * features @ self.weight.t()
                   + self.weight.pow(2).sum(-1))
        bandwidth = self.log_bandwidth.exp()
        return self.log_scale.exp() * torch.exp(-sq_dist.clamp_min(0) / (2 * bandwidth**2))


class KernelizedClassifier(nn.Module):
    """Combine the final local map and global vector into class scores (R).

    Args:
        in_channels: C, channels of the final local map and global vector.
        num_classes: K.
        kernel: "linear" (the release's two heads) or "gaussian".
        use_global: False for networks without a global path (diffusion="none").
        global_weight: lambda, the weight of the global term.
        dropout: dropout on the features before each head (0.5 in the release).
    """

    def __init__(self, in_channels: int, num_classes: int, kernel: str = "linear",
                 use_global: bool = True, global_weight: float = 1.0, dropout: float = 0.5):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.kernel = kernel
        self.global_weight = global_weight
        self.dropout = nn.Dropout(dropout)
        self.local_head = KernelHead(in_channels, num_classes, kernel)
        self.global_head = KernelHead(in_channels, num_classes, kernel) if use_global else None

    def evidence(self, local: Tensor) -> Tensor:
        """Per-position class evidence k_l(x_i, u_c): (N, C, T, H, W) -> (N, K, T, H, W)."""
        features = local.flatten(2).transpose(1, 2)                      # (N, THW, C)
        scores = self.local_head.similarity(features)                    # (N, THW, K)
        return scores.transpose(1, 2).reshape(local.shape[0], -1, *local.shape[2:])

    def forward(self, local: Tensor, global_: Tensor | None) -> dict[str, Tensor]:
        """Scores from local (N, C, T, H, W) and global_ (N, C) (or None): always a dict of (N, K) scores,
        ``logits`` (what is classified), ``local_logits`` and ``global_logits`` (absent without a global head).
        The per-position map behind the local scores is ``evidence(local)``.
        """
        if self.kernel == "linear":
            local_logits = self.local_head.similarity(self.dropout(local.mean((2, 3, 4))))
        else:
            features = self.dropout(local.flatten(2).transpose(1, 2))
            local_logits = self.local_head.similarity(features).mean(1)
        local_logits = local_logits + self.local_head.bias
        heads = {"local_logits": local_logits}
        logits = local_logits
        if self.global_head is not None:
            if global_ is None:
                raise ValueError("this classifier has a global head: pass the global vector (N, C)")
            global_logits = self.global_head.similarity(self.dropout(global_)) + self.global_head.bias
            heads["global_logits"] = global_logits
            logits = local_logits + self.global_weight * global_logits
        heads["logits"] = logits
        return heads
