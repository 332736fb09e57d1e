"""Safe handling of code snapshot archives (``.tar.gz``).

:func:`check_archive` reads a whole archive once and refuses it unless every member is a
plain file or a directory: symlinks and hard links are refused whatever they point at (the
CLI stores a link inside the directory as a regular file with the target's content). Names
must be relative, free of ``..``, NUL and backslashes, and must not repeat. The gzip
checksum is verified, and the number of members and the unpacked size are bounded (a small
archive can expand to terabytes). :func:`extract_archive` checks again, extracts with the
standard library's ``data`` filter as a second line of defence, into a temporary directory
that is renamed into place, so a crash never leaves a half-extracted tree where a run would
use it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from trainyard.core.errors import InvalidInputError

__all__ = ["ArchiveInfo", "check_archive", "extract_archive"]

DEFAULT_MAX_MEMBERS = 200_000
DEFAULT_MAX_UNPACKED_BYTES = 10 * 1024**3
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveInfo:
    members: int
    unpacked_bytes: int


def _refuse(what: str, member: str | None = None) -> InvalidInputError:
    where = f": member {member!r}" if member is not None else ""
    return InvalidInputError(
        f"code snapshot refused{where}: {what}",
        fields={"member": member} if member is not None else {},
    )


def _check_name(name: str) -> str:
    """The member's normalised relative path, or an error."""
    if not name or "\x00" in name or "\\" in name:
        raise _refuse("names must not be empty or contain NUL or backslashes", name)
    if name.startswith("/"):
        raise _refuse("absolute paths are not allowed", name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse("'..' is not allowed in paths", name)
    return "/".join(parts)


def _check_member(member: tarfile.TarInfo, seen: dict[str, str]) -> str:
    name = _check_name(member.name)
    kind: str
    if member.isreg():
        kind = "file"
    elif member.isdir():
        kind = "dir"
    elif member.issym() or member.islnk():
        what = "a symlink" if member.issym() else "a hard link"
        raise _refuse(
            f"it is {what} (to {member.linkname!r}) and links are not allowed; store the file "
            "itself (`trainyard run` stores links inside the directory as regular files)",
            member.name,
        )
    else:
        raise _refuse("devices, FIFOs and other special files are not allowed", member.name)
    previous = seen.get(name)
    if previous is not None and not (previous == kind == "dir"):
        raise _refuse("the name appears twice", member.name)
    if name:
        seen[name] = kind
    return name


def check_archive(
    path: Path,
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> ArchiveInfo:
    """Read the whole ``.tar.gz`` at ``path`` and raise InvalidInputError unless it is safe.

    Memory stays bounded (streamed); the gzip CRC and length are verified at the end.
    """
    seen: dict[str, str] = {}
    count = unpacked = 0
    try:
        with gzip.open(path, "rb") as gz:
            tar = tarfile.open(fileobj=gz, mode="r|")  # noqa: SIM115 - closed with gz
            for member in tar:
                count += 1
                if count > max_members:
                    raise _refuse(f"more than {max_members} members")
                _check_member(member, seen)
                if member.isreg():
                    unpacked += member.size
                    if unpacked > max_unpacked_bytes:
                        raise _refuse(f"it unpacks to more than {max_unpacked_bytes} bytes")
            # Read to the end so that gzip verifies its checksum and length trailer.
            while gz.read(_CHUNK):
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(
            f"code snapshot is not a valid .tar.gz archive ({exc}); create it with "
            "`tar czf code.tar.gz -C DIR .` or let `trainyard run` upload the directory",
            fields={"reason": str(exc)},
        ) from exc
    return ArchiveInfo(members=count, unpacked_bytes=unpacked)


def extract_archive(path: Path, dest: Path) -> None:
    """Extract the archive at ``path`` into the directory ``dest`` (created; must not exist).

    Idempotent: if ``dest`` exists it is assumed to be a complete earlier extraction (it only
    ever appears through an atomic rename). Raises InvalidInputError for an unsafe or corrupt
    archive and OSError for I/O failures; nothing is left behind in either case.
    """
    if dest.exists():
        return
    check_archive(path)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():  # else another process extracted it first: same content
                raise
    except tarfile.TarError as exc:
        raise _refuse(str(exc)) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
