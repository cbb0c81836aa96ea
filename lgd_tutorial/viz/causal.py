"""Causal measurements of diffusion: does a far-away region change a local feature, and can it be read there?

- ``swap_beacon``: the counterfactual clip: the beacon moved to the opposite
  edge, everything else (object, distractors, background inside the edge
  strips) unchanged, so "approach" becomes "leave" and vice versa.
- ``receptive_field_reach``: per block, which local positions have a
  theoretical receptive field that touches a region of the input. Computed
  exactly on the network's plain twin with every weight positive: a positive
  input inside the region then reaches exactly those positions.
- ``counterfactual_change``: per block and position, how much the local
  feature moves between a clip and its counterfactual. In a network without a
  global path the change outside the reach is exactly zero; in LGD anything
  there can only have come through the global-to-local term U(W_xg g).
- ``effective_receptive_field``: |d feature / d input pixels| of one local
  position, summed over channels and frames.
- ``beacon_counterfactuals``: the counterfactual over many clips, summarised
  per model and block (in reach and out of reach).
- ``object_features`` + ``linear_probe``: how well a property of a far region
  (the beacon's side) or the label can be decoded from the local feature at
  the object's position, per block, on held-out clips; ``lookup_baseline``:
  what the object alone tells about the same targets.
- ``cut_paths``: cut the global-to-local and/or local-to-global path in every
  block; ``fix_global_to_local`` with ``mean_global_to_local``: keep the
  global-to-local term's average but remove what it says about the clip
  (forward hooks; the model is not edited).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..models import build_model
from ..models.context import NonLocal
from ..utils import evaluating
from .taps import collect_taps, lgd_blocks, resolve_block

OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def _edge(side: str, band: int, size: int):
    """Index of the ``band``-pixel strip along ``side`` of (..., H, W, 3) frames, and the axis it flips on."""
    strips = {"left": (np.s_[..., :, :band, :], -2), "right": (np.s_[..., :, size - band:, :], -2),
              "top": (np.s_[..., :band, :, :], -3), "bottom": (np.s_[..., size - band:, :, :], -3)}
    return strips[side]


def beacon_region(side: str, band: int, size: int) -> np.ndarray:
    """The beacon's strip along ``side`` of a ``size`` x ``size`` frame: bool (H, W)."""
    region = np.zeros((size, size), dtype=bool)
    region[_edge(side, band, size)[0][1:-1]] = True
    return region


def swap_beacon(frames: np.ndarray, side: str, band: int) -> tuple[np.ndarray, np.ndarray]:
    """Move the beacon to the opposite edge: swap the two ``band``-wide edge strips (each mirrored).

    ``frames`` (T, H, W, 3) (square). For the synthetic data pass the beacon's
    thickness plus ``synthetic.CAMERA_JITTER``, so that no sliver of the beacon
    stays behind in a jittered frame. Returns (counterfactual frames, the changed
    region as a bool (H, W) mask). Only the two strips change.
    """
    frames = np.asarray(frames)
    size = frames.shape[-2]
    if frames.shape[-3] != size:
        raise ValueError(f"expected square frames (T, H, W, 3), got {frames.shape}")
    out = frames.copy()
    here, axis = _edge(side, band, size)
    there, _ = _edge(OPPOSITE[side], band, size)
    out[here] = np.flip(frames[there], axis)
    out[there] = np.flip(frames[here], axis)
    return out, beacon_region(side, band, size) | beacon_region(OPPOSITE[side], band, size)


@torch.no_grad()
def receptive_field_reach(model: nn.Module, region: Tensor | np.ndarray, frames: int) -> list[Tensor]:
    """Per block, bool (T', H', W'): positions whose theoretical receptive field touches ``region`` (H, W).

    Built on ``model``'s plain twin (same registry entry, ``diffusion="none"``, no context blocks)
    with every conv weight positive, BatchNorm the identity and the input 1
    inside the region and 0 elsewhere: every activation is then a sum of
    non-negative terms, positive exactly where a path from the region arrives.
    """
    twin = build_model(model.arch, model.num_classes, diffusion="none", context=None).double().eval()
    for module in twin.modules():
        if isinstance(module, nn.Conv3d):
            module.weight.fill_(1.0 / module.weight[0].numel())
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm3d):
            module.reset_parameters()
            module.reset_running_stats()
    region = torch.as_tensor(np.asarray(region), dtype=torch.float64)
    x = region.expand(1, 3, frames, *region.shape).contiguous()
    _, _, taps = twin.forward_features(x, return_taps=True)
    return [(t.local[0] > 0).any(0) for t in taps]


