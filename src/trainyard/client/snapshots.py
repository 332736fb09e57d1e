"""``/snapshots``: upload a code snapshot archive made by :func:`trainyard.client.make_snapshot`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from trainyard.client.http import Transport

__all__ = ["SnapshotsAPI"]

_CHUNK = 1 << 20


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


class SnapshotsAPI:
    """Code snapshots are content-addressed: uploading the same archive twice gives the same id."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def upload(self, path: Path) -> str:
        """Upload a ``.tar.gz`` and return its id (sha256 hex).

        Raises PayloadTooLargeError past the server's limit and InvalidInputError if the server
        finds the archive corrupt or unsafe.
        """
        size = path.stat().st_size
        # Streamed so a big archive is never held in memory; the length lets the server refuse an
        # oversized upload before reading it.
        reply = self._t.request(
            "POST",
            "/snapshots",
            content=_chunks(path),
            headers={"Content-Type": "application/gzip", "Content-Length": str(size)},
            timeout=max(self._t.timeout, 300.0),
        )
        return str(reply["id"])
