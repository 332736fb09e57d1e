"""Tracking: log metric points and params for a run; read summaries and histories.

A batch is applied in one transaction: all its points or none. A batch id, when given, is
recorded in that transaction, so a client that retries after a lost reply (same id) never
duplicates points. Runs that have finished accept nothing more (409): what a finished run
shows is final.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Mapping, Sequence
from typing import Any

from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError
from trainyard.core.metrics import (
    MAX_BATCH_POINTS,
    MAX_INTERVAL,
    MetricPoint,
    MetricSeries,
    MetricSummary,
    aggregate,
    check_key,
    check_value,
    downsample,
    param_text,
)
from trainyard.core.status import TERMINAL_STATUSES, RunStatus
from trainyard.executors.base import ResourceSample
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.runs import load_run
from trainyard.server.store import Session
from trainyard.server.store import metrics as store
from trainyard.server.store import runs as run_store
from trainyard.server.store.tables import MetricSeriesRow, RunRow

__all__ = [
    "MAX_CHART_POINTS",
    "get_history",
    "list_metrics",
    "list_params",
    "log_batch",
    "log_params",
    "log_rows",
    "metric_columns",
    "store_resource_samples",
    "system_key",
    "write_params",
    "write_points",
]

MAX_CHART_POINTS = 100_000
_BATCH_ID_MAX = 64


def _check_open(row: RunRow, what: str) -> None:
    if RunStatus(row.status) in TERMINAL_STATUSES:
        ref = f"{row.project.name}/{row.task.name}#{row.build_id}"
        raise ConflictError(
            f"run {row.id} ({ref}) is {row.status}: it accepts no more {what}; log to a run "
            "that is still going",
            fields={"run_id": row.id, "status": row.status},
        )


def log_batch(
    ctx: ServiceContext,
    run_id: int,
    points: Sequence[MetricPoint],
    *,
    batch_id: str | None = None,
) -> tuple[int, bool]:
    """Store ``points`` (all or none); (points accepted, whether the batch was a duplicate).

    InvalidInputError for a bad key or value (naming it and its step) or a batch over
    :data:`MAX_BATCH_POINTS`; NotFoundError for an unknown run; ConflictError once the run
    has finished.
    """
    if len(points) > MAX_BATCH_POINTS:
        raise InvalidInputError(
            f"{len(points)} points in one batch; send at most {MAX_BATCH_POINTS} per request",
            fields={"points": len(points), "limit": MAX_BATCH_POINTS},
        )
    if batch_id is not None and not 0 < len(batch_id) <= _BATCH_ID_MAX:
        raise InvalidInputError(
            f"batch_id must be 1 to {_BATCH_ID_MAX} characters", fields={"batch_id": batch_id}
        )
    rows = [(p.key, p.value, p.step, p.time) for p in points]
    return log_rows(ctx, run_id, rows, batch_id=batch_id)


def log_rows(
    ctx: ServiceContext,
    run_id: int,
    rows: Sequence[tuple[Any, Any, Any, Any]],
    *,
    batch_id: str | None = None,
) -> tuple[int, bool]:
    """:func:`log_batch` for points as ``(key, value, step, time)`` tuples straight from a
    decoded JSON body (no model per point: a batch of 10,000 costs no 10,000 objects).
    Types are checked here, with the point's index in the message."""
    by_key = metric_columns(rows)
    with ctx.db.write() as session:
        row = load_run(session, run_id, light=True)
        _check_open(row, "metrics")
        if batch_id is not None and not store.claim_batch(session, run_id, batch_id):
            return 0, True
        store.append_batch(session, run_id, by_key)
    return len(rows), False


