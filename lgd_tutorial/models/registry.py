"""Registered models: ``build_model(name, num_classes, **overrides)`` and ``list_models()``.

One small constructor per variant. The teaching models (``*_tiny``) are
ResNet-18-shaped with a quarter of the width and one block per stage; their
stem strides 2 frames (not 4) so an 8-frame clip keeps 4 temporal positions.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .lgd import LGD2D, LGD3D

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

R50, R101 = (3, 4, 6, 3), (3, 4, 23, 3)
TINY = dict(block="basic", layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_channels=16,
            temporal_stride=2)


def register(name: str):
    def wrap(fn):
        _REGISTRY[name] = fn
        return fn
    return wrap


def list_models() -> list[str]:
    """Names accepted by ``build_model``, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, num_classes: int, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` (diffusion, kernel, dropout, ...) go to its constructor."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    model = _REGISTRY[name](num_classes, **overrides)
    model.arch = name
    return model


@register("lgd3d_r50")
def lgd3d_r50(num_classes: int, **kw) -> LGD3D:
    """LGD-3D on a P3D ResNet-50 (16 LGD blocks)."""
    return LGD3D("bottleneck", R50, num_classes, **kw)


@register("lgd3d_r101")
def lgd3d_r101(num_classes: int, **kw) -> LGD3D:
    """LGD-3D on a P3D ResNet-101 (33 LGD blocks)."""
    return LGD3D("bottleneck", R101, num_classes, **kw)


@register("p3d_r50")
def p3d_r50(num_classes: int, **kw) -> LGD3D:
    """The same P3D ResNet-50 without diffusion (no LGD parameters)."""
    kw.setdefault("diffusion", "none")
    return LGD3D("bottleneck", R50, num_classes, **kw)


@register("lgd2d_r50")
def lgd2d_r50(num_classes: int, **kw) -> LGD2D:
    """LGD-2D on a 2D ResNet-50 with TSN segments (reconstruction)."""
    return LGD2D("bottleneck", R50, num_classes, **kw)


@register("lgd3d_tiny")
def lgd3d_tiny(num_classes: int, **kw) -> LGD3D:
    """Teaching LGD-3D: trains on a 2-core CPU in minutes at 8x112x112 or smaller."""
    return LGD3D(num_classes=num_classes, **{**TINY, **kw})


@register("p3d_tiny")
def p3d_tiny(num_classes: int, **kw) -> LGD3D:
    """The teaching model without diffusion."""
    kw.setdefault("diffusion", "none")
    return LGD3D(num_classes=num_classes, **{**TINY, **kw})


@register("lgd2d_tiny")
def lgd2d_tiny(num_classes: int, **kw) -> LGD2D:
    """Teaching LGD-2D (reconstruction)."""
    return LGD2D(num_classes=num_classes, **{**TINY, "temporal_stride": 1, **kw})