@dataclass
class Counterfactual:
    """Per block (``names`` order): ``change`` ||x - x_cf||_C / mean ||x||_C, (N, T', H', W');
    ``logits`` / ``logits_cf`` dicts of heads (N, K)."""

    names: list[str]
    change: list[Tensor]
    logits: dict
    logits_cf: dict

    def outside(self, reach: list[Tensor]) -> list[float]:
        """Largest change per block at positions the region cannot reach (0 where all are reached)."""
        out = []
        for change, reached in zip(self.change, reach):
            far = change[:, ~reached]
            out.append(float(far.max()) if far.numel() else 0.0)
        return out

    def inside(self, reach: list[Tensor]) -> list[float]:
        """Mean change per block at the positions the region reaches (NaN where none are)."""
        return [float(change[:, reached].mean()) if reached.any() else float("nan")
                for change, reached in zip(self.change, reach)]


def counterfactual_change(model: nn.Module, clip: Tensor, clip_cf: Tensor, eps: float = 1e-8) -> Counterfactual:
    """Compare every block's local map on ``clip`` and ``clip_cf`` (N, 3, T, H, W), in eval mode."""
    record, record_cf = collect_taps(model, clip), collect_taps(model, clip_cf)
    change = []
    for a, b in zip(record.blocks, record_cf.blocks):
        scale = a.local.norm(dim=1).mean((1, 2, 3), keepdim=True) + eps          # (N, 1, 1, 1)
        change.append((a.local - b.local).norm(dim=1) / scale)
    with torch.no_grad(), evaluating(model):
        logits, logits_cf = model(clip, return_heads=True), model(clip_cf, return_heads=True)
    return Counterfactual(record.names, change, logits, logits_cf)


def effective_receptive_field(model: nn.Module, clip: Tensor, block: int | str, position) -> Tensor:
    """|d sum_c x_block[c, t, h, w] / d clip| summed over colour channels and frames: (H, W), max 1.

    ``clip`` (1, 3, T, H, W); ``position`` (t, h, w) on the block's local map.
    """
    index, _, _ = resolve_block(model, block)
    clip = clip.detach().clone().requires_grad_(True)
    with evaluating(model):
        _, _, taps = model.forward_features(clip, return_taps=True)
        t, h, w = position
        taps[index].local[0, :, t, h, w].sum().backward()
    grad = clip.grad[0].abs().sum((0, 1))
    return grad / grad.max().clamp_min(1e-12)


def _per_block(model: nn.Module, clips: Tensor, readers, batch: int) -> list[list]:
    """Run ``model`` on ``clips`` once, in batches; for every ``read(taps, start)`` in ``readers`` concatenate,
    per block, what it takes from that block's taps (a tensor whose first axis is the batch, or None)."""
    parts = [None] * len(readers)
    for start in range(0, len(clips), batch):
        blocks = collect_taps(model, clips[start:start + batch]).blocks
        for k, read in enumerate(readers):
            rows = [read(taps, start) for taps in blocks]
            parts[k] = [[r] for r in rows] if parts[k] is None else [p + [r] for p, r in zip(parts[k], rows)]
    return [[None if p[0] is None else torch.cat(p) for p in part] for part in parts]


def _object_reader(clips: Tensor, tracks, object_size: int):
    """``read(taps, start)`` for ``_per_block``: the local feature at the object (see ``object_features``)."""
    frames, height, width = clips.shape[2], clips.shape[-2], clips.shape[-1]
    centres = torch.tensor(np.asarray(tracks, dtype=np.float32) + object_size / 2)      # (N, T, 2)

    def read(taps, start):
        local = taps.local                                                            # (n, C, T', H', W')
        steps, cells_h, cells_w = local.shape[2], local.shape[-2], local.shape[-1]
        middle = ((torch.arange(steps) + 0.5) * frames / steps).long().clamp_max(frames - 1)
        c = centres[start:start + len(local)][:, middle]                                 # (n, T', 2)
        hw = torch.stack([(c[..., 0] * cells_h / height).long().clamp(0, cells_h - 1),
                          (c[..., 1] * cells_w / width).long().clamp(0, cells_w - 1)], -1)
        n = torch.arange(local.shape[0])[:, None]
        return local[n, :, torch.arange(steps)[None], hw[..., 0], hw[..., 1]].flatten(1)  # (n, T' x C)

    return read


@torch.no_grad()
def object_features(model: nn.Module, clips: Tensor, tracks, object_size: int, batch: int = 64) -> list[Tensor]:
    """Per block, the local feature at the object's position: (N, C x T') (the T' temporal positions concatenated).

    ``tracks[i][f]`` is the object's top-left (y, x) in frame f of clip i. At
    temporal position t' the feature is read in the cell that holds the
    object's centre in the middle frame that t' covers.
    """
    return _per_block(model, clips, [_object_reader(clips, tracks, object_size)], batch)[0]


