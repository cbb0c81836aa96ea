"""Does class evidence stay where the class is? A controlled experiment.

Each clip is grey noise with one coloured square filling one cell of the
final 4 x 4 local map: a red square is class 0, a blue one class 1. Only that
cell carries the class. After a short training, we ask in how many held-out
clips the true class's kernel evidence (``class_evidence``) peaks in the
square's cell. A network without a global path can only put evidence where
the square is seen; LGD's global vector carries the class to every position,
so its evidence may also appear away from the square.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import build_model
from ..training import optimizer_step
from .evidence import class_evidence

SIZE, CELL, FRAMES = 128, 32, 4


def one_region_clips(n: int, generator: torch.Generator, size: int = SIZE, cell: int = CELL):
    """(clips (n, 3, FRAMES, size, size), labels (n,), cells (n, 2) as (row, column) of each square)."""
    clips = 0.3 * torch.randn(n, 3, FRAMES, size, size, generator=generator)
    labels = torch.randint(0, 2, (n,), generator=generator)
    cells = torch.randint(0, size // cell, (n, 2), generator=generator)
    for i in range(n):
        r, c = (int(v) * cell for v in cells[i])
        clips[i, :, :, r:r + cell, c:c + cell] = -1.0
        clips[i, 0 if labels[i] == 0 else 2, :, r:r + cell, c:c + cell] = 2.0
    return clips, labels, cells


def train_on_one_region_clips(arch: str, seed: int = 0, steps: int = 40, batch: int = 8) -> nn.Module:
    """``arch`` trained for ``steps`` AdamW steps on fresh one-region clips (both heads' CE); eval mode."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(arch, num_classes=2, dropout=0.0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        clips, labels, _ = one_region_clips(batch, generator)
        heads = model(clips, return_heads=True)
        loss = sum(F.cross_entropy(heads[h], labels) for h in ("local_logits", "global_logits") if h in heads)
        loss.backward()
        optimizer_step(model, optimiser)
    return model.eval()


def evidence_on_the_square(model: nn.Module, clips: Tensor, labels: Tensor, cells: Tensor) -> dict:
    """Accuracy, and the share of clips whose true-class evidence (mean over time) peaks in the square's cell."""
    evidence, logits = class_evidence(model, clips, labels.tolist())            # (n, T', 4, 4)
    spatial = evidence.mean(1).flatten(1)
    side = evidence.shape[-1]
    hits = (spatial.argmax(1) == cells[:, 0] * side + cells[:, 1]).float().mean().item()
    return {"accuracy": (logits.argmax(1) == labels).float().mean().item(), "peak on the square": hits,
            "chance": 1 / spatial.shape[1]}
