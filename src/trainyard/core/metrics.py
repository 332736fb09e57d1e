"""Tracked metrics and params: what a run logs about itself (the SDK, the MLflow API).

A **series** is every value logged under one key of one run (``loss``, ``val/acc``); each
point has a step (an integer, per key), a time (epoch seconds) and a value (a finite float).
A series' **summary** (count, last value and step, min, max) is kept up to date on every
write, so tables and leaderboards never read points. **Params** are a run's logged
hyper-parameters, stored as strings and immutable once logged (as in MLflow).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.errors import InvalidInputError

__all__ = [
    "MAX_BATCH_POINTS",
    "MAX_INTERVAL",
    "MAX_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "NODE_INTERVALS",
    "NODE_MAX_BUCKETS",
    "NODE_MAX_INTERVAL",
    "NODE_MAX_WINDOW",
    "NODE_MIN_WINDOW",
    "MetricPoint",
    "MetricSeries",
    "MetricSummary",
    "NodeMetricGpu",
    "NodeMetricSeries",
    "NodeMetrics",
    "aggregate",
    "auto_node_interval",
    "check_key",
    "check_value",
    "downsample",
    "param_text",
]

MAX_KEY_LENGTH = 250
MAX_BATCH_POINTS = 10_000
MAX_PARAM_VALUE_LENGTH = 6_000
MAX_INTERVAL = 86_400  # the largest aggregation interval of a history: one day
# Node metrics: windows from a minute to a week, intervals up to an hour; "auto" picks the
# smallest of NODE_INTERVALS that cuts the window into at most NODE_MAX_BUCKETS points.
NODE_MIN_WINDOW = 60
NODE_MAX_WINDOW = 7 * 86_400
NODE_MAX_INTERVAL = 3_600
NODE_INTERVALS = (10, 30, 60, 300, 900, 3_600)
NODE_MAX_BUCKETS = 360
INT64 = 2**63
_KEY = re.compile(r"^[A-Za-z0-9_\-./ :]+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricPoint(_Model):
    key: str
    value: float
    step: int | None = None  # None: the series' next step
    time: float | None = None  # epoch seconds; None: the server's time


class MetricSummary(_Model):
    key: str
    count: int
    last_value: float
    last_step: int
    last_time: float
    min_value: float
    max_value: float
    first_time: float


class MetricSeries(_Model):
    key: str
    points: list[tuple[int, float, float]] = Field(default_factory=list)  # (step, time, value)
    total: int = 0  # points in the series (or in the requested window), before aggregation
    downsampled: bool = False  # aggregated into intervals or downsampled to max_points
    interval: int | None = None  # seconds per aggregated point; None: not aggregated


class NodeMetricSeries(_Model):
    key: str  # cpu_percent, memory_mb, gpu/<node GPU index>/<field>
    unit: str  # %, MB (MiB), W, °C
    points: list[tuple[float, float]] = Field(default_factory=list)  # (bucket start, mean)


class NodeMetricGpu(_Model):
    index: int  # the GPU's index on its node (as `trainyard node ls` shows it)
    uuid: str
    product: str
    simulated: bool
    measured: bool  # it has samples in the window (never for a simulated GPU)


class NodeMetrics(_Model):
    """A node's resource samples over a window, averaged per ``interval`` seconds."""

    node: str
    window: int
    interval: int
    since: float
    until: float
    sample_interval: float  # seconds between two samples of the node
    series: list[NodeMetricSeries] = Field(default_factory=list)
    gpus: list[NodeMetricGpu] = Field(default_factory=list)
    gpu_error: str = ""  # why this server cannot read its node's GPUs ("" when it can)


@functools.lru_cache(maxsize=4096)
def _valid_key(key: str) -> bool:
    return bool(key) and len(key) <= MAX_KEY_LENGTH and bool(_KEY.match(key)) and key == key.strip()


def check_key(key: str, what: str = "metric") -> str:
    """``key`` if it is a valid metric or param name, else InvalidInputError naming it."""
    # Long keys are refused before the cache, which so holds short keys only.
    if len(key) > MAX_KEY_LENGTH or not _valid_key(key):
        shown = key if len(key) <= 60 else key[:57] + "..."
        raise InvalidInputError(
            f"{what} key {shown!r} is invalid: use 1 to {MAX_KEY_LENGTH} letters, digits and "
            "'_', '-', '.', '/', ' ', ':' (no leading or trailing space)",
            fields={"key": shown, "length": len(key)},
        )
    return key