@torch.no_grad()
def object_and_global_features(model: nn.Module, clips: Tensor, tracks, object_size: int, batch: int = 64
                               ) -> tuple[list[Tensor], list[Tensor | None]]:
    """``object_features`` and, per block, the global vector g (N, C) (None without a global path), from one
    pass over ``clips``."""
    features, globals_ = _per_block(model, clips, [_object_reader(clips, tracks, object_size),
                                                   lambda taps, start: taps.global_], batch)
    return features, globals_


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, weight_decay: float = 1e-3,
                 steps: int = 200) -> float:
    """Held-out accuracy of a multinomial logistic regression (standardised features, L2, L-BFGS)."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    a, b = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    linear = nn.Linear(a.shape[1], classes).double()
    a, b = a.double(), b.double()
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(linear(a), train_y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((linear(b).argmax(1) == test_y).double().mean())


def lookup_baseline(train_keys, train_y, test_keys, test_y) -> float:
    """Held-out accuracy of the best lookup table: the most frequent training label for each key.

    With keys that describe the object alone (``synthetic.motion_of``), this is
    what the object by itself says about a target: the baseline a probe at the
    object must beat before it can be said to read anything from elsewhere.
    Keys unseen in training get the overall most frequent label.
    """
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    overall = np.bincount(train_y).argmax()
    table = {}
    for key in set(train_keys):
        table[key] = np.bincount(train_y[[k == key for k in train_keys]]).argmax()
    predicted = np.array([table.get(key, overall) for key in test_keys])
    return float((predicted == test_y).mean())


@torch.no_grad()
def _mean_over_clips(model: nn.Module, clips: Tensor, read, batch: int) -> list[Tensor | None]:
    """Per block, ``read(block_taps)`` (a tensor per clip, or None) averaged over ``clips``."""
    sums, count = None, 0
    for i in range(0, len(clips), batch):
        record = collect_taps(model, clips[i:i + batch])
        terms = [None if read(t) is None else read(t).sum(0) for t in record.blocks]
        sums = terms if sums is None else [None if s is None else s + t for s, t in zip(sums, terms)]
        count += len(clips[i:i + batch])
    return [None if s is None else s / count for s in sums]


def mean_global_to_local(model: nn.Module, clips: Tensor, batch: int = 64) -> list[Tensor | None]:
    """Per block, the global-to-local term U(W_xg g) averaged over ``clips``: a (C,) vector (None without it)."""
    return _mean_over_clips(model, clips, lambda t: None if t.global_to_local is None
                            else t.global_to_local[:, :, 0, 0, 0], batch)


@contextlib.contextmanager
def _replace_outputs(modules_and_terms, fixed):
    """Forward hooks that replace each module's output by ``fixed(term, output)``; yields how many were set."""
    handles = []
    try:
        for module, term in modules_and_terms:
            handles.append(module.register_forward_hook(
                lambda m, inputs, output, term=term: fixed(term, output)))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def fix_global_to_local(model: nn.Module, terms: list[Tensor | None]):
    """Replace every block's U(W_xg g) by a fixed vector (e.g. ``mean_global_to_local``): the local maps keep
    the term's average size and direction, but no longer learn anything about *this* clip from the global path."""
    pairs = [(block.tap_global_to_local, term) for (_, block), term in zip(lgd_blocks(model), terms)
             if term is not None and block.tap_global_to_local is not None]
    with _replace_outputs(pairs, lambda term, output: term.view(1, -1, 1, 1, 1).to(output.dtype)
                          .expand_as(output)) as count:
        yield count


def mean_context_term(model: nn.Module, clips: Tensor, batch: int = 64) -> list[Tensor | None]:
    """Per block, what its context block (SE's gate, GC's added vector, a non-local block's added map)
    contributed, averaged over ``clips``: shape (C, 1, 1, 1) or (C, T, H, W); None for a block without one."""
    return _mean_over_clips(model, clips, lambda t: t.context, batch)


@contextlib.contextmanager
def fix_context(model: nn.Module, terms: list[Tensor | None]):
    """Replace the term of every block's context block by a fixed one (e.g. ``mean_context_term``, or ones for
    SE's gate and zeros for an added term, which remove the block): as ``fix_global_to_local`` for the
    other ways of bringing in global context (``models.context``)."""
    pairs = [(block.context.tap, term) for (_, block), term in zip(lgd_blocks(model), terms)
             if term is not None and getattr(block, "context", None) is not None]
    with _replace_outputs(pairs, lambda term, output: term.unsqueeze(0).to(output.dtype).expand_as(output)) as count:
        yield count


