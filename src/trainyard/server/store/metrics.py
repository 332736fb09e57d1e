"""Metric storage: series per (run, key) with a summary row, points packed in chunks.

Why chunks rather than a row per point (as MLflow stores them): a run logging a few keys
for 100,000 steps would be 100,000s of rows, each with its own index entries; 10⁸ points
across a project would be a table of 10⁸ rows. Packed, a chunk of up to :data:`CHUNK`
points is one row of 24 bytes per point (step int64, time float64, value float64, little
endian) plus its step, time and value ranges, so:

- appending a batch rewrites at most the series' last, partly filled chunk and adds new ones:
  one summary update and a few row writes per key, whatever the batch size;
- reading a whole history of 100,000 points is ~100 rows, decoded with ``array``;
- a window (steps a..b) reads only the chunks whose step range overlaps it, and a chart
  needing fewer points than the window holds is downsampled from those (min/max per bucket);
- tables and leaderboards read the summary rows only (count, last, min, max).

Points keep their arrival order inside a series; readers sort by step.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from trainyard.server.store._dialect import insert
from trainyard.server.store.tables import (
    MetricBatchRow,
    MetricChunkRow,
    MetricSeriesRow,
    RunParamRow,
    RunTagRow,
    utcnow,
)

__all__ = [
    "CHUNK",
    "Points",
    "append_batch",
    "claim_batch",
    "decode",
    "delete_run_metrics",
    "encode",
    "get_series",
    "list_params",
    "list_series",
    "read_points",
    "upsert_params",
]

CHUNK = 1024
_SWAP = sys.byteorder != "little"


@dataclass
class Points:
    """Columns of points (same length): steps, times, values."""

    steps: array[int]
    times: array[float]
    values: array[float]

    @classmethod
    def empty(cls) -> Points:
        return cls(array("q"), array("d"), array("d"))

    def __len__(self) -> int:
        return len(self.steps)

    def extend(self, other: Points) -> None:
        self.steps.extend(other.steps)
        self.times.extend(other.times)
        self.values.extend(other.values)

    def slice(self, start: int, stop: int) -> Points:
        return Points(self.steps[start:stop], self.times[start:stop], self.values[start:stop])


def encode(points: Points) -> bytes:
    steps, times, values = (
        array("q", points.steps),
        array("d", points.times),
        array("d", points.values),
    )
    if _SWAP:
        steps.byteswap()
        times.byteswap()
        values.byteswap()
    return steps.tobytes() + times.tobytes() + values.tobytes()


def decode(data: bytes, count: int) -> Points:
    steps, times, values = array("q"), array("d"), array("d")
    width = 8 * count
    steps.frombytes(data[:width])
    times.frombytes(data[width : 2 * width])
    values.frombytes(data[2 * width : 3 * width])
    if _SWAP:
        for part in (steps, times, values):
            part.byteswap()
    return Points(steps, times, values)


def claim_batch(session: Session, run_id: int, batch_id: str) -> bool:
    """Record that ``batch_id`` of ``run_id`` is being applied; False if it was before (the
    caller then applies nothing). In the caller's transaction, so a failed batch leaves no
    record and its retry is applied."""
    stmt = (
        insert(session, MetricBatchRow)
        .values(run_id=run_id, batch_id=batch_id, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["run_id", "batch_id"])
        .returning(MetricBatchRow.batch_id)
    )
    return session.execute(stmt).scalar() is not None


Columns = tuple[Sequence[float], Sequence[int | None], Sequence[float]]  # values, steps, times


_SERIES: Table = cast(Table, MetricSeriesRow.__table__)
_CHUNKS: Table = cast(Table, MetricChunkRow.__table__)
_SUMMARY = (
    "count",
    "last_value",
    "last_step",
    "last_time",
    "min_value",
    "max_value",
    "first_time",
    "next_step",
)


_CHUNK_VALUES = (
    "count",
    "min_step",
    "max_step",
    "min_time",
    "max_time",
    "min_value",
    "max_value",
    "data",
)
# Built once: statement construction and cache-key generation cost more than the writes.
_UPDATE_SERIES = (
    update(_SERIES)
    .where(_SERIES.c.id == bindparam("b_id"))
    .values({k: bindparam(k) for k in _SUMMARY})
)
_UPDATE_CHUNK = (
    update(_CHUNKS)
    .where(_CHUNKS.c.id == bindparam("b_id"))
    .values({k: bindparam(k) for k in _CHUNK_VALUES})
)
_INSERT_CHUNK = _CHUNKS.insert()


def _series_for_update(
    session: Session, run_id: int, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The series of (run, key) for ``keys`` as plain dicts, created if missing, locked for
    this transaction in key order (so concurrent batches never deadlock)."""
    stmt = (
        select(_SERIES)
        .where(_SERIES.c.run_id == run_id, _SERIES.c.key.in_(list(keys)))
        .order_by(_SERIES.c.key)
        .with_for_update()
    )
    found = {row.key: dict(row._mapping) for row in session.execute(stmt)}
    missing = [key for key in keys if key not in found]
    if missing:  # usually only a run's first batches: then insert (racing safely) and lock
        blank = dict.fromkeys(_SUMMARY, 0)
        session.execute(
            insert(session, MetricSeriesRow)
            .values([{"run_id": run_id, "key": key, **blank} for key in missing])
            .on_conflict_do_nothing(index_elements=["run_id", "key"])
        )
        found = {row.key: dict(row._mapping) for row in session.execute(stmt)}
    return found


