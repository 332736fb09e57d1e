"""Code snapshots: a deterministic ``.tar.gz`` of the directory holding a manifest.

What goes in: every file under the directory except ``.git/`` and what ``.gitignore`` files
(the root's and nested ones, with git's precedence: a deeper file and a later line win) and a
``.trainyardignore`` at the root exclude. ``.trainyardignore`` has the same syntax and is
consulted first, so it can also re-include (``!data/small.csv``) what a ``.gitignore`` leaves
out. As with git, nothing below an excluded directory comes back.

Symlinks pointing at a file that is itself in the snapshot are stored as regular files with the
target's content; other links (outside the directory, into ``.git`` or ignored files, dangling,
to directories) are skipped with a warning. The archive never holds a link member: the server
refuses any archive with a symlink or hard link in it.

Archives are byte-for-byte reproducible (sorted entries, mtime 0, no owners), so the server's
content-addressed id is stable for unchanged code.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from pathspec import GitIgnoreSpec

from trainyard.client.git import git_info
from trainyard.core.errors import InvalidInputError, PayloadTooLargeError
from trainyard.core.models import GitInfo

__all__ = ["IGNORE_FILE", "SnapshotArchive", "format_size", "make_snapshot"]

IGNORE_FILE = ".trainyardignore"
_GITIGNORE = ".gitignore"
_ALWAYS_EXCLUDED = frozenset({".git"})
_BIGGEST_SHOWN = 5


def format_size(nbytes: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: sizes for messages."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class SnapshotArchive:
    """A snapshot written to ``path`` (a temporary file unless a destination was given).

    Use it as a context manager, or call :meth:`remove`, to delete the file.
    """

    path: Path
    size: int  # compressed bytes
    files: int  # regular files stored
    git: GitInfo | None
    warnings: list[str] = field(default_factory=list)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SnapshotArchive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


@dataclass(frozen=True)
class _Entry:
    arcname: str
    source: Path | None  # None for a directory
    size: int
    mode: int


class _IgnoreRules:
    """Decides what is left out, following git's precedence between ignore files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.override = self._load(root / IGNORE_FILE)
        # (directory relative to root, "" for the root; its .gitignore), shallowest first
        self.stack: list[tuple[str, GitIgnoreSpec]] = []

    @staticmethod
    def _load(path: Path) -> GitIgnoreSpec | None:
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from exc
        return GitIgnoreSpec.from_lines(text.splitlines())

    def enter(self, rel_dir: str, directory: Path) -> bool:
        """Push ``directory``'s .gitignore if it has one; True if one was pushed."""
        spec = self._load(directory / _GITIGNORE)
        if spec is None:
            return False
        self.stack.append((rel_dir, spec))
        return True

    def leave(self) -> None:
        self.stack.pop()

    def ignored(self, rel: str, is_dir: bool) -> bool:
        if rel.rsplit("/", 1)[-1] in _ALWAYS_EXCLUDED:
            return True
        candidate = rel + "/" if is_dir else rel
        if self.override is not None:
            verdict = self.override.check_file(candidate).include
            if verdict is not None:
                return verdict
        for base, spec in reversed(self.stack):
            sub = candidate[len(base) + 1 :] if base else candidate
            verdict = spec.check_file(sub).include
            if verdict is not None:
                return verdict
        return False


def _file_mode(st_mode: int) -> int:
    # Only the executable bit is worth keeping; owners, groups and umasks are not reproducible.
    return 0o755 if st_mode & 0o111 else 0o644


@dataclass(frozen=True)
class _Link:
    arcname: str
    target_text: str  # as written in the link, for messages
    target: Path  # fully resolved


