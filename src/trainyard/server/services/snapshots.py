"""Code snapshots: receive an upload, check it is a safe archive, store it by content."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.server.services.context import ServiceContext
from trainyard.server.store import snapshots as store
from trainyard.storage.archive import check_archive
from trainyard.storage.snapshots import SnapshotStore, SnapshotUpload, is_snapshot_id

__all__ = [
    "SnapshotInfo",
    "check_snapshot",
    "finish_upload",
    "snapshot_path",
    "start_upload",
]

# A snapshot may unpack to this many times its compressed size limit, and no more.
_UNPACK_FACTOR = 50


@dataclass(frozen=True)
class SnapshotInfo:
    id: str  # sha256 hex of the archive
    size: int


def _store(ctx: ServiceContext) -> SnapshotStore:
    return SnapshotStore(ctx.settings.snapshots_dir)


def start_upload(ctx: ServiceContext, content_length: int | None) -> SnapshotUpload:
    """Open an upload; PayloadTooLargeError at once if ``content_length`` is over the limit."""
    return _store(ctx).begin(ctx.settings.runs.snapshot_max_bytes, content_length)


def finish_upload(ctx: ServiceContext, upload: SnapshotUpload) -> SnapshotInfo:
    """Check the uploaded archive, move it to its content address and record it.

    Blocks (reads the whole archive): call from a worker thread. On any error the upload's
    file is removed and nothing is recorded.
    """
    try:
        snapshot_id, size = upload.finish_writing()
        if size == 0:
            raise InvalidInputError(
                "code snapshot is empty: send a .tar.gz archive as the request body "
                "(Content-Type: application/gzip)"
            )
        check_archive(
            upload.tmp_path,
            max_unpacked_bytes=ctx.settings.runs.snapshot_max_bytes * _UNPACK_FACTOR,
        )
        upload.commit()
    finally:
        upload.abort()  # a no-op once committed
    with ctx.db.write() as session:
        store.insert_snapshot(session, snapshot_id, size)
    return SnapshotInfo(id=snapshot_id, size=size)


def check_snapshot(ctx: ServiceContext, snapshot_id: str) -> None:
    """InvalidInputError for a malformed id, NotFoundError unless it was uploaded here."""
    if not is_snapshot_id(snapshot_id):
        raise InvalidInputError(
            f"snapshot id {snapshot_id!r} is malformed: it is the 64-hex-digit id returned by "
            "POST /api/v1/snapshots",
            fields={"snapshot_id": snapshot_id},
        )
    with ctx.db.read() as session:
        known = store.get_snapshot(session, snapshot_id) is not None
    if not known or not _store(ctx).exists(snapshot_id):
        raise NotFoundError(
            f"snapshot {snapshot_id} not found — upload the code first with "
            "POST /api/v1/snapshots (`trainyard run` does this for you)",
            fields={"snapshot_id": snapshot_id},
        )


def snapshot_path(ctx: ServiceContext, snapshot_id: str) -> Path:
    return _store(ctx).path(snapshot_id)
