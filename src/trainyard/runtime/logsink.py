"""One replica's log file: raw output bytes cut into timestamped lines, under a quota.

Each line is written as ``2026-11-21T20:18:53.123456Z `` + the raw bytes + ``\\n``; bytes are
never decoded, so non-UTF-8 output is stored exactly. A line longer than ``max_line_bytes`` is
written in pieces, every piece but the last ending with :data:`CONTINUATION_MARKER`: nothing is
lost and the supervisor holds at most ``max_line_bytes`` plus one read of a line in memory.

The file never grows past ``quota_bytes``. When the next line would pass it, one marker line
(``[trainyard] log quota of 1Gi reached for worker-0: …``) is written instead and the rest of
the replica's output is read and counted, never stored: the replica is neither blocked nor
killed. The first write error (disk full) drops output the same way. Both are reported
through ``on_problem`` as soon as they happen, so the supervisor can record a warning event.
"""

from __future__ import annotations

import os
import time
from collections import deque

from trainyard.runtime.files import format_memory, iso_utc

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CONTINUATION_MARKER", "DEFAULT_QUOTA_BYTES", "QUOTA_SETTING", "LogSink"]

CONTINUATION_MARKER = b" [line continues]"
DEFAULT_QUOTA_BYTES = 1 << 30
QUOTA_SETTING = "TRAINYARD_RUNS__LOG_QUOTA_BYTES"
_TAIL_LINES = 20
_TAIL_LINE_BYTES = 2000
# Output dropped after the quota is kept only as this many raw bytes, for the failure event.
_RAW_TAIL_BYTES = _TAIL_LINES * _TAIL_LINE_BYTES
_PREFIX_BYTES = len(iso_utc(0.0)) + 1


def describe_quota(nbytes: int) -> str:
    """``1073741824`` -> ``1Gi``; ``5000`` -> ``5000 bytes``."""
    text = format_memory(nbytes)
    return f"{text} bytes" if text.isdigit() else text


class LogSink:
    """Appends a replica's output to ``path``; survives restarts of the replica (same file).

    ``on_problem(replica, message)`` is called once when the quota is reached and once on the
    first write error, from inside :meth:`feed` (or :meth:`sync`).
    """

    def __init__(
        self,
        path: str,
        max_line_bytes: int,
        *,
        quota_bytes: int = DEFAULT_QUOTA_BYTES,
        replica: str | None = None,
        on_problem: Callable[[str, str], None] | None = None,
    ) -> None:
        self.path = path
        self.replica = replica or os.path.basename(path).removesuffix(".log")
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._max = max_line_bytes
        self.quota_bytes = quota_bytes
        self._on_problem = on_problem
        self._partial = bytearray()
        self._last_time = 0.0
        self.tail: deque[bytes] = deque(maxlen=_TAIL_LINES)
        self.dirty = False
        self.error: str | None = None  # the first write failure, reported by the supervisor
        self.size = os.fstat(self._fd).st_size  # bytes in the file (or being written to it)
        self.quota_reached = False
        # Bytes of the replica's output not stored (over the quota, or after a write error).
        self.dropped_bytes = 0
        self._dropping = False
        self._raw_tail = bytearray()  # the last dropped bytes, for tail_lines()
        self._raw_tail_cut = False
        self._batch_raw = 0  # output bytes in the batch being built, for a failed write
        self.quota_message = (
            f"log quota of {describe_quota(quota_bytes)} reached for {self.replica}: further "
            f"output is dropped (set {QUOTA_SETTING} to change it)"
        )
        self._marker = b"[trainyard] " + self.quota_message.encode()
        self._room = quota_bytes - (_PREFIX_BYTES + len(self._marker) + 1)

    def _prefix(self) -> bytes:
        # Never go backwards, even if the wall clock is stepped back: lines stay ordered.
        now = max(time.time(), self._last_time)
        self._last_time = now
        return iso_utc(now).encode() + b" "

    def feed(self, data: bytes) -> None:
        """Add output read from the replica; write every complete line (and long pieces)."""
        if not data:
            return
        if self._dropping:
            self._drop(data)  # no splitting: a flood is drained as fast as it can be read
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
        if self._dropping and buf:
            self._drop(bytes(buf))
            buf.clear()
        self._write(out)

    def finish(self) -> None:
        """End of the replica's output: a last line without a newline is still written."""
        if self._partial:
            out: list[bytes] = []
            self._emit(out, self._prefix(), bytes(self._partial), last=True, newline=False)
            self._partial.clear()
            self._write(out)

    def _emit(
        self, out: list[bytes], prefix: bytes, line: bytes, *, last: bool, newline: bool = True
    ) -> None:
        # A complete line that arrived in one read may still be over the limit.
        while len(line) > self._max:
            self._emit(out, prefix, line[: self._max], last=False)
            line = line[self._max :]
        piece = line if last else line + CONTINUATION_MARKER
        self.tail.append(piece[:_TAIL_LINE_BYTES])
        raw = len(line) + (1 if last and newline else 0)
        record = prefix + piece + b"\n"
        if not self._dropping and self.size + len(record) > self._room:
            self._reach_quota(out, prefix)
        if self._dropping:
            self.dropped_bytes += raw
            return
        out.append(record)
        self.size += len(record)
        self._batch_raw += raw

    def _reach_quota(self, out: list[bytes], prefix: bytes) -> None:
        marker = prefix + self._marker + b"\n"
        out.append(marker)
        self.size += len(marker)
        self.quota_reached = self._dropping = True
        self._report(self.quota_message)

    def _drop(self, data: bytes) -> None:
        self.dropped_bytes += len(data)
        self._raw_tail += data
        if len(self._raw_tail) > 2 * _RAW_TAIL_BYTES:
            del self._raw_tail[:-_RAW_TAIL_BYTES]
            self._raw_tail_cut = True

    def tail_lines(self) -> list[bytes]:
        """The replica's last lines (at most 20, each cut to 2000 bytes), dropped ones too:
        a failure event still shows how a replica that flooded its log ended."""
        lines = list(self.tail)
        if self._raw_tail:
            raw = bytes(self._raw_tail[-_RAW_TAIL_BYTES:])
            pieces = raw.split(b"\n")
            if self._raw_tail_cut or len(raw) < len(self._raw_tail):
                pieces = pieces[1:]  # starts inside a line
            if pieces and not pieces[-1]:
                pieces.pop()
            lines.extend(p[:_TAIL_LINE_BYTES] for p in pieces)
        return lines[-_TAIL_LINES:]

    def _write(self, out: list[bytes]) -> None:
        batch_raw, self._batch_raw = self._batch_raw, 0
        if not out:
            return
        view = memoryview(b"".join(out))
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            # Disk full or similar: the batch is lost (a line may be cut short in the file).
            self.size -= len(view)
            self.dropped_bytes += batch_raw
            self._fail(exc)
            return
        self.dirty = True

    def _fail(self, exc: OSError) -> None:
        """The first write error: say so at once, then drop (and count) the output."""
        if self.error is not None:
            return
        self.error = f"{exc.strerror or exc} ({os.path.basename(self.path)})"
        self._dropping = True
        self._report(
            f"cannot write the log of {self.replica}: {exc.strerror or exc} "
            f"(errno {exc.errno}, {self.path}); its further output is dropped and the run "
            "cannot complete"
        )

    def _report(self, message: str) -> None:
        if self._on_problem is not None:
            self._on_problem(self.replica, message)

    def sync(self) -> None:
        """fsync if anything was written since the last sync."""
        if self.dirty:
            self.dirty = False
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        self.finish()
        self.sync()
        os.close(self._fd)
