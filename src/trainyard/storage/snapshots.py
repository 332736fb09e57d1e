"""Content-addressed storage of code snapshots: ``<root>/<sha256>.tar.gz``.

An upload is streamed into a temporary file in the same directory while its SHA-256 is
computed, then renamed to its final name, so a reader never sees a partial archive and the
same content uploaded twice is stored once. Every failure removes the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from trainyard.core.errors import InsufficientStorageError, PayloadTooLargeError

__all__ = ["SnapshotStore", "SnapshotUpload", "is_snapshot_id"]

_ID = re.compile(r"^[0-9a-f]{64}$")


def is_snapshot_id(value: str) -> bool:
    """Whether ``value`` has the form of a snapshot id (64 lower-case hex digits)."""
    return bool(_ID.match(value))


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"code snapshot is larger than the limit of {limit} bytes "
        f"({limit / 1024**2:.0f} MiB, setting runs.snapshot_max_bytes): list big files and "
        "directories that the run does not need (data, checkpoints, virtualenvs) in a "
        ".trainyardignore file next to the manifest",
        fields={"limit": limit},
    )


def _disk_full(exc: OSError, root: Path) -> InsufficientStorageError:
    return InsufficientStorageError(
        f"no space left on the server's disk for code snapshots ({root}): free some space "
        "and upload again",
        fields={"errno": exc.errno},
    )


class SnapshotUpload:
    """One upload in progress. Call :meth:`write` per chunk, then :meth:`commit` or
    :meth:`abort` (always safe to call; a no-op after commit)."""

    def __init__(self, store: SnapshotStore, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        try:
            fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=store.root)
        except OSError as exc:
            raise self._translate(exc) from exc
        self.tmp_path = Path(name)
        self._committed = False
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def _translate(self, exc: OSError) -> Exception:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _disk_full(exc, self._store.root)
        return exc

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``. PayloadTooLargeError past the limit, InsufficientStorageError
        when the disk is full; either way the partial file is removed."""
        if self._file is None:
            raise RuntimeError("upload already finished")
        self.size += len(chunk)
        if self.size > self._max:
            self.abort()
            raise _too_large(self._max)
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise self._translate(exc) from exc

    def finish_writing(self) -> tuple[str, int]:
        """Flush and fsync the temporary file; returns (sha256 hex, size)."""
        if self._file is None:
            raise RuntimeError("upload already finished")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            self.abort()
            raise self._translate(exc) from exc
        self._file = None
        return self._hash.hexdigest(), self.size

    def commit(self) -> Path:
        """Move the finished upload to its content address (after :meth:`finish_writing`)."""
        final = self._store.path(self._hash.hexdigest())
        os.replace(self.tmp_path, final)
        self._committed = True
        return final

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if not self._committed:
            self.tmp_path.unlink(missing_ok=True)


class SnapshotStore:
    """The directory of snapshot archives."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, snapshot_id: str) -> Path:
        if not is_snapshot_id(snapshot_id):
            raise ValueError(f"{snapshot_id!r} is not a snapshot id")
        return self.root / f"{snapshot_id}.tar.gz"

    def exists(self, snapshot_id: str) -> bool:
        return is_snapshot_id(snapshot_id) and self.path(snapshot_id).is_file()

    def begin(self, max_bytes: int, expected_size: int | None = None) -> SnapshotUpload:
        """Start an upload; refused at once when ``expected_size`` (Content-Length) is over
        ``max_bytes``."""
        if expected_size is not None and expected_size > max_bytes:
            raise _too_large(max_bytes)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(exc, self.root) from exc
            raise
        return SnapshotUpload(self, max_bytes)
