"""Figures for the reach study (``lgd reach-study``): accuracy against distance, and the far end per block."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..stats import t_interval
from ..viz.figcheck import provenance_footer
from ..viz.causal_plots import VARIANT_COLOURS, VARIANT_LABELS
from .study import CONTEXT_VARIANTS

OFFSETS = {"both": -0.09, "none": -0.06, "global_to_local": -0.03, "local_to_global": 0.0, "se": 0.03,
           "nonlocal": 0.06, "gc": 0.09}


def _mean_ci(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval (the mean itself for fewer than two values)."""
    mean, low, high = t_interval(values)
    return (mean, mean, mean) if np.isnan(low) else (mean, low, high)


def _dots(ax, x, values, colour, label=None, bounds=(-np.inf, np.inf)):
    """One dot per seed (spread a little sideways) and the mean with its 95% t-interval (black), clipped to
    ``bounds`` (an accuracy's interval stops at 1)."""
    values = np.asarray(values, dtype=float)
    spread = np.linspace(-0.006, 0.006, len(values)) if len(values) > 1 else np.zeros(1)
    ax.scatter(x + spread, values, s=14, color=colour, alpha=0.75, zorder=3, label=label, edgecolor="none")
    mean, low, high = _mean_ci(values)
    low, high = max(low, bounds[0]), min(high, bounds[1])
    ax.errorbar(x, mean, yerr=[[mean - low], [high - mean]], fmt="_", color="black", ms=10, capsize=3, zorder=4)


def plot_dose_response(ax, levels: pd.DataFrame, runs: pd.DataFrame) -> None:
    """Local-head accuracy against distance / reach: a dot per seed, the mean and 95% interval per variant,
    the plain network's ceiling and the two single-cue lookups."""
    relative = levels.set_index("distance")["relative_distance"]
    for variant in [v for v in OFFSETS if v in set(runs["variant"])]:
        first = True
        for distance, group in runs[runs["variant"] == variant].groupby("distance"):
            _dots(ax, relative[distance] + OFFSETS[variant], group["acc_local"], VARIANT_COLOURS[variant],
                  VARIANT_LABELS[variant] if first else None, bounds=(0, 1))
            first = False
    xs = levels["relative_distance"].to_numpy()
    connected = levels["connecting_blocks"] != "none"
    last_in, first_out = xs[connected].max(initial=0.0), xs[~connected].min(initial=xs.max() + 0.12)
    edge = 1.0 if last_in < 1.0 <= first_out else (last_in + first_out) / 2      # where the ceiling drops
    ceilings = levels["ceiling_plain"].to_numpy()
    top = ceilings[connected].min() if connected.any() else 1.0
    bottom = ceilings[~connected].max() if (~connected).any() else top
    ax.plot([min(xs) - 0.15, edge, edge, max(xs) + 0.15], [top, top, bottom, bottom], color="black", lw=1.2,
            label="ceiling of the plain network")
    arrow, square = levels["lookup_arrow"].mean(), levels["lookup_object"].mean()
    if abs(arrow - square) < 1e-9:
        ax.axhline(arrow, color="grey", ls=":", lw=1, label=f"arrow alone = square alone (lookup, {arrow:.2f})")
    else:
        ax.axhline(arrow, color="grey", ls=":", lw=1, label=f"arrow alone (lookup, {arrow:.2f})")
        ax.axhline(square, color="grey", ls="-.", lw=1, label=f"square alone (lookup, {square:.2f})")
    ax.axvline(edge, color="grey", ls="--", lw=0.8)
    ax.text(edge, 1.025, "reach of the plain network ", fontsize=7, color="grey", ha="right", va="top")
    ax.set_xticks(xs, [f"{d} px\n{r:.2f}" for d, r in zip(levels["distance"], xs)], fontsize=8)
    ax.set(xlabel="distance between the cues (pixels; / reach)", ylabel="final accuracy, local head",
           ylim=(0.3, 1.03), xlim=(min(xs) - 0.15, max(xs) + 0.15),
           title="Accuracy against distance: a dot per seed; black: mean, 95% t-interval")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.95))


