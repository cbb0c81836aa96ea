"""The one statistics module: every interval a shipped result is reported with."""

import math

import numpy as np
import pytest

from lgd_tutorial.stats import clopper_pearson, median_interval, paired_differences, t_half_width, t_interval


def test_t_interval_matches_the_t_quantile_and_has_no_bounds_for_one_value():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(high - mean, 4.302653 * 1 / math.sqrt(3), rel_tol=1e-5)
    assert math.isclose(mean - low, high - mean)
    assert math.isnan(t_interval([0.5])[1]) and math.isnan(t_interval([0.5])[2])
    assert t_interval([float("nan"), 1.0, 3.0])[0] == 2.0                  # NaN values are dropped


def test_a_bounded_t_interval_is_clipped_and_falls_back_to_the_range_for_one_value():
    assert t_interval([0.9, 1.0, 1.0], bounds=(0.0, 1.0))[2] == 1.0       # an accuracy's interval stops at 1
    assert t_interval([0.9, 1.0, 1.0], bounds=(0.0, 1.0))[1] == t_interval([0.9, 1.0, 1.0])[1]
    assert t_interval([0.7], bounds=(0.0, 1.0)) == (0.7, 0.0, 1.0)
    assert t_interval([5.0], bounds=(0.0, float("inf")))[2] == float("inf")


def test_the_half_width_along_an_axis_equals_the_scalar_interval():
    values = np.array([[1.0, 10.0], [2.0, 12.0], [3.0, 17.0]])
    mean, half = t_half_width(values)
    for column in range(2):
        m, low, high = t_interval(values[:, column])
        assert mean[column] == pytest.approx(m) and half[column] == pytest.approx(high - m)
    assert (t_half_width(values[:1])[1] == 0).all()


def test_the_median_interval_comes_from_order_statistics():
    assert median_interval(range(1, 10)) == (5, 2, 8)         # n=9: P(2 <= B <= 7) = 0.961 >= 0.95
    assert median_interval([3, 1, 2]) == (2, 1, 3)            # too few repeats: the whole range
    with pytest.raises(ValueError):
        median_interval([])


def test_clopper_pearson_matches_known_intervals():
    low, high = clopper_pearson(0, 8)
    assert low == 0.0 and high == pytest.approx(0.3694, abs=1e-4)
    low, high = clopper_pearson(4, 8)
    assert (low, high) == pytest.approx((0.1570, 0.8430), abs=1e-4)


def test_paired_differences_are_taken_seed_by_seed():
    diff, (mean, low, high) = paired_differences([0.9, 0.8, 1.0], [0.7, 0.8, 0.9])
    assert diff.tolist() == pytest.approx([0.2, 0.0, 0.1]) and mean == pytest.approx(0.1)
    assert low < 0.1 < high
    with pytest.raises(ValueError, match="same length"):
        paired_differences([1.0, 2.0], [1.0])
