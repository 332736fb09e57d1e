"""One replica's log file: raw output bytes cut into timestamped lines.

Each line is written as ``2026-11-21T20:18:53.123456Z `` + the raw bytes + ``\\n``; bytes are
never decoded, so non-UTF-8 output is stored exactly. A line longer than ``max_line_bytes`` is
written in pieces, every piece but the last ending with :data:`CONTINUATION_MARKER`: nothing is
lost and the supervisor holds at most ``max_line_bytes`` plus one read of a line in memory.
"""

from __future__ import annotations

import os
import time
from collections import deque

from trainyard.runtime.files import iso_utc

__all__ = ["CONTINUATION_MARKER", "LogSink"]

CONTINUATION_MARKER = b" [line continues]"
_TAIL_LINES = 20
_TAIL_LINE_BYTES = 2000


class LogSink:
    """Appends a replica's output to ``path``; survives restarts of the replica (same file)."""

    def __init__(self, path: str, max_line_bytes: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._max = max_line_bytes
        self._partial = bytearray()
        self._last_time = 0.0
        self.tail: deque[bytes] = deque(maxlen=_TAIL_LINES)
        self.dirty = False
        self.error: str | None = None  # the first write failure, reported by the supervisor

    def _prefix(self) -> bytes:
        # Never go backwards, even if the wall clock is stepped back: lines stay ordered.
        now = max(time.time(), self._last_time)
        self._last_time = now
        return iso_utc(now).encode() + b" "

    def feed(self, data: bytes) -> None:
        """Add output read from the replica; write every complete line (and long pieces)."""
        if not data:
            return
        prefix = self._prefix()
        out: list[bytes] = []
        buf = self._partial
        search_from = len(buf)
        buf.extend(data)
        start = 0
        while True:
            nl = buf.find(b"\n", search_from)
            if nl < 0:
                break
            self._emit(out, prefix, bytes(buf[start:nl]), last=True)
            start = search_from = nl + 1
        if start:
            del buf[:start]
        while len(buf) > self._max:
            self._emit(out, prefix, bytes(buf[: self._max]), last=False)
            del buf[: self._max]
        self._write(out)

    def finish(self) -> None:
        """End of the replica's output: a last line without a newline is still written."""
        if self._partial:
            out: list[bytes] = []
            self._emit(out, self._prefix(), bytes(self._partial), last=True)
            self._partial.clear()
            self._write(out)

    def _emit(self, out: list[bytes], prefix: bytes, line: bytes, *, last: bool) -> None:
        # A complete line that arrived in one read may still be over the limit.
        while len(line) > self._max:
            self._emit(out, prefix, line[: self._max], last=False)
            line = line[self._max :]
        piece = line if last else line + CONTINUATION_MARKER
        out.append(prefix + piece + b"\n")
        self.tail.append(piece[:_TAIL_LINE_BYTES])

    def _write(self, out: list[bytes]) -> None:
        if not out or self.error is not None:
            return
        view = memoryview(b"".join(out))
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            # Disk full or similar: remembered and reported, the run is never "complete".
            self.error = f"{exc.strerror or exc} ({os.path.basename(self.path)})"
            return
        self.dirty = True

    def sync(self) -> None:
        """fsync if anything was written since the last sync."""
        if self.dirty:
            self.dirty = False
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self.error = self.error or f"{exc.strerror or exc} ({os.path.basename(self.path)})"

    def close(self) -> None:
        self.finish()
        self.sync()
        os.close(self._fd)