def append_batch(session: Session, run_id: int, by_key: dict[str, Columns]) -> None:
    """Append points to the run's series, one entry per key: (values, steps, times); steps
    left None get the series' next steps. Updates the summaries; rewrites only the last chunk
    of a series when it has room. Core statements, one per kind of write (executemany):
    ingest is the hot path and needs no unit of work."""
    keys = sorted(by_key)
    if not keys:
        return
    series_by_key = _series_for_update(session, run_id, keys)
    # Chunks fill in order, so a series' last chunk is number (count - 1) // CHUNK, and has
    # room when count is not a multiple of CHUNK.
    partial = {
        s["id"]: (s["count"] - 1) // CHUNK
        for s in series_by_key.values()
        if s["count"] and s["count"] % CHUNK
    }
    last_chunks: dict[int, Any] = {}
    if partial:
        wanted = or_(
            *(
                and_(_CHUNKS.c.series_id == sid, _CHUNKS.c.seq == seq)
                for sid, seq in partial.items()
            )
        )
        last_chunks = {
            c.series_id: c
            for c in session.execute(
                select(_CHUNKS.c.id, _CHUNKS.c.series_id, _CHUNKS.c.count, _CHUNKS.c.data).where(
                    wanted
                )
            )
        }
    series_updates: list[dict[str, Any]] = []
    chunk_updates: list[dict[str, Any]] = []
    chunk_inserts: list[dict[str, Any]] = []
    for key in keys:
        series = series_by_key[key]
        values, steps, times = by_key[key]
        new = Points.empty()
        next_step = series["next_step"]
        for value, step, time in zip(values, steps, times, strict=True):
            if step is None:
                step = next_step
            if step >= next_step:
                next_step = step + 1
            new.steps.append(step)
            new.times.append(time)
            new.values.append(value)
        if not len(new):
            continue
        _update_summary(series, new)
        series["next_step"] = next_step
        offset = 0
        last = last_chunks.get(series["id"])
        if last is not None:
            room = CHUNK - last.count
            merged = decode(last.data, last.count)
            merged.extend(new.slice(0, room))
            chunk_updates.append({"b_id": last.id, **_chunk_values(merged)})
            offset = room
        seq = (series["count"] + CHUNK - 1) // CHUNK  # the next chunk number
        while offset < len(new):
            values_ = _chunk_values(new.slice(offset, offset + CHUNK))
            chunk_inserts.append({"series_id": series["id"], "seq": seq, **values_})
            offset += CHUNK
            seq += 1
        series["count"] += len(new)
        series_updates.append({"b_id": series["id"], **{k: series[k] for k in _SUMMARY}})
    if series_updates:
        session.execute(_UPDATE_SERIES, series_updates)
    if chunk_updates:
        session.execute(_UPDATE_CHUNK, chunk_updates)
    if chunk_inserts:
        session.execute(_INSERT_CHUNK, chunk_inserts)


def _update_summary(series: dict[str, Any], new: Points) -> None:
    """Fold ``new`` into the summary (a dict of the series' columns)."""
    lo, hi = min(new.values), max(new.values)
    first = min(new.times)
    if series["count"] == 0:
        low, high, first_time = lo, hi, first
        last_step, last_time, last_value = new.steps[0], new.times[0], new.values[0]
    else:
        low, high = min(series["min_value"], lo), max(series["max_value"], hi)
        first_time = min(series["first_time"], first)
        last_step, last_time, last_value = (
            series["last_step"],
            series["last_time"],
            series["last_value"],
        )
    # "Last" is the point with the highest step, the latest of equal steps (MLflow's
    # latest value).
    for step, time, value in zip(new.steps, new.times, new.values, strict=True):
        if step > last_step or (step == last_step and time >= last_time):
            last_step, last_time, last_value = step, time, value
    series.update(
        min_value=low,
        max_value=high,
        first_time=first_time,
        last_step=last_step,
        last_time=last_time,
        last_value=last_value,
    )


