"""The intervals every shipped result is reported with, in one place.

- ``t_interval``: mean and Student-t interval over seeds (optionally clipped to the measure's range, an
  accuracy's interval stops at 0 and 1);
- ``t_half_width``: the same interval's half-width along the first axis of an array (curves over seeds);
- ``median_interval``: median and a distribution-free interval from order statistics (timings, ratios);
- ``clopper_pearson``: the exact binomial interval of a proportion (how many seeds solved a task);
- ``paired_differences``: per-seed differences of two matched series, with their t-interval.

It imports nothing from the package; scipy is imported where a quantile is needed.
"""

from __future__ import annotations

import math
import statistics

import numpy as np


def t_interval(values, confidence: float = 0.95, bounds: tuple[float, float] | None = None
               ) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean, NaN values dropped; NaN bounds for fewer than 2 values.

    With ``bounds`` = (lowest, highest) the interval is clipped to them, and a bound that cannot be estimated
    (fewer than 2 values) is the range's own end.
    """
    from scipy import stats

    values = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if len(values) == 0:
        mean, low, high = float("nan"), float("nan"), float("nan")
    elif len(values) < 2:
        mean, low, high = float(values.mean()), float("nan"), float("nan")
    else:
        mean = float(values.mean())
        half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1)
                     / math.sqrt(len(values)))
        low, high = mean - half, mean + half
    if bounds is not None:
        low = bounds[0] if np.isnan(low) else max(bounds[0], low)
        high = bounds[1] if np.isnan(high) else min(bounds[1], high)
    return mean, low, high


def t_half_width(values: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(mean, half-width) of the Student-t interval along the first axis (zero width for one row)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    mean = values.mean(0)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(0, ddof=1) / np.sqrt(n)


def median_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free interval for the median from order statistics.

    For n values the interval is [x_(k), x_(n+1-k)] with the largest k whose binomial coverage
    P(k <= B <= n - k), B ~ Binomial(n, 1/2), is at least ``confidence``. With too few values for that
    (n < 6 at 95%) it is the whole range, min to max, which then covers less than ``confidence``.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    k = 0
    for j in range(1, n // 2 + 1):
        coverage = sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2 ** n
        if coverage >= confidence:
            k = j
    low, high = (xs[k - 1], xs[n - k]) if k else (xs[0], xs[-1])
    return statistics.median(xs), low, high


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a proportion."""
    from scipy import stats

    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def paired_differences(a, b, confidence: float = 0.95) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The differences ``a - b`` of two series matched element by element (one per seed), and their
    ``t_interval``: the interval of the mean difference, which is what a paired comparison reports."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired series must have the same length, got {a.shape} and {b.shape}")
    diff = a - b
    return diff, t_interval(diff, confidence)