def _collect(root: Path) -> tuple[list[_Entry], list[str]]:
    """Walk ``root`` in sorted order: what to store, and the warnings for what was skipped."""
    rules = _IgnoreRules(root)
    found: list[_Entry | _Link] = []
    warnings: list[str] = []

    def walk(directory: Path, rel_dir: str) -> None:
        pushed = rules.enter(rel_dir, directory)
        try:
            try:
                children = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot read directory {directory}: {exc.strerror}; fix its permissions or "
                    f"list it in {IGNORE_FILE}"
                ) from exc
            for child in children:
                rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
                path = Path(child.path)
                if child.is_symlink():
                    if not rules.ignored(rel, path.is_dir()):
                        found.append(_Link(rel, os.readlink(path), path.resolve()))
                elif child.is_dir(follow_symlinks=False):
                    if not rules.ignored(rel, True):
                        found.append(_Entry(rel, None, 0, 0o755))
                        walk(path, rel)
                elif child.is_file(follow_symlinks=False):
                    if not rules.ignored(rel, False):
                        st = child.stat(follow_symlinks=False)
                        found.append(_Entry(rel, path, st.st_size, _file_mode(st.st_mode)))
                elif not rules.ignored(rel, False):
                    warnings.append(f"skipped {rel}: not a regular file (a socket, pipe or device)")
        finally:
            if pushed:
                rules.leave()

    walk(root, "")
    # A link is stored as a copy of the file it points at, and only if that file is itself in
    # the snapshot: a link must not smuggle in .git/config or what an ignore file leaves out.
    files = {e.arcname: e for e in found if isinstance(e, _Entry) and e.source is not None}
    real_root = root.resolve()
    entries: list[_Entry] = []
    for item in found:
        if isinstance(item, _Entry):
            entries.append(item)
            continue
        what = f"skipped symlink {item.arcname} -> {item.target_text}"
        if not item.target.exists():
            warnings.append(f"{what}: its target does not exist")
        elif not item.target.is_relative_to(real_root):
            warnings.append(
                f"{what}: it points outside {root}, and a snapshot holds only the directory's "
                "own files"
            )
        elif item.target.is_dir():
            warnings.append(f"{what}: links to directories are not stored")
        else:
            target = files.get(item.target.relative_to(real_root).as_posix())
            if target is None:
                warnings.append(
                    f"{what}: its target is left out of the snapshot (.git, or an ignore file)"
                )
            else:
                entries.append(_Entry(item.arcname, target.source, target.size, target.mode))
    return entries, warnings


class _TooBigError(Exception):
    def __init__(self, written: int) -> None:
        super().__init__(written)
        self.written = written


class _LimitedWriter:
    """A write-only file that refuses to grow past ``limit`` bytes (aborting mid-file, so a
    10 GB dataset is never compressed only to be refused)."""

    def __init__(self, fh: IO[bytes], limit: int) -> None:
        self._fh = fh
        self._limit = limit
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self._limit:
            raise _TooBigError(self.written)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


def _too_big(directory: Path, max_bytes: int, written: int, entries: list[_Entry]) -> Exception:
    files = [e for e in entries if e.source is not None]
    total = sum(e.size for e in files)
    biggest = sorted(files, key=lambda e: (-e.size, e.arcname))[:_BIGGEST_SHOWN]
    listing = ", ".join(f"{e.arcname} ({format_size(e.size)})" for e in biggest)
    return PayloadTooLargeError(
        f"the code snapshot of {directory} is over the {format_size(max_bytes)} limit "
        f"(more than {format_size(written)} compressed; {format_size(total)} in "
        f"{len(files)} files before compression). Biggest files: {listing}. List what the run "
        f"does not need in {directory / IGNORE_FILE} (same syntax as .gitignore).",
        fields={
            "limit": max_bytes,
            "size_at_least": written,
            "uncompressed": total,
            "biggest": [{"path": e.arcname, "size": e.size} for e in biggest],
        },
    )


def _write(entries: list[_Entry], out: _LimitedWriter) -> int:
    """Write the archive; returns the number of regular files stored."""
    files = 0
    # mtime=0 and no file name in the gzip header: identical input gives identical bytes.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,  # type: ignore[arg-type]
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            info = tarfile.TarInfo(entry.arcname)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = entry.mode
            if entry.source is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = entry.size
            try:
                with entry.source.open("rb") as fh:
                    tar.addfile(info, fh)
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot read {entry.source} for the code snapshot "
                    f"({exc.strerror or exc}); fix its permissions, or list it in {IGNORE_FILE}"
                    " if the run does not need it"
                ) from exc
            files += 1
    return files


def make_snapshot(directory: Path, max_bytes: int, *, dest: Path | None = None) -> SnapshotArchive:
    """Archive ``directory`` as a deterministic ``.tar.gz`` of at most ``max_bytes``.

    Raises PayloadTooLargeError past the limit (naming the biggest files and suggesting
    ``.trainyardignore``), InvalidInputError if the directory or a file in it cannot be read.
    The archive goes to ``dest`` or to a temporary file; the caller removes it.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInputError(f"cannot snapshot {root}: not a directory")
    entries, warnings = _collect(root)
    if dest is None:
        fd, name = tempfile.mkstemp(prefix="trainyard-snapshot-", suffix=".tar.gz")
        os.close(fd)
        path = Path(name)
    else:
        path = Path(dest)
    try:
        with path.open("wb") as fh:
            out = _LimitedWriter(fh, max_bytes)
            try:
                files = _write(entries, out)
            except _TooBigError as exc:
                raise _too_big(root, max_bytes, exc.written, entries) from None
            except tarfile.TarError as exc:
                # e.g. a file that shrank while it was being read
                raise InvalidInputError(
                    f"a file in {root} changed while the code snapshot was made ({exc}); "
                    "try again once it is no longer being written"
                ) from exc
        size = path.stat().st_size
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SnapshotArchive(path=path, size=size, files=files, git=git_info(root), warnings=warnings)