@contextlib.contextmanager
def cut_paths(model: nn.Module, global_to_local: bool = True, local_to_global: bool = False):
    """Cut diffusion paths in every block with forward hooks that return zeros.

    ``global_to_local``: the broadcast term U(W_xg g) (the global vectors are still
    computed, and the global head still reads them). ``local_to_global``: the
    contribution W_gx P(x), so the global path no longer reads the local maps.
    Yields the number of hooks installed; nothing is left behind on exit.
    """
    zero = lambda module, inputs, output: torch.zeros_like(output)  # noqa: E731
    handles = []
    try:
        for _, block in lgd_blocks(model):
            if global_to_local and block.tap_global_to_local is not None:
                handles.append(block.tap_global_to_local.register_forward_hook(zero))
            if local_to_global and block.local_to_global is not None:
                handles.append(block.local_to_global.register_forward_hook(zero))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def beacon_counterfactuals(models: dict, frames: Tensor, sides, band: int, to_clips) -> tuple[list, dict]:
    """Move the beacon in every clip and measure every model's local change per block.

    ``frames`` uint8 (N, T, H, W, 3); ``sides`` the beacon side per clip; ``band``
    the width of the strips to swap (the beacon's thickness plus the camera jitter);
    ``to_clips`` turns frames into the models' input. Returns (rows: one dict per
    model and block with the share of positions the strips cannot reach, the
    largest and mean change there, and the mean change where they can reach;
    ``{model name: (logits, logits_cf)}`` with the head dicts of both runs).
    """
    frames = np.asarray(frames)
    pairs = [swap_beacon(f, side, band) for f, side in zip(frames, sides)]
    clips, clips_cf = to_clips(torch.from_numpy(frames)), to_clips(torch.from_numpy(np.stack([p[0] for p in pairs])))
    reach_of = {}                                               # one reach per strip orientation
    for (_, region), side in zip(pairs, sides):
        axis = side in ("left", "right")
        if axis not in reach_of:
            reach_of[axis] = receptive_field_reach(next(iter(models.values())), region, frames.shape[1])
    reaches = [reach_of[side in ("left", "right")] for side in sides]
    rows, outputs = [], {}
    for name, model in models.items():
        result = counterfactual_change(model, clips, clips_cf)
        outputs[name] = (result.logits, result.logits_cf)
        for b, block in enumerate(result.names):
            reached = torch.stack([r[b] for r in reaches])                        # (N, T', H', W')
            change = result.change[b]
            far, near = change[~reached], change[reached]
            rows.append({"model": name, "block": block, "share out of reach": float((~reached).float().mean()),
                         "max change out of reach": float(far.max()) if far.numel() else float("nan"),
                         "mean change out of reach": float(far.mean()) if far.numel() else float("nan"),
                         "mean change in reach": float(near.mean()) if near.numel() else float("nan")})
    return rows, outputs


def js_distance(p: Tensor, q: Tensor, eps: float = 1e-12) -> Tensor:
    """Jensen-Shannon distance (the square root of the divergence, base 2, in [0, 1]) between distributions
    along the last dimension."""
    m = (p + q) / 2

    def kl(a):
        return (a * (torch.log2(a.clamp_min(eps)) - torch.log2(m.clamp_min(eps)))).sum(-1)

    return ((kl(p) + kl(q)) / 2).clamp_min(0).sqrt()


@torch.no_grad()
def attention_distances(model: nn.Module, clips: Tensor, pairs: int = 512, seed: int = 0,
                        batch: int = 32) -> dict[str, tuple[float, float]]:
    """Per non-local block: (mean JS distance between the attention maps of two query positions of one clip,
    mean JS distance between the maps of one query position in two different clips).

    GCNet's observation is that the first is small, the maps almost the same for every query, so one
    query-independent context vector would do. ``pairs`` random query pairs per clip; each clip is paired with
    the next for the second number."""
    blocks = [(name, block.context) for name, block in lgd_blocks(model) if isinstance(block.context, NonLocal)]
    maps = {name: [] for name, _ in blocks}
    try:
        for _, module in blocks:
            module.keep_attention = True
        with evaluating(model):
            for i in range(0, len(clips), batch):
                model(clips[i:i + batch])
                for name, module in blocks:
                    maps[name].append(module.attention.float())
    finally:
        for _, module in blocks:
            module.keep_attention, module.attention = False, None
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, parts in maps.items():
        attention = torch.cat(parts)                                           # (N, L, L')
        n, queries = attention.shape[:2]
        i = torch.randint(queries, (n, pairs), generator=generator)
        j = (i + torch.randint(1, queries, (n, pairs), generator=generator)) % queries     # another query
        rows = torch.arange(n)[:, None]
        within = js_distance(attention[rows, i], attention[rows, j])
        other = (torch.arange(n) + 1) % n                                       # the next clip, same query
        across = js_distance(attention[rows, i], attention[other[:, None], i])
        out[name] = (float(within.mean()), float(across.mean()))
    return out
