"""Read the local and global paths of a trained LGD network without editing it.

Two ways in:

- ``collect_taps(model, clip)`` uses the model's own API
  (``forward_features(x, return_taps=True)`` and the classifier's evidence)
  and returns everything in one ``TapRecord``.
- ``TapRecorder`` registers forward hooks on the blocks' ``nn.Identity`` taps
  (``tap_local``, ``tap_global``, ``tap_global_to_local``), so it records
  during any ordinary ``model(clip)`` call, e.g. inside a training loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..models.lgd import BlockTaps
from ..utils import evaluating

TAP_NAMES = ("local", "global", "global_to_local")


def lgd_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """[("layer1.0", block), ...] for every LGD block of ``model``, in order."""
    if not hasattr(model, "named_lgd_blocks"):
        raise TypeError(f"{type(model).__name__} is not an LGD network (no named_lgd_blocks())")
    return list(model.named_lgd_blocks())


def resolve_block(model: nn.Module, block: int | str) -> tuple[int, str, nn.Module]:
    """(index, name, module) for a block given by index (negative allowed) or name ("layer3.0")."""
    blocks = lgd_blocks(model)
    names = [name for name, _ in blocks]
    if isinstance(block, str):
        if block not in names:
            raise ValueError(f"unknown block {block!r}; blocks: {', '.join(names)}")
        index = names.index(block)
    else:
        index = int(block)
        if not -len(blocks) <= index < len(blocks):
            raise ValueError(f"block index {block} out of range for {len(blocks)} blocks")
        index %= len(blocks)
    return index, names[index], blocks[index][1]


def tap_module(block: nn.Module, tap: str) -> nn.Module | None:
    """The ``tap_<tap>`` Identity of a block, or None where the block has no such path."""
    if tap not in TAP_NAMES:
        raise ValueError(f"tap must be one of {TAP_NAMES}, got {tap!r}")
    return getattr(block, f"tap_{tap}")


def tap_layers(model: nn.Module, tap: str = "local", blocks=None) -> list[nn.Module]:
    """The tap modules of the chosen blocks (all by default), e.g. as Grad-CAM target layers."""
    chosen = lgd_blocks(model) if blocks is None else [resolve_block(model, b)[1:] for b in blocks]
    layers = []
    for name, block in chosen:
        module = tap_module(block, tap)
        if module is None:
            raise ValueError(f"block {name} has no tap_{tap} (diffusion={block.diffusion!r})")
        layers.append(module)
    return layers


@dataclass
class TapRecord:
    """What one forward pass shows.

    ``blocks``: one ``BlockTaps`` per block (``name``, ``local`` (N, C, T, H, W),
    ``residual`` F(x)+S(x), ``global_`` (N, C), ``global_to_local`` (5D, zeros
    where a hook cuts it) and ``local_to_global`` (N, C); None where the block
    has no such path), detached.
    ``logits`` (N, K); ``evidence`` the kernel evidence (N, K, T', H', W');
    ``local`` / ``global_`` the final representations.
    """

    blocks: list[BlockTaps]
    logits: Tensor
    evidence: Tensor
    local: Tensor
    global_: Tensor | None
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.names = [b.name for b in self.blocks]

    def block(self, key: int | str) -> BlockTaps:
        if isinstance(key, str):
            if key not in self.names:
                raise ValueError(f"unknown block {key!r}; blocks: {', '.join(self.names)}")
            return self.blocks[self.names.index(key)]
        return self.blocks[key]


def _detach(value):
    return value.detach() if isinstance(value, Tensor) else value


def detach_taps(tap: BlockTaps) -> BlockTaps:
    """The same taps, cut from the autograd graph."""
    return dataclasses.replace(tap, **{f.name: _detach(getattr(tap, f.name)) for f in dataclasses.fields(tap)})


@torch.no_grad()
def collect_taps(model: nn.Module, clip: Tensor, eval_mode: bool = True) -> TapRecord:
    """Run ``clip`` (N, 3, T, H, W) through ``model`` once and keep every block's taps.

    Uses ``forward_features(return_taps=True)`` and ``forward_head`` with ``classifier.evidence``;
    the model is not changed (with ``eval_mode`` it runs in eval mode and its
    previous mode is restored). Forward hooks on the taps (e.g. ``cut_global_path``)
    act as usual.
    """
    device = next(model.parameters()).device
    clip = clip.to(device)
    ctx = evaluating(model) if eval_mode else contextlib.nullcontext()
    with ctx:
        local, global_, taps = model.forward_features(clip, return_taps=True)
        logits, evidence = model.forward_head(local, global_)["logits"], model.classifier.evidence(local)
    blocks = [detach_taps(tap) for tap in taps]
    return TapRecord(blocks=blocks, logits=logits.detach(), evidence=evidence.detach(),
                     local=local.detach(), global_=_detach(global_))


class TapRecorder:
    """Forward hooks on the blocks' Identity taps; records during any ``model(x)`` call.

    >>> with TapRecorder(model, taps=("local", "global_to_local")) as rec:
    ...     model(clip)
    >>> rec.outputs["layer2.0"]["local"].shape

    ``outputs`` maps block name -> {tap: tensor} for the last forward pass
    (detached unless ``detach=False``). Blocks without a given path (e.g. no
    global path) have no entry for that tap.
    """

    def __init__(self, model: nn.Module, taps=TAP_NAMES, blocks=None, detach: bool = True):
        for tap in taps:
            if tap not in TAP_NAMES:
                raise ValueError(f"tap must be one of {TAP_NAMES}, got {tap!r}")
        self.model, self.taps, self.detach = model, tuple(taps), detach
        chosen = lgd_blocks(model) if blocks is None else [resolve_block(model, b)[1:] for b in blocks]
        self.block_names = [name for name, _ in chosen]
        self.outputs: dict[str, dict[str, Tensor]] = {}
        self._handles = []
        for name, block in chosen:
            for tap in self.taps:
                module = tap_module(block, tap)
                if module is not None:
                    self._handles.append(module.register_forward_hook(self._hook(name, tap)))

    def _hook(self, name: str, tap: str):
        def hook(module, inputs, output):
            self.outputs.setdefault(name, {})[tap] = output.detach() if self.detach else output
        return hook

    def clear(self) -> None:
        self.outputs = {}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
