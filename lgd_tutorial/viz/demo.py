"""``lgd viz``: render the visualisation figures.

``lgd viz --demo`` needs no data and no checkpoint: it builds a randomly
initialised ``lgd3d_tiny``, makes a synthetic clip (a bright square moving
across a textured background) and writes into ``--out`` (default ``figures/``):

- ``diffusion_grid_demo.png``: frames x blocks, the global-to-local term's size
  relative to the local activation at every position;
- ``gradcam_strip_demo.png``: the frames and Grad-CAM (last block's
  ``tap_local``, clip-level weights, per-frame normalisation) for the predicted class.

At initialisation the last weight of W_xg is zero, so the global-to-local term
is one constant vector at every position; the ratio map then shows where the
local activation is weak (the term matters more there). A trained model is
needed for maps that mean more.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .evidence import IMAGENET_MEAN, IMAGENET_STD, clip_to_frames

DEMO_FILES = ("diffusion_grid_demo.png", "gradcam_strip_demo.png")


def synthetic_clip(frames: int = 8, size: int = 64, seed: int = 0) -> torch.Tensor:
    """A (1, 3, T, H, W) ImageNet-normalised clip: a bright square moving left to right over texture."""
    rng = np.random.default_rng(seed)
    background = 0.25 + 0.15 * rng.random((size // 8, size // 8, 3))
    background = background.repeat(8, 0).repeat(8, 1)
    side = size // 4
    video = np.empty((frames, size, size, 3), dtype=np.float32)
    for t in range(frames):
        video[t] = background
        left = int(round(t * (size - side) / max(frames - 1, 1)))
        top = size // 2 - side // 2
        video[t, top:top + side, left:left + side] = (0.95, 0.85, 0.2)
    clip = torch.from_numpy(video).permute(3, 0, 1, 2)
    clip = (clip - torch.tensor(IMAGENET_MEAN)[:, None, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None, None]
    return clip[None]


def render_demo(out, frames: int = 8, size: int = 64, seed: int = 0, num_classes: int = 5) -> list[Path]:
    """Write the two demo figures into ``out`` and return their paths."""
    from ..models import build_model
    from .gradcam import video_gradcam
    from .render import diffusion_grid, gradcam_strip, save_figure

    torch.manual_seed(seed)
    model = build_model("lgd3d_tiny", num_classes=num_classes).eval()
    clip = synthetic_clip(frames, size, seed)
    out = Path(out)
    grid = diffusion_grid(model, clip, kind="ratio",
                          title="lgd3d_tiny (random init): global-to-local term / local activation")
    paths = [save_figure(grid, out / DEMO_FILES[0])]
    with torch.no_grad():
        predicted = int(model(clip).argmax(-1)[0])
    cam = video_gradcam(model, clip, predicted, normalize="frame")
    strip = gradcam_strip(clip_to_frames(clip), cam[0], label=f"class {predicted}",
                          title="lgd3d_tiny (random init): Grad-CAM, last block, per-frame normalisation")
    paths.append(save_figure(strip, out / DEMO_FILES[1]))
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgd viz", description=__doc__.split("\n\n")[0].strip("`"))
    parser.add_argument("--demo", action="store_true",
                        help="render the demo figures for a randomly initialised lgd3d_tiny on a synthetic clip")
    parser.add_argument("--checkpoint", help="a trained model's checkpoint (not supported yet)")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the demo clip (default 8)")
    parser.add_argument("--size", type=int, default=64, help="height and width of the demo clip (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint:
        parser.error("--checkpoint is not supported yet; use --demo")
    if not args.demo:
        parser.error("choose --demo (figures for a checkpoint come later)")
    for path in render_demo(args.out, args.frames, args.size, args.seed):
        print(f"wrote {path}")
    return 0
