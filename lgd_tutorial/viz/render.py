"""Figures and animations: frames x blocks grids, Grad-CAM strips, GIF/MP4 export, PNG bytes.

Everything draws with matplotlib's object API on explicit ``Figure`` objects
(no pyplot state), so it works headless and inside notebooks alike.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from .diffusion import diffusion_maps
from .evidence import clip_to_frames, normalize_maps, overlay, upsample
from .figcheck import write_figure

KINDS = ("ratio", "cosine")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def pick_frames(num_frames: int, count: int | None = None, frame_indices=None) -> list[int]:
    """Frame indices to show: ``frame_indices`` if given, else ``count`` evenly spaced (all by default)."""
    if frame_indices is not None:
        indices = [int(i) for i in frame_indices]
        bad = [i for i in indices if not 0 <= i < num_frames]
        if bad:
            raise ValueError(f"frame indices {bad} out of range for {num_frames} frames")
        return indices
    if count is None or count >= num_frames:
        return list(range(num_frames))
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, count)})


def figure_grid(frames: np.ndarray, rows: dict[str, np.ndarray], alpha: float = 0.5, cmap: str = "jet",
                frame_indices=None, max_frames: int | None = 8, show_frames: bool = True,
                title: str | None = None, cell: float = 1.3, colorbar: str = "map value, scaled to [0, 1]"):
    """A grid: one column per frame, one row per map (e.g. per block), maps overlaid on the frames.

    ``frames`` (T, H, W, 3) in [0, 1]; ``rows`` {label: heat (T, H, W) in [0, 1]}.
    With ``show_frames`` the first row shows the plain frames. A colorbar for
    the heat maps carries the label ``colorbar`` (say how the maps were
    scaled). Returns the Figure.
    """
    frames = np.asarray(frames, dtype=np.float32)
    indices = pick_frames(frames.shape[0], max_frames, frame_indices)
    labels = (["frames"] if show_frames else []) + list(rows)
    aspect = frames.shape[2] / frames.shape[1]                       # width / height: wide strips get wide cells
    fig = _figure(cell * aspect * len(indices) + 1.0, cell * len(labels) + (0.4 if title else 0))
    axes = fig.subplots(len(labels), len(indices), squeeze=False)
    for r, label in enumerate(labels):
        if label == "frames" and show_frames and r == 0:
            images = frames
        else:
            images = overlay(frames, rows[label], alpha, cmap)
        for c, t in enumerate(indices):
            ax = axes[r, c]
            ax.imshow(images[t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=8)
            if c == 0:                                       # a row label runs along the cell's height: wrap it to fit
                fit = max(8, int(cell * 72 / (8 * 0.6)))
                ax.set_ylabel("\n".join(textwrap.fill(part, fit) for part in label.split("\n")), fontsize=8)
    if rows:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        heat_axes = axes.ravel().tolist()                 # every row, so the frames stay aligned with the maps
        fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[cmap]), ax=heat_axes, fraction=0.025, pad=0.01,
                     label=colorbar)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def diffusion_rows(model: nn.Module, clip: Tensor, kind: str = "ratio", normalize: str = "shared",
                   reference: str = "residual") -> dict[str, np.ndarray]:
    """{row label: heat (T, H, W) in [0, 1]} for one clip (1, 3, T, H, W), one row per block.

    ``kind="ratio"``: the global-to-local term's relative size; ``normalize``
    "shared" divides every block by the largest ratio of any block (so blocks
    compare), "clip" / "frame" scale each block on its own. ``kind="cosine"``:
    cosine to the global vector, which lies in [0, 1] because the local map and
    the global vector both follow a ReLU ("shared": as it is), or min-max scaled
    per block ("clip" / "frame"). Labels carry the block's mean value.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if normalize not in ("shared", "clip", "frame"):
        raise ValueError(f"normalize must be 'shared', 'clip' or 'frame', got {normalize!r}")
    if clip.dim() == 4:
        clip = clip[None]
    maps = diffusion_maps(model, clip, reference=reference)
    size = clip.shape[2:]
    raw = maps.ratio if kind == "ratio" else maps.cosine
    rows, values = {}, {}
    for name, m in zip(maps.names, raw):
        if m is None:
            continue
        values[name] = upsample(m[:1].cpu(), size).numpy()[0]
        rows[f"{name}\n(raw mean {float(m[:1].mean()):.3g})"] = name
    if normalize == "shared":
        if kind == "ratio":
            top = max((float(v.max()) for v in values.values()), default=0.0)
            scaled = {k: v / top if top > 0 else np.zeros_like(v) for k, v in values.items()}
        else:                     # both vectors follow a ReLU, so the cosine lies in [0, 1]: shown as it is
            scaled = values
    else:
        scaled = {k: normalize_maps(v, normalize) for k, v in values.items()}
    return {label: np.clip(scaled[name], 0, 1) for label, name in rows.items()}