def _plot_per_block(ax, table: pd.DataFrame, measure: str, variants, ylabel: str, title: str):
    blocks = list(dict.fromkeys(table.loc[table["measure"] == measure, "block"]))
    width = 0.8 / max(1, len(variants))
    for j, variant in enumerate(variants):
        part = table[(table["measure"] == measure) & (table["variant"] == variant)]
        for i, block in enumerate(blocks):
            values = part.loc[part["block"] == block, "value"].to_numpy()
            if len(values):
                _dots(ax, i + (j - (len(variants) - 1) / 2) * width, values, VARIANT_COLOURS[variant],
                      VARIANT_LABELS[variant] if i == 0 else None)
    ax.set_xticks(range(len(blocks)), blocks, fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    return blocks


def plot_far_end(causal: pd.DataFrame, measure: str, ylabel: str, title: str, lines: dict | None = None,
                 ylim=None, symlog: float | None = None) -> Figure:
    """One far-end measurement per block (a dot per seed; black: mean and 95% t-interval per variant) with
    reference ``lines`` ({label: (value, style)}); ``symlog`` sets a symmetric-log axis with that linear range."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.subplots()
    variants = [v for v in OFFSETS if v in set(causal.loc[causal["measure"] == measure, "variant"])]
    _plot_per_block(ax, causal, measure, variants, ylabel, title)
    if symlog:
        ax.set_yscale("symlog", linthresh=symlog)
        ax.set_ylim(bottom=0)
    for label, (value, style) in (lines or {}).items():
        ax.axhline(value, color="black" if style == "-" else "grey", ls=style, lw=1, label=label)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_reach_study(levels: pd.DataFrame, runs: pd.DataFrame, causal: pd.DataFrame, meta: dict | None = None
                     ) -> Figure:
    """(a) the dose-response; at the far end, per block and over seeds: (b) the counterfactual change out of
    the sign's reach, (c) the probe for the arrow at the object, (d) LGD's local head with U(W_xg g) fixed at
    its mean or zeroed."""
    fig = Figure(figsize=(13, 9.5), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    plot_dose_response(a, levels, runs)
    far = causal[causal["distance"] == levels["distance"].max()]
    variants = [v for v in OFFSETS if v in set(far["variant"])]
    _plot_per_block(b, far, "cf_mean_out", variants, "mean change out of the sign's reach\n(|x - x_cf| / mean |x|, "
               "symlog)", "(b) Far end: mirror the arrow; change where no conv reaches")
    b.set_yscale("symlog", linthresh=1e-5)
    b.set_ylim(bottom=0)
    b.legend(fontsize=7, loc="upper left")
    _plot_per_block(c, far, "probe_arrow", variants, "held-out accuracy of a linear probe",
               "(c) Far end: the arrow read at the square's feature")
    alone = far.loc[far["measure"] == "probe_object_only", "value"].mean()
    c.axhline(alone, color="grey", ls=":", lw=1, label=f"the square alone (lookup, {alone:.2f})")
    c.set_ylim(0.3, 1.03)
    c.legend(fontsize=7, loc="upper left")
    lgd = far[far["variant"] == "both"]
    kinds = {"acc_fixed_mean": ("tab:green", "U(W_xg g) fixed at its mean"), "acc_zeroed": ("tab:brown", "zeroed")}
    blocks = list(dict.fromkeys(lgd.loc[lgd["measure"] == "acc_fixed_mean", "block"]))
    for j, (kind, (colour, label)) in enumerate(kinds.items()):
        for i, block in enumerate(blocks):
            values = lgd[(lgd["measure"] == kind) & (lgd["block"] == block)]["value"].to_numpy()
            _dots(d, i + (j - 0.5) * 0.3, values, colour, label if i == 0 else None)
    intact = lgd[lgd["measure"] == "acc_intact"]["value"]
    if len(intact):
        d.axhline(intact.mean(), color=VARIANT_COLOURS["both"], lw=1, label="LGD intact (mean over seeds)")
    d.axhline(levels["ceiling_plain"].iloc[-1], color="black", lw=1.2, label="ceiling of the plain network")
    d.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    d.set_xticks(range(len(blocks)), [b_.replace("all", "all blocks") for b_ in blocks], fontsize=8)
    d.set(ylabel="accuracy, local head", ylim=(0.3, 1.03),
          title="(d) Far end, LGD: cut the global-to-local term per block")
    d.legend(fontsize=7, loc="lower left", ncol=2)
    if meta:
        provenance_footer(fig, f"{meta.get('command', '')} @ {meta.get('commit', '')}; {meta.get('machine', '')}; "
                               f"{meta.get('seconds', 0) / 60:.0f} min")
    return fig


def plot_signpost_reach(frame: np.ndarray, layout: dict, sign_reach: list, object_reach: list, names: list[str]
                        ) -> Figure:
    """The strip (one frame) and, per block, the columns whose receptive field touches the sign (red) or the
    object's track (blue); purple where one position sees both."""
    fig = Figure(figsize=(11, 1.2 + 0.55 * len(names)), layout="constrained")
    axes = fig.subplots(len(names) + 1, 1, gridspec_kw={"height_ratios": [2.2] + [1] * len(names)})
    width = layout["width"]
    axes[0].imshow(frame, extent=(0, width, layout["height"], 0), aspect="auto")
    axes[0].add_patch(Rectangle((0, 0), layout["sign_width"], layout["height"], fill=False, ec="red", lw=1.5))
    x0 = layout["start"]
    axes[0].add_patch(Rectangle((x0, 0), layout["room"] + layout["object_size"], layout["height"], fill=False,
                                ec="tab:blue", lw=1.5, ls="--"))
    axes[0].set_title(f"distance {layout['distance']} px: the sign's box (red) and the square's track (between the "
                      "dashed blue lines)", fontsize=9)
    axes[0].set_yticks([])
    for ax, name, s_r, o_r in zip(axes[1:], names, sign_reach, object_reach):
        s_r, o_r = np.asarray(s_r), np.asarray(o_r)
        s_cols, o_cols = s_r.any(axis=(0, 1)), o_r.any(axis=(0, 1))
        both_cols = (s_r & o_r).any(axis=(0, 1))                      # one position reached from both
        colours = np.ones((1, len(s_cols), 3))
        colours[0, s_cols] = (0.95, 0.55, 0.5)
        colours[0, o_cols] = (0.55, 0.7, 0.95)
        colours[0, s_cols & o_cols & ~both_cols] = (0.75, 0.62, 0.72)
        colours[0, both_cols] = (0.55, 0.2, 0.6)
        ax.imshow(colours, extent=(0, width, 1, 0), aspect="auto")
        both = int(both_cols.sum())
        ax.set_yticks([0.5], [name], fontsize=8)
        ax.set_xticks([])
        side = ax.twinx()
        side.set_yticks([0.5], [f"{both} feature column(s) see both" if both else "no position sees both"],
                        fontsize=8)
        side.set_ylim(1, 0)
    ticks = np.linspace(0, width, 5).round()
    axes[0].set_xticks(ticks, [f"{v:.0f}" for v in ticks], fontsize=8)
    axes[-1].set_xticks(ticks, [f"{v:.0f}" for v in ticks], fontsize=8)
    axes[-1].set_xlabel("column (pixels). Red: reached from the sign; blue: from the square's track; white: neither;\n"
                        "grey-violet: from both, at different positions; purple: one position reached from both",
                        fontsize=8)
    return fig


def plot_strip_counterfactual(frame: np.ndarray, frame_cf: np.ndarray, results: dict, reach: list,
                              names: list[str], object_box=None) -> Figure:
    """Rows: the clip's middle frame, its counterfactual, then per model and block the change of every local
    position (mean over temporal positions; white: exactly 0), with the border of the columns a convolution
    connects to the sign in cyan (the sign's box fills whole columns)."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    heat_rows = [(model, b) for model in results for b in range(len(names))]
    fig = Figure(figsize=(11, 1.0 * (2 + len(heat_rows)) + 0.6), layout="constrained")
    axes = fig.subplots(2 + len(heat_rows), 1)
    for ax, image, title in ((axes[0], frame, "clip (middle frame)"),
                             (axes[1], frame_cf, "counterfactual: the arrow mirrored, nothing else changed")):
        ax.imshow(image, aspect="auto")
        if object_box is not None:
            y, x, size = object_box
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, ec="white", lw=1.2))
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    vmax = max(float(r.change[b].max()) for r in results.values() for b in range(len(names))) or 1.0
    norm = LogNorm(vmin=min(1e-5, vmax / 10), vmax=vmax)
    cmap = colormaps["magma"].with_extremes(bad="white", under=colormaps["magma"](0.0))
    image = None
    for ax, (model, b) in zip(axes[2:], heat_rows):
        change = results[model].change[b][0].mean(0).numpy()
        height, width = frame.shape[:2]
        image = ax.imshow(np.ma.masked_less_equal(change, 0.0), cmap=cmap, norm=norm, aspect="auto",
                          extent=(-0.5, width - 0.5, height - 0.5, -0.5))               # pixel coordinates
        reached = reach[b].any(0).any(0).numpy()                                  # per column of the map
        for edge in np.flatnonzero(reached[1:] != reached[:-1]):
            ax.axvline((edge + 1) * width / len(reached) - 0.5, color="cyan", lw=1.5)
        ax.set_ylabel(f"{model}\n{names[b]}", fontsize=8, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[2:].tolist(), fraction=0.03, extend="min",
                 label="||x - x_cf|| / mean ||x||\n(log scale; white: exactly 0)")
    fig.suptitle("How much each local feature moves when only the arrow is mirrored. Cyan: the border of the "
                 "positions a convolution connects to the sign", fontsize=9)
    return fig


def plot_strip_fields(fields: dict, names: list[str], frame: np.ndarray, centre) -> Figure:
    """Rows: blocks; columns: models. The normalised |gradient| of the local feature at the object (+) with
    respect to the input pixels, over the clip's middle frame."""
    models = list(fields)
    fig = Figure(figsize=(5.5 * len(models) + 1, 0.95 * len(names) + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(names), len(models), squeeze=False))
    image = None
    for c, model in enumerate(models):
        for r, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(frame, alpha=0.5)
            image = ax.imshow(fields[model][r].numpy(), cmap="viridis", alpha=0.8, vmin=0, vmax=1)
            ax.plot(centre[1], centre[0], "w+", ms=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(model, fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, label="|d feature / d pixel|\n/ its maximum")
    fig.suptitle("Effective receptive field of the local feature at the object (+), per block", fontsize=9)
    return fig


def plot_competitors(levels: pd.DataFrame, runs: pd.DataFrame, causal: pd.DataFrame, meta: dict | None = None
                     ) -> Figure:
    """LGD, the plain network and the other ways to bring in global context (``models.context``): (a) accuracy
    at the near and the far end; (b) non-local attention: how far apart two query positions' maps are, against
    one position's maps in two clips; (c) each block's term fixed at its mean: the drop of the local head;
    (d) the arrow read at the square's feature, far end."""
    fig = Figure(figsize=(13, 9), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    near, far = int(levels["distance"].min()), int(levels["distance"].max())
    variants = [v for v in ("both", "none", *CONTEXT_VARIANTS) if v in set(runs["variant"])]
    for j, (end, distance) in enumerate((("near", near), ("far", far))):
        for i, v in enumerate(variants):
            values = runs[(runs["distance"] == distance) & (runs["variant"] == v)]["acc_local"]
            if len(values):
                _dots(a, j * (len(variants) + 1) + i, values, VARIANT_COLOURS[v], VARIANT_LABELS[v] if j == 0 else None,
                      bounds=(0, 1))
    ceiling = float(levels.set_index("distance").loc[far, "ceiling_plain"])
    span = len(variants)
    a.plot([span + 0.5, 2 * span + 0.5], [ceiling, ceiling], color="black", lw=1.2,
           label=f"ceiling of the plain network at the far end ({ceiling:.2f})")
    a.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    a.set_xticks([(span - 1) / 2, span + 1 + (span - 1) / 2], [f"near end ({near} px)", f"far end ({far} px)"])
    a.set(ylabel="final accuracy, local head", ylim=(0.3, 1.05),
          title="(a) Accuracy: a dot per seed; black: mean, 95% t-interval")
    a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)   # below: the dots reach 1.0

    nl = causal[(causal["distance"] == far) & causal["measure"].isin(["nl_js_query", "nl_js_clip"])]
    blocks = list(dict.fromkeys(nl["block"]))
    kinds = {"nl_js_query": ("tab:pink", "two query positions, one clip"),
             "nl_js_clip": ("grey", "one query position, two clips")}
    for j, (measure, (colour, label)) in enumerate(kinds.items()):
        for i, block in enumerate(blocks):
            values = nl[(nl["measure"] == measure) & (nl["block"] == block)]["value"]
            _dots(b, i + (j - 0.5) * 0.3, values, colour, label if i == 0 else None, bounds=(0, 1))
    b.set_xticks(range(len(blocks)), blocks)
    b.set(ylabel="Jensen-Shannon distance between attention maps\n(0: the same map, 1: disjoint)", ylim=(0, 1.05),
          title="(b) Non-local blocks, far end: one attention map for every query?")
    b.legend(fontsize=7, loc="lower right")

    with_terms = [v for v in ("both", "gc", "se", "nonlocal") if v in variants]
    for j, (end, distance) in enumerate((("near", near), ("far", far))):
        here = causal[(causal["distance"] == distance) & (causal["block"] == "all")]
        for i, v in enumerate(with_terms):
            table = here[here["variant"] == v].pivot_table(index="seed", columns="measure", values="value")
            if "acc_fixed_mean" in table:
                _dots(c, j * (len(with_terms) + 1) + i, table["acc_intact"] - table["acc_fixed_mean"],
                      VARIANT_COLOURS[v], VARIANT_LABELS[v] if j == 0 else None)
    c.axhline(0, color="grey", lw=0.8)
    c.set_xticks([(len(with_terms) - 1) / 2, len(with_terms) + 1 + (len(with_terms) - 1) / 2],
                 [f"near end ({near} px)", f"far end ({far} px)"])
    c.set(ylabel="accuracy intact - with every term fixed at its mean",
          title="(c) Does the context say something about this clip? Fix it at its mean")
    c.legend(fontsize=7, loc="best")

    probe = causal[(causal["distance"] == far) & (causal["measure"] == "probe_arrow")]
    _plot_per_block(d, probe, "probe_arrow", [v for v in variants if v in set(probe["variant"])],
                    "held-out accuracy of a linear probe", "(d) Far end: the arrow read at the square's feature")
    alone = causal.loc[(causal["distance"] == far) & (causal["measure"] == "probe_object_only"), "value"].mean()
    d.axhline(alone, color="grey", ls=":", lw=1, label=f"the square alone (lookup, {alone:.2f})")
    d.set_ylim(0.3, 1.03)
    d.legend(fontsize=7, loc="upper left", ncol=2)
    if meta:
        provenance_footer(fig, f"{meta.get('command', '')} @ {meta.get('commit', '')}; {meta.get('machine', '')}")
    return fig
