"""History aggregation into time intervals, and the node metrics' automatic interval."""

from __future__ import annotations

import pytest

from trainyard.core.metrics import (
    NODE_INTERVALS,
    NODE_MAX_BUCKETS,
    aggregate,
    auto_node_interval,
)


def test_points_are_averaged_per_interval_aligned_on_epoch_multiples() -> None:
    # Times 95..125 with interval 10: buckets start at 90, 100, 110 and 120 (multiples of
    # 10), whatever the first point's time.
    steps = [0, 1, 2, 3, 4, 5, 6]
    times = [95.0, 99.9, 100.0, 104.0, 109.99, 118.0, 125.0]
    values = [1.0, 3.0, 10.0, 20.0, 30.0, 7.0, -1.0]
    assert aggregate(steps, times, values, 10) == [
        (1, 90.0, 2.0),
        (4, 100.0, 20.0),
        (5, 110.0, 7.0),
        (6, 120.0, -1.0),
    ]


def test_buckets_come_in_time_order_with_the_largest_step_of_each() -> None:
    # Points arrive by step, but their times are not in step order (a clock that went back).
    steps = [10, 11, 12, 13]
    times = [200.0, 50.0, 205.0, 55.0]
    values = [4.0, 1.0, 6.0, 3.0]
    assert aggregate(steps, times, values, 60) == [(13, 0.0, 2.0), (12, 180.0, 5.0)]


def test_empty_buckets_are_not_invented() -> None:
    assert aggregate([0, 1], [0.0, 3600.0], [1.0, 2.0], 60) == [(0, 0.0, 1.0), (1, 3600.0, 2.0)]
    assert aggregate([], [], [], 60) == []


def test_steps_beyond_float_precision_stay_exact() -> None:
    big = 2**62 + 1
    assert aggregate([big, big + 2], [1.0, 2.0], [0.0, 1.0], 10) == [(big + 2, 0.0, 0.5)]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (60, 10),
        (3600, 10),  # exactly 360 buckets
        (3601, 30),
        (3 * 3600, 30),
        (6 * 3600, 60),
        (86400, 300),
        (3 * 86400, 900),
        (7 * 86400, 3600),
    ],
    ids=lambda v: str(v),
)
def test_auto_node_interval_is_the_smallest_giving_at_most_360_points(
    window: int, expected: int
) -> None:
    interval = auto_node_interval(window)
    assert interval == expected
    assert -(-window // interval) <= NODE_MAX_BUCKETS
    smaller = [i for i in NODE_INTERVALS if i < interval]
    assert all(-(-window // i) > NODE_MAX_BUCKETS for i in smaller)
