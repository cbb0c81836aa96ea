"""Registered models: ``build_model(name, num_classes, **overrides)``, ``list_models()`` and ``model_info(name)``.

One small constructor per variant, each registered with what the rest of the
package needs to know about it (``ModelInfo``): its default clip size, the
input normalisation, the same backbone without diffusion, where its
classifier lives. Nothing else in the package guesses these from a name.

The teaching models (``*_tiny``) are ResNet-18-shaped with a quarter of the
width and one block per stage; their stem strides 2 frames (not 4) so an
8-frame clip keeps 4 temporal positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..constants import ARCHITECTURES, IMAGENET_MEAN, IMAGENET_STD
from .lgd import LGD2D, LGD3D

R50, R101 = (3, 4, 6, 3), (3, 4, 23, 3)
TINY = dict(block="basic", layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_channels=16,
            temporal_stride=2)


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model expects and how it relates to the others.

    ``frames`` x ``size`` x ``size`` is the clip it is built for; ``mean`` /
    ``std`` normalise RGB in [0, 1]; ``plain`` names the same backbone without
    diffusion (None for a network that is already plain); ``classifier`` is the
    attribute holding the classifier (the head a fine-tune replaces);
    ``fixed_diffusion`` is set for a network whose diffusion is not a choice
    ("none" for the plain P3D and the SE, GC and non-local networks).
    """

    name: str
    builder: Callable[..., nn.Module]
    frames: int = 16
    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    plain: str | None = None
    classifier: str = "classifier"
    fixed_diffusion: str | None = None

    @property
    def description(self) -> str:
        return (self.builder.__doc__ or "").strip().splitlines()[0] if self.builder.__doc__ else ""


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, **info):
    """Register a constructor ``fn(num_classes, **overrides)`` under ``name``; a name may be registered once."""
    def wrap(fn):
        if name not in ARCHITECTURES:
            raise ValueError(f"model {name!r} is not listed in constants.ARCHITECTURES (the configuration checks "
                             "model.arch against that list without importing torch): add it there")
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].builder.__qualname__})")
        _REGISTRY[name] = ModelInfo(name, fn, **info)
        return fn
    return wrap


def list_models() -> list[str]:
    """Names accepted by ``build_model``, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The ``ModelInfo`` of a registered model; ValueError listing the names for an unknown one."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def diffusion_pairs() -> list[tuple[str, str]]:
    """(LGD model, the same backbone without diffusion) for every registered pair."""
    return [(name, info.plain) for name, info in sorted(_REGISTRY.items()) if info.plain]


def build_model(name: str, num_classes: int, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` (diffusion, kernel, dropout, ...) go to its constructor.

    A model with ``fixed_diffusion`` accepts ``diffusion`` only at that value, and refuses any other by name."""
    info = model_info(name)
    if info.fixed_diffusion is not None and "diffusion" in overrides:
        if overrides["diffusion"] != info.fixed_diffusion:
            raise ValueError(f"{name} has no diffusion to choose: it is built with diffusion="
                             f"{info.fixed_diffusion!r}, got diffusion={overrides['diffusion']!r}")
        overrides = {k: v for k, v in overrides.items() if k != "diffusion"}
    model = info.builder(num_classes, **overrides)
    model.arch = name
    return model


@register("lgd3d_r50", plain="p3d_r50")
def lgd3d_r50(num_classes: int, **kw) -> LGD3D:
    """LGD-3D on a P3D ResNet-50 (16 LGD blocks)."""
    return LGD3D("bottleneck", R50, num_classes, **kw)


@register("lgd3d_r101")
def lgd3d_r101(num_classes: int, **kw) -> LGD3D:
    """LGD-3D on a P3D ResNet-101 (33 LGD blocks)."""
    return LGD3D("bottleneck", R101, num_classes, **kw)


