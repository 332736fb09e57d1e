"""Reading the replica logs the supervisor writes (``run_dir/logs/<replica>.log``).

Each line is ``2026-11-21T20:18:53.123456Z `` + the replica's raw bytes + ``\\n``
(see ``trainyard.runtime.logsink``). Reading never decodes strictly: bad bytes become
replacement characters, so a replica's output can never make a reader fail.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from trainyard.executors.base import ExecutorError, LogChunk, LogLine

__all__ = [
    "CONTINUATION_MARKER",
    "is_replica_name",
    "parse_log_line",
    "read_log_chunk",
    "read_log_lines_before",
]

CONTINUATION_MARKER = " [line continues]"
_TIMESTAMP = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z ")
_REPLICA_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?-[0-9]{1,3}")
# A line longer than this without a newline is not one the supervisor wrote; stop looking.
_MAX_SCAN = 64 << 20
_SCAN_CHUNK = 1 << 20
# Backward reads go in blocks of this size, so a page costs a few preads at the end.
_BACK_BLOCK = 64 * 1024


def is_replica_name(name: str) -> bool:
    """``worker-1``: a DNS-1123 resource name, ``-``, an index. Nothing that walks paths."""
    return _REPLICA_NAME.fullmatch(name) is not None


def parse_log_line(raw: bytes) -> tuple[datetime | None, str]:
    """Split one stored line into its UTC timestamp (None when absent) and its text.

    ``raw`` may end with ``\\n``; the text is decoded as UTF-8 with replacement characters.
    """
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    m = _TIMESTAMP.match(raw)
    if m is None:
        return None, raw.decode("utf-8", errors="replace")
    try:
        y, mo, d, h, mi, s, us = (int(g) for g in m.groups())
        when: datetime | None = datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)
    except ValueError:
        return None, raw.decode("utf-8", errors="replace")
    return when, raw[m.end() :].decode("utf-8", errors="replace")


def read_log_chunk(path: Path, replica: str, offset: int, max_bytes: int) -> LogChunk:
    """Whole lines of the log at ``path`` from byte ``offset``, about ``max_bytes`` of them.

    An ``offset`` inside a line moves to the start of the next line. A line longer than
    ``max_bytes`` is still returned whole (the supervisor bounds line length). A last line
    without its newline (being written) is left for the next call.
    """
    offset = max(0, offset)
    max_bytes = max(1, max_bytes)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return LogChunk(lines=[], next_offset=offset, size=0)
    except OSError as exc:
        raise ExecutorError(f"cannot read the log of replica {replica}: {exc}") from exc
    try:
        with f:
            size = path.stat().st_size
            if offset >= size:
                return LogChunk(lines=[], next_offset=offset, size=size)
            start = offset
            if start > 0:
                f.seek(start - 1)
                if f.read(1) != b"\n":
                    start = _next_line_start(f, start)
                    if start < 0:
                        return LogChunk(lines=[], next_offset=offset, size=size)
            f.seek(start)
            data = f.read(min(max_bytes, size - start))
            cut = data.rfind(b"\n")
            while cut < 0 and start + len(data) < size and len(data) < _MAX_SCAN:
                more = f.read(_SCAN_CHUNK)
                if not more:
                    break
                found = more.find(b"\n")
                data += more
                if found >= 0:
                    cut = len(data) - len(more) + found
            if cut < 0:
                return LogChunk(lines=[], next_offset=start, size=size)
    except OSError as exc:
        raise ExecutorError(f"cannot read the log of replica {replica}: {exc}") from exc
    lines: list[LogLine] = []
    pos = 0
    body = data[: cut + 1]
    while pos < len(body):
        nl = body.index(b"\n", pos)
        when, text = parse_log_line(body[pos:nl])
        lines.append(
            LogLine(time=when, replica=replica, text=text, offset=start + pos, end=start + nl + 1)
        )
        pos = nl + 1
    return LogChunk(lines=lines, next_offset=start + len(body), size=size)


def _next_line_start(f: BinaryIO, start: int) -> int:
    """Offset just after the first newline at or after ``start``; -1 when there is none."""
    f.seek(start)
    pos = start
    while True:
        chunk = f.read(_SCAN_CHUNK)
        if not chunk:
            return -1
        nl = chunk.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(chunk)
        if pos - start > _MAX_SCAN:
            return -1


def read_log_lines_before(
    path: Path, replica: str, before: int, max_lines: int, max_bytes: int = 16 << 20
) -> LogChunk:
    """Up to ``max_lines`` whole lines (about ``max_bytes`` at most) ending at byte ``before``.

    The file is read backwards in blocks from ``before``, never whole. The lines come in file
    order; ``next_offset`` is the offset of the first one (pass it back as ``before`` to read
    further back; 0 means the start was reached). A ``before`` inside a line (or past the end,
    where the last line may still be being written) moves back to the start of that line, so
    only lines ending with a newline are returned. At least one line is returned when there
    is one, however small ``max_bytes``.
    """
    max_lines = max(0, max_lines)
    max_bytes = max(1, max_bytes)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return LogChunk(lines=[], next_offset=0, size=0)
    except OSError as exc:
        raise ExecutorError(f"cannot read the log of replica {replica}: {exc}") from exc
    try:
        with f:
            size = path.stat().st_size
            end = min(max(0, before), size)
            blocks: list[bytes] = []
            pos = end
            newlines = 0
            total = 0
            # One newline more than lines wanted marks where the first of them starts.
            while pos > 0 and newlines <= max_lines and total <= _MAX_SCAN:
                # Past the byte budget, only look for the start of one whole line.
                if total > max_bytes + _BACK_BLOCK and newlines >= 2:
                    break
                step = min(_BACK_BLOCK, pos)
                pos -= step
                f.seek(pos)
                block = f.read(step)
                if len(block) != step:
                    raise ExecutorError(
                        f"cannot read the log of replica {replica}: it shrank while read"
                    )
                blocks.append(block)
                newlines += block.count(b"\n")
                total += step
    except OSError as exc:
        raise ExecutorError(f"cannot read the log of replica {replica}: {exc}") from exc
    data = b"".join(reversed(blocks))
    cut = data.rfind(b"\n")
    if max_lines == 0 or cut < 0:
        return LogChunk(lines=[], next_offset=end, size=size)
    body_end = cut + 1
    first = 0
    if pos > 0:
        # The bytes before the first newline are the end of a line that starts earlier.
        first = data.index(b"\n") + 1
    starts: list[int] = []
    i = body_end
    used = 0
    while i > first and len(starts) < max_lines:
        j = data.rfind(b"\n", first, i - 1) + 1
        j = max(j, first)
        if starts and used + (i - j) > max_bytes:
            break
        used += i - j
        starts.append(j)
        i = j
    if not starts:
        return LogChunk(lines=[], next_offset=end, size=size)
    starts.reverse()
    lines: list[LogLine] = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else body_end
        when, text = parse_log_line(data[s:e])
        lines.append(LogLine(time=when, replica=replica, text=text, offset=pos + s, end=pos + e))
    return LogChunk(lines=lines, next_offset=pos + starts[0], size=size)
