"""The spool: batches the server did not take yet, kept on disk until it does.

Each process has one spool file, ``<spool_root>/<run_id>/<server>-<replica>-<pid>-<rand>.jsonl``,
one JSON object per line (a metrics batch with its ``batch_id``, or params). It is created on
the first failed send and removed once everything in it has been delivered. Only the sender
thread touches it.

While its process lives, the file is locked (``flock``). A later process of the same run and
server (a restarted replica) adopts the files whose lock it can take, i.e. those left by
processes that died with points pending, and sends them too. Re-sending is always safe:
metric batches keep their ``batch_id``, which the server dedupes, and params are accepted
again with the same value.

If the disk refuses a write, the entries stay in memory (and an error says so once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trainyard.client.metrics import ParamValue, PointTuple

try:  # POSIX only: without it, a spool is never adopted by another process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Entry", "Spool"]

logger = logging.getLogger("trainyard.sdk")


@dataclass
class Entry:
    """One request to (re)send: a metrics batch, or params when ``params`` is set."""

    batch_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    points: list[PointTuple] = field(default_factory=list)
    params: dict[str, ParamValue] | None = None

    def to_line(self) -> bytes:
        if self.params is not None:
            data: dict[str, Any] = {
                "kind": "params",
                "batch_id": self.batch_id,
                "params": self.params,
            }
        else:
            data = {"kind": "metrics", "batch_id": self.batch_id, "points": self.points}
        return json.dumps(data, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Entry | None:
        """The entry of a spool line; None for a line that is not one (a torn last line)."""
        try:
            data = json.loads(line)
            if data["kind"] == "params":
                return cls(batch_id=str(data["batch_id"]), params=dict(data["params"]))
            points: list[PointTuple] = [
                (str(k), float(v), None if s is None else int(s), None if t is None else float(t))
                for k, v, s, t in data["points"]
            ]
            return cls(batch_id=str(data["batch_id"]), points=points)
        except (ValueError, KeyError, TypeError):
            return None


def _lock(handle: IO[bytes]) -> bool:
    """Take the handle's file lock without waiting; False when another process holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class Spool:
    """This process's pending entries: on disk, in order, with their counts."""

    def __init__(self, directory: Path, prefix: str, owner: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self.path = directory / f"{prefix}-{owner}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.points = 0  # metric points pending
        self.params = 0  # params requests pending
        self._entries = 0
        self._file: IO[bytes] | None = None
        self._memory: list[Entry] = []  # what the disk refused to hold
        self._disk_failed = False

    @property
    def empty(self) -> bool:
        return self._entries == 0

    @property
    def in_memory(self) -> int:
        """Points pending that are only in memory (the disk refused them)."""
        return sum(len(e.points) for e in self._memory)

    def _count(self, entry: Entry, sign: int) -> None:
        self._entries += sign
        if entry.params is not None:
            self.params += sign
        else:
            self.points += sign * len(entry.points)

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Created under another name and locked before it gets its own, so that no other
            # process ever sees it unlocked while this one lives.
            creating = self.path.with_suffix(".creating")
            handle = open(creating, "ab")  # noqa: SIM115 - kept open while entries are pending
            _lock(handle)
            os.replace(creating, self.path)
            self._file = handle
        return self._file

    def append(self, entries: Iterable[Entry]) -> None:
        """Add ``entries`` at the end (on disk, else in memory)."""
        batch = list(entries)
        if not batch:
            return
        try:
            handle = self._open()
            handle.write(b"".join(e.to_line() for e in batch))
            handle.flush()
        except OSError as exc:
            if not self._disk_failed:
                logger.error(
                    "trainyard: cannot write to the spool %s (%s): pending points are kept in "
                    "memory only, and are lost if this process ends before the server takes "
                    "them",
                    self.path,
                    exc,
                )
            self._disk_failed = True
            self._memory.extend(batch)
        for entry in batch:
            self._count(entry, +1)

    def drain(self, send: Callable[[Entry], bool]) -> bool:
        """Offer every entry to ``send``, oldest first. ``send`` returns True when the entry
        is done with (delivered, or refused for good) and False to stop: that entry and the
        ones after it stay. True when the spool is empty at the end."""
        if self._file is not None and not self._drain_file(send):
            return False
        while self._memory:
            entry = self._memory[0]
            if not send(entry):
                return False
            self._memory.pop(0)
            self._count(entry, -1)
        return True

    def _drain_file(self, send: Callable[[Entry], bool]) -> bool:
        assert self._file is not None
        self._file.flush()
        with open(self.path, "rb") as source:
            while True:
                offset = source.tell()
                line = source.readline()
                if not line:
                    break
                entry = Entry.from_line(line)
                if entry is None:
                    logger.warning("trainyard: skipped a damaged line in the spool %s", self.path)
                    continue
                if not send(entry):
                    self._keep_from(source, offset)
                    return False
                self._count(entry, -1)
        self._file.close()
        self._file = None
        self.path.unlink(missing_ok=True)
        # Whatever the counts say now is what memory holds (a damaged line was never counted
        # right); keep them exact.
        self._entries = len(self._memory)
        self.points = self.in_memory
        self.params = sum(1 for e in self._memory if e.params is not None)
        return True

    def _keep_from(self, source: IO[bytes], offset: int) -> None:
        """Make the spool file hold only what ``source`` has from ``offset`` on."""
        assert self._file is not None
        tmp = self.path.with_suffix(".tmp")
        handle = open(tmp, "wb")  # noqa: SIM115 - becomes the spool file
        try:
            _lock(handle)
            source.seek(offset)
            shutil.copyfileobj(source, handle)
            handle.flush()
            os.replace(tmp, self.path)
        except OSError:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        self._file.close()
        self._file = handle

    def adopt_orphans(self) -> int:
        """Take over the spool files that dead processes of this run left for this server;
        returns how many points they held."""
        if fcntl is None or not self.directory.is_dir():
            return 0
        adopted = 0
        for path in sorted(self.directory.glob(f"{self.prefix}-*.jsonl")):
            if path == self.path:
                continue
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                if not _lock(handle):
                    continue  # its process is alive
                if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                    continue  # adopted by another process meanwhile
                entries = [e for e in map(Entry.from_line, handle.read().splitlines()) if e]
                self.append(entries)
                path.unlink()
                path.with_suffix(".tmp").unlink(missing_ok=True)
                points = sum(len(e.points) for e in entries)
                adopted += points
                if entries:
                    logger.info(
                        "trainyard: re-sending %d points left in %s by an earlier process",
                        points,
                        path,
                    )
        return adopted

    def close(self) -> None:
        """Release the file (and its lock): what it holds waits for a later process."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
