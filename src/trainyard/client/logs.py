"""Run logs: pages read with a cursor, and the live stream (server-sent events) that survives a
server restart by reconnecting from the last cursor it saw."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainyard.client.errors import ServerUnreachableError
from trainyard.client.http import Transport
from trainyard.core.errors import InternalError
from trainyard.core.status import RunStatus

__all__ = [
    "LogEntry",
    "LogPage",
    "LogStreamItem",
    "StatusChange",
    "StreamEnd",
    "parse_sse",
    "read_log_page",
    "stream_run_logs",
]


@dataclass(frozen=True)
class LogEntry:
    """One line a replica wrote. ``cursor`` (stream only) resumes the stream just after it."""

    time: datetime | None
    replica: str
    text: str
    cursor: str | None = None


@dataclass(frozen=True)
class LogPage:
    """A page of log lines merged across replicas by time.

    ``cursor`` continues after the last line; ``complete`` means the run is finished and every
    line has been returned.
    """

    lines: list[LogEntry]
    cursor: str
    replicas: list[str]
    complete: bool


@dataclass(frozen=True)
class StatusChange:
    """The run entered ``status`` (sent when the stream opens and on each change)."""

    status: RunStatus
    reason: str = ""


@dataclass(frozen=True)
class StreamEnd:
    """The run is finished and every log line was sent; the stream is over."""

    status: RunStatus


LogStreamItem = LogEntry | StatusChange | StreamEnd


class _Keepalive:
    """A comment line: the connection is alive but has nothing to say."""


_KEEPALIVE = _Keepalive()


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _entry(data: dict[str, Any]) -> LogEntry:
    cursor = data.get("cursor")
    return LogEntry(
        time=_time(data.get("time")),
        replica=str(data.get("replica", "")),
        text=str(data.get("text", "")),
        cursor=str(cursor) if cursor is not None else None,
    )


def read_log_page(
    transport: Transport,
    run_id: int,
    *,
    replicas: Sequence[str] | None = None,
    cursor: str | None = None,
    tail: int | None = None,
    max_bytes: int | None = None,
) -> LogPage:
    """``GET /runs/{id}/logs``: one page from ``cursor`` (or the last ``tail`` lines)."""
    data = transport.get(
        f"/runs/{run_id}/logs",
        params={
            "replica": list(replicas or []),
            "cursor": cursor,
            "tail": tail,
            "max_bytes": max_bytes,
        },
    )
    return LogPage(
        lines=[_entry(line) for line in data.get("lines", [])],
        cursor=str(data.get("cursor") or ""),
        replicas=[str(r) for r in data.get("replicas", [])],
        complete=bool(data.get("complete", False)),
    )


def _decode(event: str, data: str) -> LogStreamItem | None:
    try:
        payload = json.loads(data) if data else {}
    except ValueError:
        return None  # a garbled event is skipped rather than ending the user's log view
    if not isinstance(payload, dict):
        return None
    if event == "log":
        return _entry(payload)
    if event in ("status", "end"):
        try:
            status = RunStatus(str(payload.get("status")))
        except ValueError:
            return None
        if event == "end":
            return StreamEnd(status)
        return StatusChange(status, str(payload.get("reason") or ""))
    return None  # an event this client does not know: newer server, ignore


def parse_sse(lines: Iterable[str]) -> Iterator[LogStreamItem | _Keepalive]:
    """Parse a ``text/event-stream`` (already split into lines) into stream items.

    Follows the SSE rules that matter here: ``event:`` names the event, ``data:`` lines are
    joined with newlines, a blank line dispatches, ``:`` starts a comment (a keepalive).
    """
    event = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                item = _decode(event, "\n".join(data))
                if item is not None:
                    yield item
            event, data = "message", []
            continue
        if line.startswith(":"):
            yield _KEEPALIVE
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        # "id" and "retry" are not used by the trainyard server; unknown fields are ignored.


def stream_run_logs(
    transport: Transport,
    run_id: int,
    *,
    replicas: Sequence[str] | None = None,
    cursor: str | None = None,
    reconnect_for: float = 120.0,
    read_timeout: float = 45.0,
) -> Iterator[LogStreamItem]:
    """Follow a run's logs until it ends, yielding lines, status changes and a final
    :class:`StreamEnd`.

    A dropped connection (the server restarted, a proxy timed out, no keepalive within
    ``read_timeout``) is reopened from the cursor of the last line received, so no line is lost
    or repeated. Raises :class:`ServerUnreachableError` if the server stays away for
    ``reconnect_for`` seconds; error replies (e.g. NotFoundError) are raised at once.
    """
    last_cursor = cursor
    failing_since: float | None = None
    delay = 0.1
    while True:
        received = False
        error: ServerUnreachableError | InternalError | None = None
        try:
            with transport.stream(
                f"/runs/{run_id}/logs/stream",
                params={"replica": list(replicas or []), "cursor": last_cursor},
                read_timeout=read_timeout,
            ) as response:
                for item in parse_sse(response.iter_lines()):
                    received = True
                    failing_since, delay = None, 0.1
                    if isinstance(item, _Keepalive):
                        continue
                    if isinstance(item, LogEntry) and item.cursor:
                        last_cursor = item.cursor
                    yield item
                    if isinstance(item, StreamEnd):
                        return
        except (ServerUnreachableError, InternalError) as exc:
            # InternalError: a server that is starting up or shutting down may answer 5xx.
            error = exc
        # The stream failed or ended without `end` (the server shut down): reopen it from the
        # last cursor, backing off while nothing comes through so a dead server is not hammered.
        now = time.monotonic()
        if not received and failing_since is None:
            failing_since = now
        if failing_since is not None and now - failing_since > reconnect_for:
            if error is not None:
                raise error
            raise ServerUnreachableError(
                f"lost the log stream of run {run_id} at {transport.base_url} and could not "
                f"get it back for {reconnect_for:.0f} s; is `trainyard server` running?",
                fields={"url": transport.base_url, "run_id": run_id},
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