def metric_columns(rows: Sequence[tuple[Any, Any, Any, Any]]) -> dict[str, store.Columns]:
    """Points as ``(key, value, step, time)`` tuples checked and grouped by key (values,
    steps, times); InvalidInputError naming the first bad one. A time of None is now."""
    if len(rows) > MAX_BATCH_POINTS:
        raise InvalidInputError(
            f"{len(rows)} points in one batch; send at most {MAX_BATCH_POINTS} per request",
            fields={"points": len(rows), "limit": MAX_BATCH_POINTS},
        )
    now = clock.time()
    by_key: dict[str, tuple[list[float], list[int | None], list[float]]] = {}
    for i, (key, value, step, when) in enumerate(rows):
        columns = by_key.get(key) if type(key) is str else None
        if columns is None:  # a key not seen in this batch (or not a string): check it
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"points[{i}].key must be a string, not {type(key).__name__}",
                    fields={"index": i},
                )
            columns = by_key[check_key(key)] = ([], [], [])
        # The common types first: exact int / float checks are the fast path.
        if step is not None and type(step) is not int:
            raise InvalidInputError(
                f"points[{i}].step must be an integer or null, not {step!r}",
                fields={"index": i, "key": key},
            )
        if when is None:
            when = now
        elif type(when) is not float and (type(when) is not int):
            raise InvalidInputError(
                f"points[{i}].time must be epoch seconds (a number) or null, not {when!r}",
                fields={"index": i, "key": key},
            )
        columns[0].append(check_value(key, value, step))
        columns[1].append(step)
        columns[2].append(float(when))
    return dict(by_key)


def write_points(session: Session, row: RunRow, by_key: dict[str, store.Columns]) -> None:
    """Store points checked by :func:`metric_columns` in the caller's transaction
    (ConflictError once the run has finished)."""
    _check_open(row, "metrics")
    store.append_batch(session, row.id, by_key)


def write_params(session: Session, row: RunRow, texts: Mapping[str, str]) -> None:
    """Store params (as text, keys checked) in the caller's transaction; ConflictError for a
    key logged before with another value (params are immutable) or a finished run."""
    _check_open(row, "params")
    clashes = store.upsert_params(session, row.id, dict(texts))
    if clashes:
        key, old = next(iter(sorted(clashes.items())))
        raise ConflictError(
            f"param {key!r} of run {row.id} is already {old!r}; params cannot change once "
            f"logged (not to {texts[key]!r}): log the new value under another key",
            fields={"key": key, "logged": old, "new": texts[key]},
        )


def log_params(ctx: ServiceContext, run_id: int, params: Mapping[str, Any]) -> dict[str, str]:
    """Store the run's params as text; logging a key again with the same value is fine,
    with another value is ConflictError (params are immutable) and nothing is written."""
    texts = {check_key(k, "param"): param_text(k, v) for k, v in params.items()}
    with ctx.db.write() as session:
        write_params(session, load_run(session, run_id, light=True), texts)
    return texts


def system_key(replica: str, name: str) -> str:
    """The metric key of a replica's resource measurement: ``system/worker-0/cpu_percent``."""
    return f"system/{replica}/{name}"


def store_resource_samples(
    ctx: ServiceContext,
    run_id: int,
    samples: Sequence[ResourceSample],
    *,
    cursor: int,
    next_cursor: int,
) -> int | None:
    """Store the executor's resource samples of a run, read from ``cursor`` to
    ``next_cursor``, as points of its ``system/<replica>/<name>`` metrics (step: the
    replica's sample number; time: the sample's), and move the run's resource cursor there,
    in ONE transaction: each sample is stored exactly once, whatever crashes or servers
    come between.

    Returns the run's cursor afterwards: ``next_cursor``, or where the cursor really is when
    it was not at ``cursor`` (another server stored those samples; nothing is stored then),
    or None when the run is gone. Unlike what clients log, these are accepted from a run
    that has finished: the last samples may be read after its end was recorded. A value
    under a key that is not a valid metric key is left out.
    """
    by_key: dict[str, tuple[list[float], list[int | None], list[float]]] = {}
    for sample in samples:
        for name, value in sample.values.items():
            key = system_key(sample.replica, name)
            try:
                number = check_value(key, value, sample.seq)
                columns = by_key.get(key)
                if columns is None:
                    columns = by_key[check_key(key)] = ([], [], [])
            except InvalidInputError:
                continue
            columns[0].append(number)
            columns[1].append(sample.seq)
            columns[2].append(sample.time)
    with ctx.db.write() as session:
        if not run_store.update_resource_cursor(session, run_id, cursor, next_cursor):
            return run_store.get_resource_cursor(session, run_id)
        store.append_batch(session, run_id, dict(by_key))
    return next_cursor


