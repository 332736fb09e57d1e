"""Queries on run events (append-only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from trainyard.core.models import Event
from trainyard.core.status import RunStatus
from trainyard.server.store.tables import EventRow, utcnow

__all__ = [
    "get_last_event",
    "has_event",
    "insert_event",
    "insert_events",
    "list_events",
    "to_event",
]


def to_event(row: EventRow) -> Event:
    return Event(
        id=row.id,
        time=row.time,
        kind=row.kind,
        status=RunStatus(row.status) if row.status else None,
        replica=row.replica,
        reason=row.reason,
        message=row.message,
    )


def insert_event(
    session: Session,
    run_id: int,
    kind: str,
    *,
    status: RunStatus | None = None,
    replica: str | None = None,
    reason: str = "",
    message: str = "",
    time: datetime | None = None,
) -> EventRow:
    row = EventRow(
        run_id=run_id,
        time=time or utcnow(),
        kind=kind,
        status=status.value if status else None,
        replica=replica,
        reason=reason,
        message=message,
    )
    session.add(row)
    return row


def insert_events(
    session: Session, events: list[tuple[int, str, str, str]], *, time: datetime | None = None
) -> None:
    """Many ``(run_id, kind, reason, message)`` events in one executemany."""
    when = time or utcnow()
    session.execute(
        insert(EventRow),
        [
            {
                "run_id": run_id,
                "time": when,
                "kind": kind,
                "status": None,
                "replica": None,
                "reason": reason,
                "message": message,
            }
            for run_id, kind, reason, message in events
        ],
    )


def list_events(
    session: Session, run_id: int, after: int | None = None, limit: int = 10_000
) -> list[EventRow]:
    """The run's events, oldest first, with ``id > after`` when given."""
    stmt = select(EventRow).where(EventRow.run_id == run_id)
    if after is not None:
        stmt = stmt.where(EventRow.id > after)
    return list(session.scalars(stmt.order_by(EventRow.id).limit(limit)))


def get_last_event(session: Session, run_id: int, kind: str, reason: str) -> EventRow | None:
    """The run's newest event of ``kind`` with exactly this ``reason``."""
    stmt = (
        select(EventRow)
        .where(EventRow.run_id == run_id, EventRow.kind == kind, EventRow.reason == reason)
        .order_by(EventRow.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def has_event(session: Session, run_id: int, kind: str, reason: str, message: str) -> bool:
    """Whether the run already has an event of ``kind`` with this ``reason`` and ``message``."""
    stmt = (
        select(EventRow.id)
        .where(
            EventRow.run_id == run_id,
            EventRow.kind == kind,
            EventRow.reason == reason,
            EventRow.message == message,
        )
        .limit(1)
    )
    return session.scalars(stmt).first() is not None
