"""A figure check run when a figure is saved: text that overlaps other text or leaves the canvas, and maps with
no colorbar.

Every figure the package and the workbook save goes through ``write_figure`` (``viz.render.save_figure``,
``viz.render.figure_to_png``, ``notebooks.show_figure`` and the commands' own plots), which runs
``check_figure`` and writes a PNG without the metadata that varies between machines and versions (the
"Software" text chunk), so a figure re-rendered from the same results has the same bytes. It draws the figure once,
records every piece of text the renderer actually draws (tick labels of ticks outside the view are not drawn,
so they are not counted) with its extent in pixels, and reports:

- two texts whose boxes overlap by more than ``TOLERANCE`` pixels in both directions;
- a text that reaches more than ``TOLERANCE`` pixels beyond the canvas (cut off in the saved file);
- a scalar map (a 2D image or mesh with a colormap) with no colorbar that shows its colormap and limits
  (one colorbar may serve several maps with the same colormap and limits). A map whose colours are explained
  otherwise (a legend of categories) opts out with ``image.set_gid(NO_COLORBAR)``.

``LGD_FIGURE_CHECK`` decides what a problem does: ``warn`` (the default: a warning naming the figure and the
problem), ``error`` (raise ``FigureProblem``; the test suite sets it) or ``off``.
"""

from __future__ import annotations

import os
import warnings

TOLERANCE = 1.5            # pixels at the figure's dpi
NO_COLORBAR = "no-colorbar"
MODES = ("warn", "error", "off")
PNG_METADATA = {"Software": None}   # matplotlib writes its version here; nothing else in a PNG varies by run


class FigureProblem(ValueError):
    """A saved figure has overlapping or cut-off text, or a map without a colorbar."""


def _drawn_texts(fig):
    """(renderer, [Text]) for every text the figure's draw actually renders."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    drawn = []
    original = renderer.draw_text

    def recording(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None and str(s).strip():
            drawn.append(mtext)
        return original(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = recording
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    return renderer, list(dict.fromkeys(drawn))


def _label(text) -> str:
    value = " ".join(text.get_text().split())
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _scalar_maps(fig):
    from matplotlib.collections import QuadMesh
    from matplotlib.image import AxesImage

    for ax in fig.axes:
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            continue
        for artist in [*ax.images, *ax.collections]:
            if not isinstance(artist, (AxesImage, QuadMesh)) or not artist.get_visible():
                continue
            if artist.get_gid() == NO_COLORBAR:
                continue
            array = artist.get_array()
            if array is None or (isinstance(artist, AxesImage) and array.ndim != 2):
                continue                                              # RGB(A) pictures carry their own colours
            yield ax, artist


def figure_problems(fig) -> list[str]:
    """What is wrong with ``fig`` as it would be saved (empty when nothing is)."""
    renderer, texts = _drawn_texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    problems = []
    for t, box in boxes:
        if box.x0 < -TOLERANCE or box.y0 < -TOLERANCE or box.x1 > width + TOLERANCE or box.y1 > height + TOLERANCE:
            problems.append(f"text {_label(t)} is cut off at the edge of the figure")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if dx > TOLERANCE and dy > TOLERANCE:
                problems.append(f"text {_label(a)} overlaps text {_label(b)}")
    colorbars = [m for m in _all_mappables(fig) if getattr(m, "colorbar", None) is not None]
    for ax, artist in _scalar_maps(fig):
        if artist.colorbar is not None or any(_same_scale(artist, m) for m in colorbars):
            continue
        title = ax.get_title() or ax.get_ylabel() or "untitled axes"
        problems.append(f"the map in {_label_text(title)} has no colorbar")
    return problems


def _label_text(value: str) -> str:
    value = " ".join(value.split())
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _all_mappables(fig):
    for ax in fig.axes:
        yield from ax.images
        yield from ax.collections


def _same_scale(a, b) -> bool:
    return (a.get_cmap().name == b.get_cmap().name and type(a.norm) is type(b.norm)
            and a.norm.vmin == b.norm.vmin and a.norm.vmax == b.norm.vmax)


def check_figure(fig, name: str = "figure") -> list[str]:
    """Check ``fig`` (``figure_problems``) and warn, raise or stay silent as ``LGD_FIGURE_CHECK`` says."""
    mode = os.environ.get("LGD_FIGURE_CHECK", "warn").strip().lower() or "warn"
    if mode not in MODES:
        raise ValueError(f"LGD_FIGURE_CHECK must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return []
    problems = figure_problems(fig)
    if problems:
        message = f"{name}: " + "; ".join(problems)
        if mode == "error":
            raise FigureProblem(message)
        warnings.warn(message, stacklevel=2)
    return problems


def provenance_footer(fig, text: str, fontsize: float = 7) -> None:
    """Write ``text`` (the command, commit and machine that made a figure) along the bottom of ``fig``, wrapped to
    the figure's width, and leave room for it in a constrained layout: a long command never runs off the edge."""
    import textwrap

    per_line = max(40, int(fig.get_figwidth() * 72 / (fontsize * 0.6)) - 4)     # characters that fit a line
    wrapped = textwrap.fill(text, per_line, break_long_words=True, break_on_hyphens=False)
    lines = wrapped.count("\n") + 1
    height = lines * fontsize * 1.3 / 72 / fig.get_figheight()                    # of the figure's height
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, height + 0.005, 1, 1 - height - 0.005))
    fig.text(0.01, 0.004, wrapped, fontsize=fontsize, color="grey", va="bottom")


def write_figure(fig, target, dpi: int = 100, name: str | None = None):
    """Check ``fig`` (``check_figure``) and save it as PNG to ``target`` (a path, parents created, or a binary
    buffer) without varying metadata; returns ``target``."""
    from pathlib import Path

    if isinstance(target, (str, Path)):
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        name = name or target.name
    check_figure(fig, name or "figure")
    fig.savefig(target, format="png", dpi=dpi, metadata=PNG_METADATA)
    return target
