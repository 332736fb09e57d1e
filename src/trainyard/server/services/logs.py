"""Run logs, read through the executor: pages with an opaque cursor, the last N lines, and
the building block of the live stream.

A cursor is the urlsafe-base64 JSON of ``{replica: byte offset}``. A page reads up to
``max_bytes`` (split across the replicas) from each replica's offset and merges the lines by
time. When one replica has more data than fits, lines of the others that are newer than the
last line read from it are held back for the next page, so the merged order stays right
across pages. No log file is ever read whole: ``tail`` reads backwards in growing windows and
keeps only the lines it returns.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.models import Run, TaskSpec
from trainyard.core.status import TERMINAL_STATUSES, RunStatus
from trainyard.executors.base import LogChunk, LogLine
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.runs import get_run

__all__ = [
    "LogPage",
    "LogRecord",
    "check_log_request",
    "decode_cursor",
    "encode_cursor",
    "read_logs",
    "read_logs_before",
    "replica_names",
    "tail_lines",
]

DEFAULT_MAX_BYTES = 1 << 20
MAX_TAIL = 100_000
MAX_BEFORE_LINES = 10_000
_MIN_SLICE = 64 * 1024
_FAR = 1 << 62  # an offset past any end of file: reads nothing, reports the size
_MAX_TAIL_LINE_CHARS = 2000


@dataclass(frozen=True)
class LogRecord:
    """One line. ``end`` is the byte offset just after it in its replica's log, ``offset``
    the one of its first byte."""

    time: datetime | None
    replica: str
    text: str
    end: int
    offset: int = 0


@dataclass(frozen=True)
class LogPage:
    lines: list[LogRecord]
    start: dict[str, int]  # the offsets this page was read from
    cursor: dict[str, int]  # where the next page starts
    replicas: list[str]
    complete: bool  # the run had ended before the read, and every line has been returned
    status: RunStatus
    reason: str
    # Where the lines before this page end: the offset of each replica's first line shown.
    before: dict[str, int] = field(default_factory=dict)
    at_start: bool = False  # the page reaches the start of every selected log

    @property
    def encoded_cursor(self) -> str:
        return encode_cursor(self.cursor)

    @property
    def encoded_before(self) -> str:
        return encode_cursor(self.before)


def encode_cursor(offsets: dict[str, int]) -> str:
    raw = json.dumps(offsets, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, int]:
    """``{replica: offset}`` from a cursor (``{}`` for None or ""); InvalidInputError if it is
    not one this server made."""
    if not cursor:
        return {}
    bad = InvalidInputError(
        'log cursor is malformed: pass back the "cursor" of a previous reply unchanged',
        fields={"cursor": cursor[:200]},
    )
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise bad from exc
    if not isinstance(data, dict):
        raise bad
    for key, value in data.items():
        if not isinstance(key, str) or type(value) is not int or value < 0:
            raise bad
    return data


def replica_names(spec: TaskSpec) -> list[str]:
    """Every replica of the run, in launch order (``ps-0``, ``worker-0``, ``worker-1``)."""
    return [f"{r.name}-{i}" for r in spec.resources for i in range(r.replicas)]


def _select(run: Run, requested: list[str] | None) -> list[str]:
    names = replica_names(run.spec)
    if not requested:
        return names
    unknown = [r for r in requested if r not in names]
    if unknown:
        raise NotFoundError(
            f"replica '{unknown[0]}' not found in run '{run.ref}'; its replicas are "
            + ", ".join(names),
            fields={"replica": unknown[0], "replicas": names},
        )
    return [n for n in names if n in requested]  # launch order, no duplicates


def _records(replica: str, lines: list[LogLine], last_end: int) -> list[LogRecord]:
    """LogLines to records; a line without a timestamp takes its predecessor's time."""
    out: list[LogRecord] = []
    previous: datetime | None = None
    for i, line in enumerate(lines):
        end = (
            line.end
            if line.end > line.offset
            else (lines[i + 1].offset if i + 1 < len(lines) else last_end)
        )
        previous = line.time or previous
        out.append(
            LogRecord(time=previous, replica=replica, text=line.text, end=end, offset=line.offset)
        )
    return out


def _merge(records: list[LogRecord], replicas: list[str]) -> list[LogRecord]:
    order = {name: i for i, name in enumerate(replicas)}
    floor = datetime.min.replace(tzinfo=UTC)
    # Stable: lines of one replica keep their file order when their times are equal.
    return sorted(records, key=lambda r: (r.time or floor, order[r.replica]))