@register("p3d_r50", fixed_diffusion="none")
def p3d_r50(num_classes: int, **kw) -> LGD3D:
    """The same P3D ResNet-50 without diffusion (no LGD parameters)."""
    kw.setdefault("diffusion", "none")
    return LGD3D("bottleneck", R50, num_classes, **kw)


@register("lgd2d_r50")
def lgd2d_r50(num_classes: int, **kw) -> LGD2D:
    """LGD-2D on a 2D ResNet-50 with TSN segments (reconstruction)."""
    return LGD2D("bottleneck", R50, num_classes, **kw)


@register("lgd3d_tiny", frames=8, size=112, plain="p3d_tiny")
def lgd3d_tiny(num_classes: int, **kw) -> LGD3D:
    """Teaching LGD-3D: trains on a 2-core CPU in minutes at 8x112x112 or smaller."""
    return LGD3D(num_classes=num_classes, **{**TINY, **kw})


@register("p3d_tiny", frames=8, size=112, fixed_diffusion="none")
def p3d_tiny(num_classes: int, **kw) -> LGD3D:
    """The teaching model without diffusion."""
    kw.setdefault("diffusion", "none")
    return LGD3D(num_classes=num_classes, **{**TINY, **kw})


@register("lgd2d_tiny", frames=8, size=112)
def lgd2d_tiny(num_classes: int, **kw) -> LGD2D:
    """Teaching LGD-2D (reconstruction)."""
    return LGD2D(num_classes=num_classes, **{**TINY, "temporal_stride": 1, **kw})


# ---------------------------------------------------------------- other ways to bring in global context
# The same plain P3D backbones with one of the blocks of ``models.context`` placed where its paper places it
# (SE and GC in every residual branch, non-local blocks after every other block of res3 and res4).

def _context_model(kind: str, shape: str, num_classes: int, **kw) -> LGD3D:
    kw.setdefault("diffusion", "none")
    kw.setdefault("context", kind)
    if shape == "tiny":
        return LGD3D(num_classes=num_classes, **{**TINY, **kw})
    return LGD3D("bottleneck", R50, num_classes, **kw)


@register("se_p3d_r50", fixed_diffusion="none")
def se_p3d_r50(num_classes: int, **kw) -> LGD3D:
    """P3D ResNet-50 with squeeze-and-excitation in every residual branch (Hu et al., CVPR 2018)."""
    return _context_model("se", "r50", num_classes, **kw)


@register("gc_p3d_r50", fixed_diffusion="none")
def gc_p3d_r50(num_classes: int, **kw) -> LGD3D:
    """P3D ResNet-50 with a global-context block in every residual branch (GCNet, Cao et al., ICCVW 2019)."""
    return _context_model("gc", "r50", num_classes, **kw)


@register("nonlocal_p3d_r50", fixed_diffusion="none")
def nonlocal_p3d_r50(num_classes: int, **kw) -> LGD3D:
    """P3D ResNet-50 with 5 non-local blocks in res3 and res4 (Wang et al., CVPR 2018)."""
    return _context_model("nonlocal", "r50", num_classes, **kw)


@register("se_p3d_tiny", frames=8, size=112, fixed_diffusion="none")
def se_p3d_tiny(num_classes: int, **kw) -> LGD3D:
    """The teaching P3D with squeeze-and-excitation in every residual branch."""
    return _context_model("se", "tiny", num_classes, **kw)


@register("gc_p3d_tiny", frames=8, size=112, fixed_diffusion="none")
def gc_p3d_tiny(num_classes: int, **kw) -> LGD3D:
    """The teaching P3D with a global-context block in every residual branch."""
    return _context_model("gc", "tiny", num_classes, **kw)


@register("nonlocal_p3d_tiny", frames=8, size=112, fixed_diffusion="none")
def nonlocal_p3d_tiny(num_classes: int, **kw) -> LGD3D:
    """The teaching P3D with a non-local block after its layer2 and layer3 blocks."""
    return _context_model("nonlocal", "tiny", num_classes, **kw)
