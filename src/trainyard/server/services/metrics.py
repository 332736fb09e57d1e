"""Tracking: log metric points and params for a run; read summaries and histories.

A batch is applied in one transaction: all its points or none. A batch id, when given, is
recorded in that transaction, so a client that retries after a lost reply (same id) never
duplicates points. Runs that have finished accept nothing more (409): what a finished run
shows is final.
"""

from __future__ import annotations

import time as clock
from collections.abc import Mapping, Sequence
from typing import Any

from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError
from trainyard.core.metrics import (
    MAX_BATCH_POINTS,
    MetricPoint,
    MetricSeries,
    MetricSummary,
    check_key,
    check_value,
    downsample,
    param_text,
)
from trainyard.core.status import TERMINAL_STATUSES, RunStatus
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.runs import load_run
from trainyard.server.store import Session
from trainyard.server.store import metrics as store
from trainyard.server.store.tables import MetricSeriesRow, RunRow

__all__ = [
    "MAX_CHART_POINTS",
    "get_history",
    "list_metrics",
    "list_params",
    "log_batch",
    "log_params",
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
    now = clock.time()
    by_key: dict[str, tuple[list[float], list[int | None], list[float]]] = {}
    for p in points:
        key = check_key(p.key)
        value = check_value(key, p.value, p.step)
        columns = by_key.setdefault(key, ([], [], []))
        columns[0].append(value)
        columns[1].append(p.step)
        columns[2].append(p.time if p.time is not None else now)
    with ctx.db.write() as session:
        row = load_run(session, run_id, light=True)
        _check_open(row, "metrics")
        if batch_id is not None and not store.claim_batch(session, run_id, batch_id):
            return 0, True
        store.append_batch(session, run_id, dict(by_key))
    return len(points), False


def log_params(ctx: ServiceContext, run_id: int, params: Mapping[str, Any]) -> dict[str, str]:
    """Store the run's params as text; logging a key again with the same value is fine,
    with another value is ConflictError (params are immutable) and nothing is written."""
    texts = {check_key(k, "param"): param_text(k, v) for k, v in params.items()}
    with ctx.db.write() as session:
        row = load_run(session, run_id, light=True)
        _check_open(row, "params")
        clashes = store.upsert_params(session, run_id, texts)
        if clashes:
            key, old = next(iter(sorted(clashes.items())))
            raise ConflictError(
                f"param {key!r} of run {run_id} is already {old!r}; params cannot change once "
                f"logged (not to {texts[key]!r}): log the new value under another key",
                fields={"key": key, "logged": old, "new": texts[key]},
            )
    return texts


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


def get_history(
    ctx: ServiceContext,
    run_id: int,
    key: str,
    *,
    max_points: int | None = None,
    min_step: int | None = None,
    max_step: int | None = None,
) -> MetricSeries:
    """The points of one metric by step (all, or those in [min_step, max_step]); with
    ``max_points``, downsampled to at most that many (min/max per bucket)."""
    if max_points is not None and not 3 <= max_points <= MAX_CHART_POINTS:
        raise InvalidInputError(
            f"max_points must be between 3 and {MAX_CHART_POINTS}, not {max_points}",
            fields={"max_points": max_points},
        )
    with ctx.db.read() as session:
        load_run(session, run_id, light=True)
        series = _load_series(session, run_id, key)
        points = store.read_points(session, series.id, min_step=min_step, max_step=max_step)
    steps, times, values = list(points.steps), list(points.times), list(points.values)
    total = len(steps)
    if max_points is not None and total > max_points:
        return MetricSeries(
            key=key,
            points=downsample(steps, times, values, max_points),
            total=total,
            downsampled=True,
        )
    return MetricSeries(key=key, points=list(zip(steps, times, values, strict=True)), total=total)
