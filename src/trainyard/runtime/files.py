"""Durable files of a run directory: the lock, ``state.json`` and ``events.jsonl``.

State is replaced atomically (temporary file, fsync, rename) so a reader never sees half of
it; events are appended one JSON object per line and fsync'd before the state that mentions
their ``seq``, so an observer that reads the state first and the events second always has
every event the state refers to.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "EventLog",
    "acquire_lock",
    "format_memory",
    "iso_utc",
    "write_json_atomic",
]

_MEMORY_SUFFIXES: tuple[tuple[str, int], ...] = tuple(
    (suffix, 1 << (10 * power))
    for suffix, power in (("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1))
)


def format_memory(nbytes: int) -> str:
    """``8589934592`` -> ``8Gi``, as ``trainyard.core.quantity.format_memory`` (copied: the
    supervisor must not import pydantic-heavy modules)."""
    for suffix, unit in _MEMORY_SUFFIXES:
        if nbytes >= unit and nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


def iso_utc(t: float | None = None) -> str:
    """``2026-11-21T20:18:53.123456Z`` for epoch seconds ``t`` (now when None)."""
    if t is None:
        t = time.time()
    micros = round(t * 1_000_000)
    secs, micros = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{micros:06d}Z"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str, data: Any, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` as JSON so readers see the old or the new file, never a
    mix. With ``durable`` the content and the rename survive a power loss."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    payload = json.dumps(data, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        _fsync_dir(directory or ".")


def acquire_lock(path: str, wait_seconds: float) -> int | None:
    """Take the exclusive lock on ``path`` and return its fd (held until the process exits),
    or None if another process holds it for longer than ``wait_seconds``.

    Observers probe the lock with a shared lock for a few microseconds, so a busy lock is
    retried for a moment before concluding that another supervisor owns the run.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.01)


class EventLog:
    """``events.jsonl``: append-only, ``seq`` 1, 2, 3…; each batch is written and fsync'd."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.seq = 0
        self._pending: list[bytes] = []

    def add(self, kind: str, message: str, *, replica: str | None = None, reason: str = "") -> None:
        """Queue one event; :meth:`flush` writes the queue."""
        self.seq += 1
        record = {
            "seq": self.seq,
            "time": iso_utc(),
            "kind": kind,
            "message": message,
            "replica": replica,
            "reason": reason,
        }
        self._pending.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def flush(self) -> None:
        """Write every queued event and fsync. Raises ``OSError`` when the disk refuses; what
        was not written stays queued, and the next flush resumes at the exact byte where this
        one stopped (we are the only writer), so no event is lost or torn."""
        if not self._pending:
            return
        view = memoryview(b"".join(self._pending))
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        finally:
            self._pending = [bytes(view)] if view else []
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