def check_log_request(
    ctx: ServiceContext, run_id: int, *, replicas: list[str] | None, cursor: str | None
) -> None:
    """Raise what :func:`read_logs` would raise for these arguments, reading no log."""
    decode_cursor(cursor)
    _select(get_run(ctx, run_id), replicas)


def read_logs(
    ctx: ServiceContext,
    run_id: int,
    *,
    replicas: list[str] | None = None,
    cursor: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    tail: int | None = None,
) -> LogPage:
    """A page of the run's logs from ``cursor`` (or its last ``tail`` lines), merged by time.

    NotFoundError for an unknown run or replica, InvalidInputError for a malformed cursor or
    out-of-range numbers.
    """
    if max_bytes < 1:
        raise InvalidInputError("max_bytes must be at least 1", fields={"max_bytes": max_bytes})
    if tail is not None and not 0 <= tail <= MAX_TAIL:
        raise InvalidInputError(
            f"tail must be between 0 and {MAX_TAIL} lines", fields={"tail": tail}
        )
    offsets = decode_cursor(cursor)
    # Status first: if the run had ended before we read, what we read is everything.
    run = get_run(ctx, run_id)
    names = _select(run, replicas)
    if tail is not None:
        return _tail(ctx, run, names, tail)
    start = {name: offsets.get(name, 0) for name in names}
    # The executor returns at least one whole line per read however small the budget, so
    # even a tiny max_bytes makes progress.
    per = max(1, max_bytes // max(1, len(names)))
    chunks: dict[str, LogChunk] = {
        name: ctx.executor.read_logs(run.id, name, start[name], per) for name in names
    }
    per_replica = {
        name: _records(name, chunk.lines, chunk.next_offset) for name, chunk in chunks.items()
    }
    # Replicas with more to read bound what can be returned now: nothing newer than the
    # last line read from them.
    horizon: datetime | None = None
    for name, chunk in chunks.items():
        records = per_replica[name]
        if chunk.next_offset < chunk.size and records and records[-1].time is not None:
            last = records[-1].time
            horizon = last if horizon is None or last < horizon else horizon
    lines: list[LogRecord] = []
    end = dict(start)
    at_eof = True
    for name, chunk in chunks.items():
        records = per_replica[name]
        kept = records
        if horizon is not None:
            # The longest prefix within the horizon (a prefix, so the cursor stays exact
            # even if the clock stepped back between two lines).
            cut = next(
                (i for i, r in enumerate(records) if r.time is not None and r.time > horizon),
                len(records),
            )
            kept = records[:cut]
        lines.extend(kept)
        if len(kept) == len(records):
            end[name] = max(chunk.next_offset, start[name])
            at_eof = at_eof and chunk.next_offset >= chunk.size
        else:
            end[name] = kept[-1].end if kept else start[name]
            at_eof = False
    terminal = run.status in TERMINAL_STATUSES
    return LogPage(
        lines=_merge(lines, names),
        start=start,
        cursor=end,
        replicas=names,
        complete=terminal and at_eof,
        status=run.status,
        reason=run.reason,
        before=dict(start),
        at_start=all(v == 0 for v in start.values()),
    )


def read_logs_before(
    ctx: ServiceContext,
    run_id: int,
    *,
    before: str,
    replicas: list[str] | None = None,
    limit: int = 1000,
) -> LogPage:
    """The ``limit`` lines just before the ``before`` cursor, merged by time.

    ``before`` is the ``before_cursor`` of an earlier reply: ``{replica: offset of the first
    line already shown}``; a replica it does not name is read from the end of its log. Each
    replica's log is read backwards from there (never whole). The reply's ``before`` continues
    further back; ``at_start`` says every selected log was read from its first byte.
    NotFoundError for an unknown run or replica, InvalidInputError for a malformed cursor or
    limit.
    """
    if not 1 <= limit <= MAX_BEFORE_LINES:
        raise InvalidInputError(
            f"limit must be between 1 and {MAX_BEFORE_LINES} lines", fields={"limit": limit}
        )
    offsets = decode_cursor(before)
    run = get_run(ctx, run_id)
    names = _select(run, replicas)
    start = {name: offsets.get(name, _FAR) for name in names}
    fetched: dict[str, list[LogRecord]] = {}
    reached: dict[str, int] = {}
    for name in names:
        chunk = ctx.executor.read_logs_before(run.id, name, start[name], limit)
        start[name] = min(start[name], chunk.size)
        fetched[name] = _records(name, chunk.lines, start[name])
        reached[name] = chunk.next_offset if chunk.lines else start[name]
    # A replica not read back to its start may hold more lines older than its earliest one
    # read; lines of any replica older than that wait for the next page, so the merged
    # order stays right across pages.
    horizon: datetime | None = None
    for name in names:
        records = fetched[name]
        if reached[name] > 0 and records and records[0].time is not None:
            first = records[0].time
            horizon = first if horizon is None or first > horizon else horizon
    candidates: list[LogRecord] = []
    for name in names:
        records = fetched[name]
        if horizon is not None:
            # A suffix, so the cursor stays exact even if the clock stepped back.
            cut = max(
                (i + 1 for i, r in enumerate(records) if r.time is not None and r.time < horizon),
                default=0,
            )
            records = records[cut:]
        candidates.extend(records)
    chosen = _merge(candidates, names)[-limit:]
    counts = {name: 0 for name in names}
    for record in chosen:
        counts[record.replica] += 1
    lines: list[LogRecord] = []
    cursor: dict[str, int] = {}
    for name in names:
        kept = fetched[name][len(fetched[name]) - counts[name] :] if counts[name] else []
        lines.extend(kept)
        cursor[name] = kept[0].offset if kept else start[name]
    return LogPage(
        lines=_merge(lines, names),
        start=cursor,
        cursor=dict(start),
        replicas=names,
        complete=False,
        status=run.status,
        reason=run.reason,
        before=cursor,
        at_start=all(v == 0 for v in cursor.values()),
    )


def _tail_one(ctx: ServiceContext, run_id: int, name: str, n: int) -> tuple[list[LogRecord], int]:
    """The last ``n`` complete lines of one replica and the offset after them."""
    size = ctx.executor.read_logs(run_id, name, _FAR, 1).size
    if n == 0 or size == 0:
        return [], size
    window = max(4096, n * 200)
    while True:
        begin = max(0, size - window)
        # Start one byte early and drop the first line: it is either the end of a line cut
        # by the window or, when that byte is a newline, an empty piece — never a whole line.
        offset = begin - 1 if begin > 0 else 0
        kept: deque[LogRecord] = deque(maxlen=n + 1)
        count = 0
        position = offset
        while position < size:
            chunk = ctx.executor.read_logs(run_id, name, position, max(_MIN_SLICE, window))
            if not chunk.lines or chunk.next_offset <= position:
                break
            for record in _records(name, chunk.lines, chunk.next_offset):
                kept.append(record)
                count += 1
            position = chunk.next_offset
        # When the window starts mid-file the first line read is not a whole line.
        if begin == 0 or count - 1 >= n:
            return list(kept)[-n:], position
        window *= 4


def tail_lines(ctx: ServiceContext, run_id: int, replica: str, n: int) -> list[str]:
    """The text of ``replica``'s last ``n`` lines, read from the end of its log (never the
    whole file); lines over 2000 characters are cut with a visible marker, so the result
    fits in an event message. Raises ExecutorError on an I/O failure."""
    out: list[str] = []
    for record in _tail_one(ctx, run_id, replica, n)[0]:
        text = record.text
        if len(text) > _MAX_TAIL_LINE_CHARS:
            text = f"{text[:_MAX_TAIL_LINE_CHARS]} [cut: {len(text)} characters]"
        out.append(text)
    return out


def _tail(ctx: ServiceContext, run: Run, names: list[str], n: int) -> LogPage:
    records: list[LogRecord] = []
    end: dict[str, int] = {}
    for name in names:
        lines, end[name] = _tail_one(ctx, run.id, name, n)
        records.extend(lines)
    merged = _merge(records, names)[-n:] if n else []
    before = dict(end)
    for record in reversed(merged):
        before[record.replica] = record.offset
    return LogPage(
        lines=merged,
        start=dict(end),
        cursor=end,
        replicas=names,
        complete=run.status in TERMINAL_STATUSES,
        status=run.status,
        reason=run.reason,
        before=before,
        at_start=all(v == 0 for v in before.values()),
    )
