"""Reading ``resources.jsonl``, the supervisor's resource samples (one JSON object a line).

The supervisor appends a line per replica sample (see ``trainyard.runtime.resources`` and
``docs/local-backend.md``); the server reads it by byte offset, a bounded piece at a time.
Only whole lines are read: a line still being written is left for the next call, so an
offset always sits at the start of a line and a reader that stores ``next_offset`` with what
it read never reads a sample twice or skips one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from trainyard.executors.base import ResourceChunk, ResourceSample
from trainyard.executors.local_logs import is_replica_name

__all__ = ["MAX_RESOURCE_BYTES", "parse_resource_line", "read_resource_chunk"]

MAX_RESOURCE_BYTES = 256 * 1024  # per call: ~1,000 samples
_SCAN = 64 * 1024


def parse_resource_line(line: bytes) -> ResourceSample | None:
    """The sample on one line, or None if the line is not a valid sample. Values that are
    not finite numbers are left out of the sample (the rest of it is kept)."""
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    replica, seq, when, values = (
        raw.get("replica"),
        raw.get("seq"),
        raw.get("time"),
        raw.get("values"),
    )
    if (
        not isinstance(replica, str)
        or not is_replica_name(replica)
        or type(seq) is not int
        or not 0 <= seq < 2**63
        or not isinstance(when, int | float)
        or isinstance(when, bool)
        or not math.isfinite(when)
        or not isinstance(values, dict)
    ):
        return None
    kept = {
        str(k): float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    return ResourceSample(replica=replica, seq=seq, time=float(when), values=kept)


def read_resource_chunk(
    path: Path, offset: int, max_bytes: int = MAX_RESOURCE_BYTES
) -> ResourceChunk:
    """Whole lines of ``path`` from byte ``offset``, at most about ``max_bytes``. Raises
    ``OSError`` on an I/O failure; a missing file is an empty chunk."""
    offset = max(0, offset)
    try:
        f = path.open("rb")
    except (FileNotFoundError, NotADirectoryError):
        return ResourceChunk(samples=[], next_offset=offset)
    with f:
        size = os.fstat(f.fileno()).st_size
        if offset >= size:
            return ResourceChunk(samples=[], next_offset=offset)
        f.seek(offset)
        data = f.read(max(1, max_bytes))
        end = data.rfind(b"\n") + 1
        if end == 0:
            if offset + len(data) >= size:
                return ResourceChunk(samples=[], next_offset=offset)  # still being written
            # A line longer than a whole read is no sample (they are ~200 bytes): skip it.
            skip_to = _next_line(f, offset + len(data))
            if skip_to is None:
                return ResourceChunk(samples=[], next_offset=offset)
            return ResourceChunk(samples=[], next_offset=skip_to, skipped=1)
    samples: list[ResourceSample] = []
    skipped = 0
    for line in data[:end].split(b"\n")[:-1]:
        sample = parse_resource_line(line) if line.strip() else None
        if sample is None:
            skipped += bool(line.strip())
            continue
        samples.append(sample)
    return ResourceChunk(samples=samples, next_offset=offset + end, skipped=skipped)


def _next_line(f: Any, position: int) -> int | None:
    """The offset just after the next newline at or after ``position``; None if none yet."""
    f.seek(position)
    while chunk := f.read(_SCAN):
        found = chunk.find(b"\n")
        if found >= 0:
            return int(position + found + 1)
        position += len(chunk)
    return None