def check_value(key: str, value: Any, step: int | None) -> float:
    """``value`` as a finite float, else InvalidInputError naming the key and step."""
    kind = type(value)
    if kind is float and (step is None or -INT64 <= step < INT64):
        if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            return float(value)
    elif kind is int and -(2**1023) < value < 2**1023 and (step is None or -INT64 <= step < INT64):
        return float(value)
    return _refuse_value(key, value, step)


def _refuse_value(key: str, value: Any, step: int | None) -> float:
    at = f" at step {step}" if step is not None else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(
            f"metric {key!r}{at}: value {value!r} is not a number",
            fields={"key": key, "step": step},
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidInputError(
            f"metric {key!r}{at}: value {number} is not a finite number; log finite values "
            "(e.g. skip the step, or clip)",
            fields={"key": key, "step": step},
        )
    if step is not None and not -INT64 <= step < INT64:
        raise InvalidInputError(
            f"metric {key!r}: step {step} does not fit in 64 bits",
            fields={"key": key, "step": step},
        )
    return number  # an int subclass or float subclass that is fine after all


def param_text(key: str, value: Any) -> str:
    """A param value as stored: its text (``True`` -> ``true``, numbers as Python writes
    them); InvalidInputError for containers or over-long values."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float) or value is None:
        text = "" if value is None else str(value)
    else:
        raise InvalidInputError(
            f"param {key!r}: {type(value).__name__} values cannot be logged; log a string or "
            "a number",
            fields={"key": key},
        )
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidInputError(
            f"param {key!r}: value of {len(text)} characters, at most "
            f"{MAX_PARAM_VALUE_LENGTH} allowed",
            fields={"key": key, "length": len(text)},
        )
    return text


def downsample(
    steps: list[int], times: list[float], values: list[float], max_points: int
) -> list[tuple[int, float, float]]:
    """At most ``max_points`` points (by step) that keep the shape of the series: the points
    are cut into ``max_points // 2`` buckets of consecutive points and each bucket keeps its
    lowest and highest value, in step order (min/max buckets: spikes are never lost, unlike
    averaging or taking every n-th point). The first and last points are always kept."""
    n = len(steps)
    if n <= max_points:
        return list(zip(steps, times, values, strict=True))
    buckets = max(1, (max_points - 2) // 2)
    out: list[tuple[int, float, float]] = [(steps[0], times[0], values[0])]
    size = (n - 2) / buckets
    for b in range(buckets):
        start = 1 + int(b * size)
        stop = 1 + int((b + 1) * size)
        if stop <= start:
            continue
        segment = values[start:stop]  # min, max and index run in C: no Python loop per point
        lo = start + segment.index(min(segment))
        hi = start + segment.index(max(segment))
        for i in sorted({lo, hi}):
            out.append((steps[i], times[i], values[i]))
    out.append((steps[-1], times[-1], values[-1]))
    return out


def auto_node_interval(window: int) -> int:
    """The smallest of :data:`NODE_INTERVALS` that gives at most :data:`NODE_MAX_BUCKETS`
    points over ``window`` seconds (the largest one beyond that)."""
    for interval in NODE_INTERVALS:
        if math.ceil(window / interval) <= NODE_MAX_BUCKETS:
            return interval
    return NODE_INTERVALS[-1]


def aggregate(
    steps: Sequence[int], times: Sequence[float], values: Sequence[float], interval: int
) -> list[tuple[int, float, float]]:
    """One point per ``interval`` seconds of epoch time that holds points: buckets start at
    multiples of ``interval`` (so every chart and every run agree on them), and each gives
    ``(largest step in it, bucket start, mean of its values)``, in time order."""
    totals: dict[int, float] = {}
    counts: dict[int, int] = {}
    largest: dict[int, int] = {}
    for step, time, value in zip(steps, times, values, strict=True):
        bucket = math.floor(time / interval)
        if bucket in counts:
            totals[bucket] += value
            counts[bucket] += 1
            if step > largest[bucket]:
                largest[bucket] = step
        else:
            totals[bucket], counts[bucket], largest[bucket] = value, 1, step
    return [(largest[b], float(b * interval), totals[b] / counts[b]) for b in sorted(counts)]
