"""``/runs/{id}/artifacts``: files a run logs (``trainyard.log_artifact``), stored in the
run's output directory on the server."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from trainyard.client.http import Transport
from trainyard.client.snapshots import _chunks
from trainyard.core.artifacts import check_artifact_path

__all__ = ["Artifact", "ArtifactsAPI"]

_UPLOAD_TIMEOUT = 600.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run's artifacts, '/'-separated
    is_dir: bool
    size: int | None  # bytes; None for a directory


def _artifact(data: dict[str, object]) -> Artifact:
    size = data.get("size")
    return Artifact(
        path=str(data["path"]),
        is_dir=bool(data.get("is_dir")),
        size=int(size) if isinstance(size, int) else None,
    )


def _quoted(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.split("/"))


class ArtifactsAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def upload(self, run_id: int, local_path: str | Path, artifact_path: str) -> Artifact:
        """Upload one file as ``artifact_path`` of the run (replacing a file of that name).

        Streamed, never held in memory. Raises PayloadTooLargeError past the server's limit,
        InsufficientStorageError when its disk is full, InvalidInputError for a bad path,
        ConflictError once the run has finished, NotFoundError for the run.
        """
        artifact_path = "/".join(check_artifact_path(artifact_path))
        local = Path(local_path)
        size = local.stat().st_size
        data = self._t.request(
            "PUT",
            f"/runs/{int(run_id)}/artifacts/{_quoted(artifact_path)}",
            content=_chunks(local),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=max(self._t.timeout, _UPLOAD_TIMEOUT),
        )
        return _artifact(data)

    def list(
        self, run_id: int, path: str = "", *, recursive: bool = False
    ) -> builtins.list[Artifact]:
        """The run's artifacts under directory ``path`` (the top by default), sorted."""
        path = "/".join(check_artifact_path(path, allow_root=True))
        data = self._t.get(
            f"/runs/{int(run_id)}/artifacts", params={"path": path or None, "recursive": recursive}
        )
        return [_artifact(item) for item in data["items"]]

    def download(self, run_id: int, artifact_path: str, out: BinaryIO) -> int:
        """Write the artifact's bytes to ``out``; returns how many."""
        written = 0
        for chunk in self._iter(run_id, artifact_path):
            out.write(chunk)
            written += len(chunk)
        return written

    def _iter(self, run_id: int, artifact_path: str) -> Iterator[bytes]:
        artifact_path = "/".join(check_artifact_path(artifact_path))
        with self._t.stream(
            f"/runs/{int(run_id)}/artifacts/{_quoted(artifact_path)}",
            read_timeout=_UPLOAD_TIMEOUT,
        ) as response:
            yield from response.iter_bytes(_CHUNK)
