"""Artifact paths: the rule shared by the server's stores and the clients, which check a path
before sending it (an HTTP client would otherwise normalise ``a/../b`` into ``b``).

A path is relative and made of plain names: no leading ``/``, no ``..`` or ``.``, no empty
part, backslash or NUL; at most 1,024 characters, 255 per name. Names like ``.x.part`` are
reserved for uploads in progress.
"""

from __future__ import annotations

from trainyard.core.errors import InvalidInputError

__all__ = ["PART_SUFFIX", "check_artifact_path"]

PART_SUFFIX = ".part"  # hidden ".<name>.<random>.part" files are uploads in progress
_MAX_PATH = 1024
_MAX_SEGMENT = 255


def check_artifact_path(path: str, *, allow_root: bool = False) -> list[str]:
    """The segments of a safe relative artifact path; InvalidInputError naming the rule it
    breaks otherwise. ``allow_root``: "" (the store's root) is accepted (listing)."""
    if not isinstance(path, str):
        raise InvalidInputError("an artifact path must be text")
    stripped = path.strip("/")
    if not stripped:
        if allow_root:
            return []
        raise InvalidInputError(
            "an artifact path is required, e.g. 'model.pt' or 'eval/report.html'"
        )
    if len(path) > _MAX_PATH:
        raise InvalidInputError(
            f"artifact path is {len(path)} characters long; the limit is {_MAX_PATH}",
            fields={"length": len(path)},
        )
    parts = stripped.split("/")
    if (
        path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") or len(p) > _MAX_SEGMENT for p in parts)
    ):
        raise InvalidInputError(
            f"invalid artifact path {path!r}: use a relative path of plain names "
            "(no leading '/', '..', '.', empty part, backslash or NUL)",
            fields={"path": path},
        )
    if parts[-1].startswith(".") and parts[-1].endswith(PART_SUFFIX):
        raise InvalidInputError(
            f"invalid artifact path {path!r}: names like '.x.part' are reserved for uploads "
            "in progress",
            fields={"path": path},
        )
    return parts
