"""Files that runs log (``trainyard.log_artifact``, MLflow's ``log_artifact``): a directory
tree per store, written atomically.

An upload streams into a hidden temporary file next to its target (``.<name>.<random>.part``)
and is renamed over the target once complete and fsynced, so readers see the old file or the
new one, never half of one. Every failure (the size limit, a full disk, a broken connection)
removes the temporary file. Listings skip those temporary files.

Paths follow :func:`trainyard.core.artifacts.check_artifact_path`; once symlinks are resolved
they must also stay inside the store's root.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trainyard.core.artifacts import PART_SUFFIX, check_artifact_path
from trainyard.core.errors import (
    InsufficientStorageError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)

__all__ = ["ArtifactEntry", "ArtifactStore", "ArtifactUpload"]


@dataclass(frozen=True)
class ArtifactEntry:
    path: str  # relative to the store's root, '/'-separated
    is_dir: bool
    size: int | None  # bytes; None for a directory


class ArtifactUpload:
    """One file being written. :meth:`write` each chunk, then :meth:`commit`; :meth:`abort`
    is always safe (a no-op after commit)."""

    def __init__(self, store: ArtifactStore, target: Path, path: str, max_bytes: int) -> None:
        self._store = store
        self.target = target
        self.path = path
        self._max = max_bytes
        self.size = 0
        self.tmp_path = target.with_name(f".{target.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        try:
            self._file: BinaryIO | None = open(self.tmp_path, "xb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            raise store.translate(exc, path) from exc
        self._committed = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``: PayloadTooLargeError past the limit, InsufficientStorageError when
        the disk is full (the partial file is removed either way)."""
        if self._file is None:
            raise RuntimeError("upload already finished")
        self.size += len(chunk)
        if self.size > self._max:
            self.abort()
            raise self._store.too_large(self.path, self._max)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise self._store.translate(exc, self.path) from exc

    def commit(self) -> ArtifactEntry:
        """Flush, fsync and move the file to its path (replacing what was there)."""
        if self._file is None:
            raise RuntimeError("upload already finished")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self.target.is_dir():
                raise InvalidInputError(
                    f"artifact {self.path!r} is a directory: upload the file under another name",
                    fields={"path": self.path},
                )
            os.replace(self.tmp_path, self.target)
        except OSError as exc:
            self.abort()
            raise self._store.translate(exc, self.path) from exc
        except BaseException:
            self.abort()
            raise
        self._committed = True
        return ArtifactEntry(self.path, False, self.size)

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if not self._committed:
            with contextlib.suppress(OSError):
                self.tmp_path.unlink(missing_ok=True)


class ArtifactStore:
    """A directory of artifacts. ``label`` names it in messages ("run 12's artifacts")."""

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label

    def too_large(self, path: str, limit: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"artifact {path!r} is larger than the limit of {limit} bytes "
            f"({limit / 1024**3:.3g} GiB, setting runs.artifact_max_bytes): store it "
            "elsewhere (a dataset, a volume) or raise the limit",
            fields={"path": path, "limit": limit},
        )

    def translate(self, exc: OSError, path: str) -> Exception:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return InsufficientStorageError(
                f"no space left on the server's disk for {self.label} (artifact {path!r}): "
                "free some space and upload again",
                fields={"path": path, "errno": exc.errno},
            )
        return exc

    def resolve(self, path: str, *, allow_root: bool = False) -> Path:
        """``root/path`` after :func:`check_artifact_path` and a check that, symlinks
        resolved, it stays inside the root (InvalidInputError otherwise)."""
        parts = check_artifact_path(path, allow_root=allow_root)
        target = self.root.joinpath(*parts)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(target)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise InvalidInputError(
                f"invalid artifact path {path!r}: it leads outside {self.label}",
                fields={"path": path},
            )
        return target

    def begin(self, path: str, max_bytes: int, expected_size: int | None = None) -> ArtifactUpload:
        """Start writing ``path``; refused at once when ``expected_size`` (Content-Length)
        is over ``max_bytes``."""
        if expected_size is not None and expected_size > max_bytes:
            raise self.too_large(path, max_bytes)
        target = self.resolve(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise InvalidInputError(
                f"artifact path {path!r}: a part of it is a file, not a directory",
                fields={"path": path},
            ) from None
        except OSError as exc:
            raise self.translate(exc, path) from exc
        self.resolve(path)  # again, now that the directories exist (a symlinked parent)
        if target.is_dir():
            raise InvalidInputError(
                f"artifact {path!r} is a directory: upload the file under another name",
                fields={"path": path},
            )
        return ArtifactUpload(self, target, "/".join(check_artifact_path(path)), max_bytes)

    def file(self, path: str) -> Path:
        """The file at ``path``; NotFoundError naming it (and the store) otherwise."""
        target = self.resolve(path)
        if not target.is_file():
            raise NotFoundError(
                f"{self.label} have no file {path!r}: list them to see what is there",
                fields={"path": path},
            )
        return target

    def list(self, path: str = "", *, recursive: bool = False) -> builtins.list[ArtifactEntry]:
        """The entries under directory ``path`` (one level, or all with ``recursive``),
        sorted by path; a file path lists that file; a missing path lists nothing."""
        target = self.resolve(path, allow_root=True)
        prefix = "/".join(check_artifact_path(path, allow_root=True))
        if target.is_file():
            return [ArtifactEntry(prefix, False, target.stat().st_size)]
        if not target.is_dir():
            return []
        out: builtins.list[ArtifactEntry] = []
        self._walk(target, prefix, recursive, out)
        return sorted(out, key=lambda e: e.path)

    def _walk(
        self, directory: Path, prefix: str, recursive: bool, out: builtins.list[ArtifactEntry]
    ) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(PART_SUFFIX):
                continue
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    out.append(ArtifactEntry(rel, True, None))
                    if recursive:
                        self._walk(Path(entry.path), rel, recursive, out)
                elif entry.is_file(follow_symlinks=False):
                    out.append(ArtifactEntry(rel, False, entry.stat().st_size))
            except OSError:  # vanished while listing
                continue
