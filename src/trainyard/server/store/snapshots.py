"""Queries on code snapshots (content-addressed archives; the file lives on disk)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from trainyard.server.store._dialect import insert
from trainyard.server.store.tables import SnapshotRow, utcnow

__all__ = ["get_snapshot", "insert_snapshot"]


def get_snapshot(session: Session, snapshot_id: str) -> SnapshotRow | None:
    return session.get(SnapshotRow, snapshot_id)


def insert_snapshot(session: Session, snapshot_id: str, size: int) -> None:
    """Record the snapshot; uploading the same content twice is a no-op."""
    stmt = (
        insert(session, SnapshotRow)
        .values(id=snapshot_id, size=size, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    session.execute(stmt)
