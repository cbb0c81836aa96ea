"""The diffusion study's figure (``lgd study``): validation accuracy over training per variant, and each
head's final accuracy per seed, with 95% t-intervals over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import t_half_width
from ..viz.causal_plots import VARIANT_COLOURS, VARIANT_LABELS
from ..viz.figcheck import provenance_footer


def plot_study(curves: pd.DataFrame, runs: pd.DataFrame, meta: dict | None = None, head: str = "local") -> Figure:
    """Left: validation accuracy of ``head`` during training, mean and 95% interval over seeds per variant.
    Right: final accuracy of every seed, per variant and head, with the mean and its 95% interval."""
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    groups = list(curves.groupby("variant", sort=False))
    for k, (variant, group) in enumerate(groups):
        table = group.pivot(index="seed", columns="epoch", values=f"acc_{head}")
        mean, half = t_half_width(table.to_numpy())
        epochs = table.columns.to_numpy(dtype=float)
        colour = VARIANT_COLOURS.get(variant)
        step = np.diff(epochs).min() if len(epochs) > 1 else 1.0
        shift = (k - (len(groups) - 1) / 2) * step * 0.12              # side by side, so the intervals stay apart
        low, high = np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)
        left.errorbar(epochs + shift, mean, yerr=[mean - low, high - mean], color=colour, marker=".", ms=4, lw=1.2,
                      capsize=2, elinewidth=0.8, label=f"{VARIANT_LABELS.get(variant, variant)} (n={len(table)})")
    left.axhline(0.25, color="grey", ls=":", lw=1, label="chance (4 classes)")
    left.axhline(0.5, color="grey", ls="--", lw=1, label="best without the beacon (50%)")
    left.set(xlabel="epoch", ylabel=f"validation accuracy ({head} head)", ylim=(0, 1.02),
             title=f"Validation accuracy, {head} head:\nmean and 95% t-interval over seeds (clipped to [0, 1])")
    left.legend(fontsize=7, loc="upper left")

    variants = list(dict.fromkeys(runs["variant"]))
    heads = ("local", "global", "combined")
    width = 0.8 / len(heads)
    for j, h in enumerate(heads):
        for i, variant in enumerate(variants):
            values = runs.loc[runs["variant"] == variant, f"acc_{h}"].to_numpy()
            x = i + (j - 1) * width
            mean, half = t_half_width(values[:, None])
            right.scatter(np.full(len(values), x), values, s=12, color=VARIANT_COLOURS.get(variant),
                          alpha=[1.0, 0.55, 0.3][j], zorder=3)
            low, high = np.clip([mean[0] - half[0], mean[0] + half[0]], 0, 1)
            right.errorbar(x, mean[0], yerr=[[mean[0] - low], [high - mean[0]]], fmt="_", color="black", capsize=3,
                           zorder=4)
    names = {"local": "loc.", "global": "glob.", "combined": "comb."}
    right.set_xticks([i + (j - 1) * width for i in range(len(variants)) for j in range(len(heads))],
                     [names[h] for _ in variants for h in heads], fontsize=7)
    below = right.secondary_xaxis(-0.09)
    below.set_xticks(range(len(variants)), [v.replace("_", " ") for v in variants], fontsize=8)
    below.tick_params(length=0)
    right.axhline(0.25, color="grey", ls=":", lw=1)
    right.axhline(0.5, color="grey", ls="--", lw=1)
    right.set(ylabel="final validation accuracy", ylim=(0, 1.02),
              title="Final accuracy per seed and head\n(loc. = local, glob. = global, comb. = their sum)")
    if meta:
        provenance_footer(fig, f"{meta.get('command', '')} @ {meta.get('commit', '')}; {meta.get('machine', '')}; "
                               f"{meta.get('seconds', 0):.0f} s")
    return fig
