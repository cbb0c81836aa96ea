"""How much the global path feeds the local one, where, and what cutting it changes.

- ``global_to_local_ratio``: ||U(W_xg g)||_C / ||reference||_C at every
  position and frame, the reference being the block's local activation before
  the global term is added (``residual``, F(x)+S(x), the default) or its output.
- ``global_cosine``: cosine similarity of each local position to the block's
  global vector (both have the block's output channels).
- ``cut_global_path``: a context manager whose forward hooks on
  ``tap_global_to_local`` return zeros from a given block on, so the global
  path no longer reaches the local maps there; ``ablate_global_path`` reports
  how the local features and the prediction change.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..models.lgd import BlockTaps
from .taps import TapRecord, collect_taps, lgd_blocks, resolve_block

REFERENCES = ("residual", "local")


def global_to_local_ratio(block_taps: BlockTaps, reference: str = "residual", eps: float = 1e-6) -> Tensor:
    """Relative size of the global-to-local term per position: (N, T, H, W).

    ``block_taps`` is one entry of ``TapRecord.blocks``. Zero everywhere when
    the block has no global-to-local term (diffusion off, or cut).
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    ref = getattr(block_taps, reference)
    if block_taps.global_to_local is None:
        return torch.zeros_like(ref[:, 0])
    return block_taps.global_to_local.norm(dim=1) / (ref.norm(dim=1) + eps)


def global_cosine(local: Tensor, global_: Tensor | None, eps: float = 1e-8) -> Tensor | None:
    """Cosine similarity of each position of local (N, C, T, H, W) to global_ (N, C): (N, T, H, W).

    Returns None when there is no global vector; raises ValueError when the
    channel counts differ.
    """
    if global_ is None:
        return None
    if local.shape[1] != global_.shape[1]:
        raise ValueError(f"local has {local.shape[1]} channels but the global vector {global_.shape[1]}")
    g = global_[:, :, None, None, None]
    return torch.nn.functional.cosine_similarity(local, g.expand_as(local), dim=1, eps=eps)


@dataclass
class DiffusionMaps:
    """Per block (in ``names`` order): ``ratio`` and ``cosine`` maps (N, T', H', W'),
    ``cosine`` None for blocks without a global path; ``record`` the taps they came from."""

    names: list[str]
    ratio: list[Tensor]
    cosine: list[Tensor | None]
    record: TapRecord

    def summary(self) -> list[dict]:
        """One row per block: mean and max ratio, mean cosine (floats; cosine NaN if absent)."""
        rows = []
        for name, ratio, cos in zip(self.names, self.ratio, self.cosine):
            rows.append({"block": name, "ratio_mean": float(ratio.mean()), "ratio_max": float(ratio.max()),
                         "cosine_mean": float("nan") if cos is None else float(cos.mean())})
        return rows


def diffusion_maps(model: nn.Module, clip: Tensor, reference: str = "residual",
                   record: TapRecord | None = None) -> DiffusionMaps:
    """Both diffusion maps for every block of ``model`` on ``clip`` (N, 3, T, H, W)."""
    record = collect_taps(model, clip) if record is None else record
    ratios, cosines = [], []
    for taps in record.blocks:
        ratios.append(global_to_local_ratio(taps, reference))
        cosines.append(global_cosine(taps.local, taps.global_))
    return DiffusionMaps(record.names, ratios, cosines, record)


@contextlib.contextmanager
def cut_global_path(model: nn.Module, from_block: int | str = 0, to_block: int | str | None = None):
    """Zero the global-to-local term in blocks ``from_block`` .. ``to_block`` (inclusive; default: to the end).

    Forward hooks on ``tap_global_to_local`` replace its output by zeros; the
    model itself is not edited and the hooks are removed on exit. The global
    vectors are still computed (the classifier's global head still sees them);
    only their diffusion into the local maps is cut. Yields the names of the
    blocks that were cut (blocks without that path are skipped).
    """
    start = resolve_block(model, from_block)[0]
    stop = len(lgd_blocks(model)) - 1 if to_block is None else resolve_block(model, to_block)[0]
    handles, cut = [], []

    def zero(module, inputs, output):
        return torch.zeros_like(output)

    try:
        for index, (name, block) in enumerate(lgd_blocks(model)):
            tap = block.tap_global_to_local
            if start <= index <= stop and tap is not None:
                handles.append(tap.register_forward_hook(zero))
                cut.append(name)
        yield cut
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class AblationResult:
    """Effect of cutting the global-to-local path from block ``from_block`` on.

    ``local_change``: per block, ||local_cut - local||_C / ||local||_C at every
    position (N, T', H', W'); ``relative_change``: per block, the same over the
    whole map (N,). ``logits`` / ``logits_cut`` (N, K), ``probs`` / ``probs_cut``,
    ``prediction`` / ``prediction_cut`` (N,), ``kl`` KL(p || p_cut) per clip (N,).
    """

    from_block: str
    cut_blocks: list[str]
    names: list[str]
    local_change: list[Tensor]
    relative_change: list[Tensor]
    logits: Tensor
    logits_cut: Tensor
    record: TapRecord
    record_cut: TapRecord

    @property
    def probs(self) -> Tensor:
        return self.logits.softmax(-1)

    @property
    def probs_cut(self) -> Tensor:
        return self.logits_cut.softmax(-1)

    @property
    def prediction(self) -> Tensor:
        return self.logits.argmax(-1)

    @property
    def prediction_cut(self) -> Tensor:
        return self.logits_cut.argmax(-1)

    @property
    def kl(self) -> Tensor:
        return (self.probs * (self.logits.log_softmax(-1) - self.logits_cut.log_softmax(-1))).sum(-1)

    def summary(self) -> list[dict]:
        """One row per block: mean relative change of the local map over the batch."""
        return [{"block": name, "cut": name in self.cut_blocks, "relative_change": float(change.mean())}
                for name, change in zip(self.names, self.relative_change)]


def ablate_global_path(model: nn.Module, clip: Tensor, from_block: int | str = 0,
                       eps: float = 1e-6) -> AblationResult:
    """Run ``clip`` with and without the global-to-local path from ``from_block`` on and compare."""
    _, name, _ = resolve_block(model, from_block)
    record = collect_taps(model, clip)
    with cut_global_path(model, from_block) as cut:
        record_cut = collect_taps(model, clip)
    local_change, relative = [], []
    for full, ablated in zip(record.blocks, record_cut.blocks):
        diff = ablated.local - full.local
        local_change.append(diff.norm(dim=1) / (full.local.norm(dim=1) + eps))
        relative.append(diff.flatten(1).norm(dim=1) / (full.local.flatten(1).norm(dim=1) + eps))
    return AblationResult(name, cut, record.names, local_change, relative,
                          record.logits, record_cut.logits, record, record_cut)
