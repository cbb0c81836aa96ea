"""Figures of the causal measurements (``viz.causal``): the counterfactual, effective receptive fields and probes;
the colours and names of the diffusion variants every study figure shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure


FLOOR = 1e-4          # the smallest change drawn in colour on the counterfactual's log scale

VARIANT_COLOURS = {"both": "tab:red", "local_to_global": "tab:orange", "global_to_local": "tab:purple",
                   "none": "tab:blue", "se": "tab:olive", "nonlocal": "tab:pink", "gc": "tab:cyan"}
VARIANT_LABELS = {"both": "LGD (both diffusions)", "local_to_global": "local-to-global only",
                  "global_to_local": "global-to-local only", "none": "no diffusion (+ pooled global head)",
                  "se": "squeeze-excitation", "nonlocal": "non-local", "gc": "global context (GCNet)"}


def plot_counterfactual(frames: np.ndarray, frames_cf: np.ndarray, results: dict, reach: list, names: list[str],
                        object_box=None, region=None) -> Figure:
    """Per model (rows) and block (columns): the change of each local position between a clip and its
    counterfactual (mean over temporal positions), with the region's theoretical reach outlined.

    ``results`` maps a row title to a ``Counterfactual`` (one clip). The first
    column shows the clip's middle frame and its counterfactual.
    """
    rows, cols = len(results), len(names) + 1
    fig = Figure(figsize=(2.6 * cols, 2.5 * rows + 0.3))
    axes = np.atleast_2d(fig.subplots(rows, cols))
    middle = len(frames) // 2
    for r, (title, result) in enumerate(results.items()):
        image = frames[middle] if r == 0 else frames_cf[middle]
        axes[r, 0].imshow(image)
        axes[r, 0].set_title("clip" if r == 0 else "counterfactual (beacon moved)", fontsize=8)
        if object_box is not None:
            y, x, s = object_box
            axes[r, 0].add_patch(_box(x, y, s, "white"))
        axes[r, 0].axis("off")
        vmax = max(float(c.max()) for c in result.change) or 1.0
        norm = LogNorm(vmin=min(FLOOR, vmax / 10), vmax=vmax)
        cmap = colormaps["magma"].with_extremes(bad="white", under=colormaps["magma"](0.0))
        for c, (name, change, reached) in enumerate(zip(names, result.change, reach), start=1):
            ax = axes[r, c]
            values = np.ma.masked_less_equal(change[0].mean(0).numpy(), 0.0)          # exactly 0 -> white
            image = ax.imshow(values, cmap=cmap, norm=norm)
            ax.contour(reached.any(0).numpy().astype(float), levels=[0.5], colors="cyan", linewidths=1)
            ax.set_title(f"{title}\n{name}: max {float(change.max()):.3f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(image, ax=axes[r, 1:].tolist(), fraction=0.02, extend="min",
                     label="||x - x_cf|| / mean ||x||, log scale")
    fig.suptitle("How much each local feature moves when only the beacon moves (mean over the block's temporal "
                 "positions; white: exactly 0).\nCyan: the border of the positions whose receptive field touches "
                 "the changed strips", fontsize=9)
    return fig


def _box(x, y, size, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor=colour, lw=1.2)


def plot_effective_fields(fields: dict, names: list[str], frame: np.ndarray, centre) -> Figure:
    """Rows: models; columns: blocks. Each panel: the normalised |gradient| of one local position (at the
    object) with respect to the input pixels, over the clip's middle frame."""
    rows = len(fields)
    fig = Figure(figsize=(2.6 * len(names), 2.5 * rows + 0.3))
    axes = np.atleast_2d(fig.subplots(rows, len(names)))
    for r, (title, maps) in enumerate(fields.items()):
        for c, (name, field) in enumerate(zip(names, maps)):
            ax = axes[r, c]
            ax.imshow(frame, alpha=0.5)
            image = ax.imshow(field.numpy(), cmap="viridis", alpha=0.75, vmin=0, vmax=1)
            ax.plot(centre[1], centre[0], "w+", ms=8)
            ax.set_title(f"{title}: {name}", fontsize=8)
            ax.axis("off")
        fig.colorbar(image, ax=axes[r].tolist(), fraction=0.02, label="|d feature / d pixel| / max")
    fig.suptitle("Effective receptive field of the local feature at the object (+), per block", fontsize=9)
    return fig


def plot_probes(table: pd.DataFrame, baselines: dict | None = None, chance: float = 0.25) -> Figure:
    """Probe accuracy per block (x) for each model and target (lines), with chance and, per target, the
    accuracy of what the object alone tells (``baselines``: target -> accuracy)."""
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.subplots()
    styles = {}
    for (model, target), group in table.groupby(["model", "target"], sort=False):
        style = styles.setdefault(target, ("-", "--", "-.")[len(styles) % 3])
        ax.plot(group["block"], group["accuracy"], marker="o", color=VARIANT_COLOURS.get(model), ls=style,
                label=f"{VARIANT_LABELS.get(model, model)}: {target}")
    ax.axhline(chance, color="grey", ls=":", label=f"chance ({chance:.2f})")
    for target, value in (baselines or {}).items():
        ax.axhline(value, color="black", lw=0.8, ls=styles.get(target, "-"),
                   label=f"{target}: the object alone ({value:.2f})")
    ax.set(xlabel="block", ylabel="held-out probe accuracy", ylim=(0, 1.02),
           title="What the local feature at the object encodes, per block")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