def _chunk_values(points: Points) -> dict[str, Any]:
    return {
        "count": len(points),
        "min_step": min(points.steps),
        "max_step": max(points.steps),
        "min_time": min(points.times),
        "max_time": max(points.times),
        "min_value": min(points.values),
        "max_value": max(points.values),
        "data": encode(points),
    }


def get_series(session: Session, run_id: int, key: str) -> MetricSeriesRow | None:
    return session.scalars(
        select(MetricSeriesRow).where(MetricSeriesRow.run_id == run_id, MetricSeriesRow.key == key)
    ).first()


def list_series(session: Session, run_ids: Iterable[int]) -> list[MetricSeriesRow]:
    ids = list(run_ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(MetricSeriesRow)
            .where(MetricSeriesRow.run_id.in_(ids))
            .order_by(MetricSeriesRow.run_id, MetricSeriesRow.key)
        )
    )


def read_points(
    session: Session,
    series_id: int,
    *,
    min_step: int | None = None,
    max_step: int | None = None,
    min_time: float | None = None,
    max_time: float | None = None,
) -> Points:
    """The series' points (optionally only steps in [min_step, max_step] and times in
    [min_time, max_time]), by step. Chunks whose step or time range misses the window are
    not read, let alone decoded."""
    stmt = select(MetricChunkRow.count, MetricChunkRow.data).where(
        MetricChunkRow.series_id == series_id
    )
    if min_step is not None:
        stmt = stmt.where(MetricChunkRow.max_step >= min_step)
    if max_step is not None:
        stmt = stmt.where(MetricChunkRow.min_step <= max_step)
    if min_time is not None:
        stmt = stmt.where(MetricChunkRow.max_time >= min_time)
    if max_time is not None:
        stmt = stmt.where(MetricChunkRow.min_time <= max_time)
    out = Points.empty()
    for count, data in session.execute(stmt.order_by(MetricChunkRow.seq)):
        out.extend(decode(data, count))
    if min_step is not None or max_step is not None or min_time is not None or max_time is not None:
        lo = min_step if min_step is not None else -(2**63)
        hi = max_step if max_step is not None else 2**63 - 1
        t_lo = min_time if min_time is not None else -math.inf
        t_hi = max_time if max_time is not None else math.inf
        times = out.times
        keep = [i for i, s in enumerate(out.steps) if lo <= s <= hi and t_lo <= times[i] <= t_hi]
        out = Points(
            array("q", (out.steps[i] for i in keep)),
            array("d", (out.times[i] for i in keep)),
            array("d", (out.values[i] for i in keep)),
        )
    # Arrival order is usually step order already; sort only when it is not.
    steps = out.steps
    as_list = steps.tolist()
    if as_list != sorted(as_list):  # timsort of sorted data is one C pass
        order = sorted(range(len(steps)), key=lambda i: (steps[i], out.times[i]))
        out = Points(
            array("q", (out.steps[i] for i in order)),
            array("d", (out.times[i] for i in order)),
            array("d", (out.values[i] for i in order)),
        )
    return out


def upsert_params(session: Session, run_id: int, params: dict[str, str]) -> dict[str, str]:
    """Insert the params that are new; return the ones already logged with another value
    (the caller refuses the request then, so nothing is written)."""
    existing = {
        r.key: r.value
        for r in session.scalars(
            select(RunParamRow).where(
                RunParamRow.run_id == run_id, RunParamRow.key.in_(list(params))
            )
        )
    }
    clashes = {k: existing[k] for k, v in params.items() if k in existing and existing[k] != v}
    if clashes:
        return clashes
    for key, value in params.items():
        if key not in existing:
            session.add(RunParamRow(run_id=run_id, key=key, value=value))
    session.flush()
    return {}


def list_params(session: Session, run_ids: Iterable[int]) -> list[RunParamRow]:
    ids = list(run_ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(RunParamRow)
            .where(RunParamRow.run_id.in_(ids))
            .order_by(RunParamRow.run_id, RunParamRow.key)
        )
    )


def delete_run_metrics(session: Session, run_id: int) -> None:
    """Everything tracked for the run (explicit, so it goes even without foreign keys)."""
    series = select(MetricSeriesRow.id).where(MetricSeriesRow.run_id == run_id)
    session.execute(delete(MetricChunkRow).where(MetricChunkRow.series_id.in_(series)))
    session.execute(delete(MetricSeriesRow).where(MetricSeriesRow.run_id == run_id))
    session.execute(delete(MetricBatchRow).where(MetricBatchRow.run_id == run_id))
    session.execute(delete(RunParamRow).where(RunParamRow.run_id == run_id))
    session.execute(delete(RunTagRow).where(RunTagRow.run_id == run_id))
