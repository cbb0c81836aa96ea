"""Training and evaluation plots with seaborn and pandas.

- ``read_metrics`` / ``plot_learning_curves``: the metrics CSV written during
  training (columns epoch, step, split, loss, acc1, lr, clips_per_s,
  data_wait_frac; any of them may be missing).
- ``confusion_matrix`` / ``plot_confusion``; ``per_class_accuracy`` / ``plot_per_class_accuracy``.
- ``plot_ablation``: one bar per variant (mean over seeds) with the spread
  over seeds (standard deviation) and every seed as a point.

Each ``plot_*`` returns the Figure and, given ``path``, also writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figcheck import write_figure

METRIC_COLUMNS = ("loss", "acc1", "lr", "clips_per_s", "data_wait_frac")
METRIC_LABELS = {"loss": "loss", "acc1": "top-1 accuracy", "lr": "learning rate",
                 "clips_per_s": "clips / s", "data_wait_frac": "fraction of time waiting for data"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _finish(fig, path):
    if path is not None:
        write_figure(fig, Path(path), dpi=120)
    return fig


def read_metrics(source) -> pd.DataFrame:
    """The metrics table from a CSV path or a DataFrame; numeric columns coerced, missing ones tolerated.

    Without ``split`` every row counts as "train"; without ``epoch`` or ``step``
    the row number stands in for ``step``.
    """
    frame = source.copy() if isinstance(source, pd.DataFrame) else pd.read_csv(source)
    for column in ("epoch", "step", *METRIC_COLUMNS):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if "split" not in frame:
        frame["split"] = "train"
    frame["split"] = frame["split"].fillna("train").astype(str)
    if "epoch" not in frame and "step" not in frame:
        frame["step"] = np.arange(len(frame))
    return frame


def plot_learning_curves(source, path=None, x: str | None = None, metrics=None):
    """One panel per metric present (loss, acc1, lr, clips_per_s, data_wait_frac), a line per split.

    ``x`` defaults to ``global_step`` when present (``step`` restarts every
    epoch), else ``step``, else ``epoch``. Raises ValueError if none of the
    metrics is in the table.
    """
    import seaborn as sns

    frame = read_metrics(source)
    if x is None:
        x = next((c for c in ("global_step", "step") if c in frame and frame[c].notna().any()), "epoch")
    if x not in frame:
        raise ValueError(f"no {x!r} column in the metrics table (columns: {', '.join(frame.columns)})")
    wanted = METRIC_COLUMNS if metrics is None else tuple(metrics)
    present = [m for m in wanted if m in frame and frame[m].notna().any()]
    if not present:
        raise ValueError(f"none of {', '.join(wanted)} in the metrics table (columns: {', '.join(frame.columns)})")
    fig = _figure(4.0 * min(len(present), 3), 3.0 * ((len(present) + 2) // 3))
    axes = np.atleast_1d(fig.subplots((len(present) + 2) // 3, min(len(present), 3), squeeze=False)).ravel()
    for ax, metric in zip(axes, present):
        data = frame.dropna(subset=[x, metric])
        sns.lineplot(data=data, x=x, y=metric, hue="split", marker="o" if len(data) < 40 else None,
                     errorbar=None, ax=ax)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        if metric == "lr" and (data[metric] > 0).all():
            ax.set_yscale("log")
    for ax in axes[len(present):]:
        ax.set_visible(False)
    return _finish(fig, path)


def _labels(y_true, y_pred, num_classes=None):
    y_true, y_pred = np.asarray(y_true, dtype=int).ravel(), np.asarray(y_pred, dtype=int).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if (y_true < 0).any() or (y_pred < 0).any() or (y_true >= num_classes).any() or (y_pred >= num_classes).any():
        raise ValueError(f"labels must be in [0, {num_classes})")
    return y_true, y_pred, num_classes


def confusion_matrix(y_true, y_pred, num_classes: int | None = None, normalize: bool = False) -> np.ndarray:
    """Counts (K, K), rows = true class, columns = predicted; with ``normalize`` each row sums to 1 (empty rows 0)."""
    y_true, y_pred, num_classes = _labels(y_true, y_pred, num_classes)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    if normalize:
        rows = matrix.sum(1, keepdims=True)
        return np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    return matrix


def per_class_accuracy(y_true, y_pred, class_names=None, num_classes: int | None = None) -> pd.DataFrame:
    """One row per class: class, support, correct, accuracy (NaN where a class has no examples)."""
    if class_names is not None and num_classes is None:
        num_classes = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(1)
    correct = np.diag(matrix)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(matrix))]
    accuracy = np.where(support > 0, correct / np.maximum(support, 1), np.nan)
    return pd.DataFrame({"class": names, "support": support, "correct": correct, "accuracy": accuracy})


def plot_confusion(y_true, y_pred, class_names=None, normalize: bool = True, path=None, annotate=None):
    """Confusion-matrix heat map (rows true, columns predicted); numbers shown for up to 20 classes."""
    import seaborn as sns

    num_classes = len(class_names) if class_names is not None else None
    matrix = confusion_matrix(y_true, y_pred, num_classes, normalize=normalize)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(matrix))]
    size = min(3 + 0.45 * len(names), 16)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    annotate = len(names) <= 20 if annotate is None else annotate
    sns.heatmap(pd.DataFrame(matrix, index=names, columns=names), annot=annotate,
                fmt=".2f" if normalize else "d", cmap="Blues", vmin=0, vmax=1 if normalize else None,
                square=True, cbar=True, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (rows sum to 1)" if normalize else ""))
    return _finish(fig, path)


def plot_per_class_accuracy(y_true, y_pred, class_names=None, path=None, sort: bool = True):
    """Horizontal bars of per-class accuracy, with the mean over classes as a dashed line."""
    import seaborn as sns

    table = per_class_accuracy(y_true, y_pred, class_names)
    if sort:
        table = table.sort_values("accuracy", ascending=False, na_position="last")
    longest = max((len(str(name)) for name in table["class"]), default=0)
    fig = _figure(max(6.0, 3.5 + 0.075 * longest), 1.4 + 0.25 * len(table))    # room for long class names
    ax = fig.add_subplot()
    sns.barplot(data=table, y="class", x="accuracy", color="tab:blue", ax=ax)
    mean = table["accuracy"].mean()
    if np.isfinite(mean):
        ax.axvline(mean, color="k", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1.02)                                  # a mean of 1.0 stays visible, off the frame
    ax.set_title("per-class accuracy" + (f"\n(dashed: mean over classes, {mean:.3f})" if np.isfinite(mean) else ""),
                 fontsize=10)
    return _finish(fig, path)


def plot_ablation(results, metric: str = "acc1", variant: str = "variant", seed: str = "seed", path=None,
                  order=None):
    """Bars: mean ``metric`` per ``variant`` over seeds, error bars = standard deviation over seeds, dots = seeds.

    ``results``: a DataFrame (or a CSV path / list of dicts) with columns
    ``variant``, ``seed`` (optional) and ``metric``.
    """
    import seaborn as sns

    if isinstance(results, (str, Path)):
        frame = pd.read_csv(results)
    else:
        frame = pd.DataFrame(results)
    for column in (variant, metric):
        if column not in frame:
            raise ValueError(f"no {column!r} column in the ablation table (columns: {', '.join(frame.columns)})")
    import textwrap

    frame = frame.dropna(subset=[metric])
    order = list(order) if order is not None else list(dict.fromkeys(frame[variant]))
    counts = frame[variant].value_counts()
    fig = _figure(2.0 + 1.6 * len(order), 3.9)
    ax = fig.add_subplot()
    sns.barplot(data=frame, x=variant, y=metric, order=order, errorbar="sd", capsize=0.2,
                color="tab:blue", alpha=0.7, ax=ax)
    sns.stripplot(data=frame, x=variant, y=metric, order=order, color="k", size=4, jitter=0.1, ax=ax)
    labels = ["\n".join(textwrap.wrap(str(name), 16)) + f"\n(n={counts.get(name, 0)})" for name in order]
    ax.set_xticks(range(len(order)), labels, fontsize=8)
    ax.set_title(f"{metric}: mean over runs (bars), each run (dots);\nerror bars: s.d. over the runs of a bar "
                 "(none for one run)", fontsize=9)
    ax.set_xlabel("")
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    return _finish(fig, path)