def diffusion_grid(model: nn.Module, clip: Tensor, kind: str = "ratio", normalize: str = "shared",
                   reference: str = "residual", alpha: float = 0.5, max_frames: int | None = 8,
                   frame_indices=None, mean="imagenet", title: str | None = None):
    """Frames x blocks figure of a diffusion map for one clip (1, 3, T, H, W)."""
    if clip.dim() == 4:
        clip = clip[None]
    rows = diffusion_rows(model, clip, kind, normalize, reference)
    if not rows:
        raise ValueError(f"no block of this model has a {kind} map (it has no global path)")
    frames = clip_to_frames(clip) if mean == "imagenet" else clip_to_frames(clip, mean=None)
    if title is None:
        what = "global-to-local term / local activation" if kind == "ratio" else "cosine(local, global)"
        title = f"{what} ({normalize} scale)"
    cmap = "jet" if kind == "ratio" else "viridis"
    if kind == "cosine" and normalize == "shared":
        label = "cosine (never negative:\nboth follow a ReLU)"
    else:
        scale = {"shared": "one scale,\nall blocks", "clip": "min-max per\nblock and clip",
                 "frame": "min-max\nper frame"}[normalize]
        label = (f"{kind} / its maximum\nover all blocks" if kind == "ratio" and normalize == "shared" else
                 f"{kind} in [0, 1]\n({scale})")
    return figure_grid(frames, rows, alpha=alpha, cmap=cmap, frame_indices=frame_indices,
                       max_frames=max_frames, title=title, colorbar=label)


def gradcam_strip(frames: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
                  frame_indices=None, max_frames: int | None = 8, label: str = "Grad-CAM",
                  title: str | None = None, colorbar: str = "Grad-CAM\n(scaled to [0, 1])"):
    """Two rows: the frames and the CAM (T, H, W) in [0, 1] overlaid on them (``colorbar`` names the map)."""
    return figure_grid(frames, {label: np.asarray(cam)}, alpha=alpha, cmap=cmap, frame_indices=frame_indices,
                       max_frames=max_frames, title=title, colorbar=colorbar)


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Check ``fig`` (``viz.figcheck``), write it to ``path`` (parent folders created) and return the path."""
    return write_figure(fig, Path(path), dpi=dpi)


def rgb_to_png(rgb: np.ndarray, scale: int = 1) -> bytes:
    """An RGB image (H, W, 3) in [0, 1] as PNG bytes, optionally enlarged by an integer factor (nearest)."""
    from PIL import Image

    rgb = np.asarray(rgb, dtype=np.float32)
    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def figure_to_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib Figure as PNG bytes (checked first: ``viz.figcheck``)."""
    return write_figure(fig, io.BytesIO(), dpi=dpi).getvalue()


def export_animation(frames: np.ndarray, path, heat: np.ndarray | None = None, alpha: float = 0.5,
                     cmap: str = "jet", fps: int = 4, title: str | None = None, dpi: int = 100) -> Path:
    """Animate frames (T, H, W, 3) (with a heat map (T, H, W) overlaid if given) to ``path``.

    ``.gif`` uses matplotlib's Pillow writer; ``.mp4`` its ffmpeg writer with the
    binary from ``imageio_ffmpeg``. Returns the path.
    """
    from matplotlib import animation
    from matplotlib import rcParams

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"export to .gif or .mp4, got {path.name!r}")
    images = np.asarray(frames, dtype=np.float32) if heat is None else overlay(frames, heat, alpha, cmap)
    fig = _figure(4, 4 + (0.3 if title else 0))
    ax = fig.add_subplot()
    ax.set_axis_off()
    shown = ax.imshow(images[0], interpolation="nearest")
    label = ax.set_title(f"{title + '  ' if title else ''}t=0", fontsize=9)

    def draw(t):
        shown.set_data(images[t])
        label.set_text(f"{title + '  ' if title else ''}t={t}")
        return shown, label

    anim = animation.FuncAnimation(fig, draw, frames=len(images), interval=1000 / fps, blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        writer = animation.PillowWriter(fps=fps)
    else:
        import imageio_ffmpeg

        rcParams["animation.ffmpeg_path"] = imageio_ffmpeg.get_ffmpeg_exe()
        # yuv420p needs even sizes; the scale filter rounds them down.
        writer = animation.FFMpegWriter(fps=fps, codec="libx264",
                                        extra_args=["-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"])
    anim.save(str(path), writer=writer, dpi=dpi)
    return path