def _summary(row: MetricSeriesRow) -> MetricSummary:
    return MetricSummary(
        key=row.key,
        count=row.count,
        last_value=row.last_value,
        last_step=row.last_step,
        last_time=row.last_time,
        min_value=row.min_value,
        max_value=row.max_value,
        first_time=row.first_time,
    )


def list_metrics(ctx: ServiceContext, run_id: int) -> list[MetricSummary]:
    with ctx.db.read() as session:
        load_run(session, run_id, light=True)
        return [_summary(r) for r in store.list_series(session, [run_id])]


def list_params(ctx: ServiceContext, run_id: int) -> dict[str, str]:
    with ctx.db.read() as session:
        load_run(session, run_id, light=True)
        return {r.key: r.value for r in store.list_params(session, [run_id])}


def _load_series(session: Session, run_id: int, key: str) -> MetricSeriesRow:
    series = store.get_series(session, run_id, key)
    if series is None:
        known = [r.key for r in store.list_series(session, [run_id])]
        listed = ", ".join(known[:20]) or "none yet"
        raise NotFoundError(
            f"run {run_id} has no metric {key!r} (its metrics: {listed})",
            fields={"run_id": run_id, "key": key},
        )
    return series


def _check_window(min_time: float | None, max_time: float | None, interval: int | None) -> None:
    """InvalidInputError (400) naming the parameter and its range for a bad time window or
    aggregation interval."""
    for name, value in (("min_time", min_time), ("max_time", max_time)):
        if value is not None and not math.isfinite(value):
            raise InvalidInputError(
                f"{name} must be a finite number of epoch seconds, not {value}",
                fields={name: str(value)},
            )
    if min_time is not None and max_time is not None and min_time > max_time:
        raise InvalidInputError(
            f"min_time ({min_time}) is after max_time ({max_time}): give a window with "
            "min_time <= max_time",
            fields={"min_time": min_time, "max_time": max_time},
        )
    if interval is not None and not 1 <= interval <= MAX_INTERVAL:
        raise InvalidInputError(
            f"interval must be between 1 and {MAX_INTERVAL} seconds, not {interval}",
            fields={"interval": interval},
        )


def get_history(
    ctx: ServiceContext,
    run_id: int,
    key: str,
    *,
    max_points: int | None = None,
    min_step: int | None = None,
    max_step: int | None = None,
    min_time: float | None = None,
    max_time: float | None = None,
    interval: int | None = None,
) -> MetricSeries:
    """The points of one metric by step: all, or those in [min_step, max_step] and
    [min_time, max_time] (epoch seconds). With ``interval`` (seconds), aggregated into one
    point per interval of epoch time (see :func:`~trainyard.core.metrics.aggregate`), in
    time order. With ``max_points``, downsampled to at most that many (min/max per bucket).
    ``total`` counts the points in the window before either."""
    if max_points is not None and not 3 <= max_points <= MAX_CHART_POINTS:
        raise InvalidInputError(
            f"max_points must be between 3 and {MAX_CHART_POINTS}, not {max_points}",
            fields={"max_points": max_points},
        )
    _check_window(min_time, max_time, interval)
    with ctx.db.read() as session:
        load_run(session, run_id, light=True)
        series = _load_series(session, run_id, key)
        points = store.read_points(
            session,
            series.id,
            min_step=min_step,
            max_step=max_step,
            min_time=min_time,
            max_time=max_time,
        )
    steps, times, values = list(points.steps), list(points.times), list(points.values)
    total = len(steps)
    if interval is not None:
        rows = aggregate(steps, times, values, interval)
        if max_points is not None and len(rows) > max_points:
            rows = downsample(
                [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], max_points
            )
        return MetricSeries(key=key, points=rows, total=total, downsampled=True, interval=interval)
    if max_points is not None and total > max_points:
        return MetricSeries(
            key=key,
            points=downsample(steps, times, values, max_points),
            total=total,
            downsampled=True,
        )
    return MetricSeries(key=key, points=list(zip(steps, times, values, strict=True)), total=total)
