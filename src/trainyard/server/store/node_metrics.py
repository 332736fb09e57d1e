"""Node samples: one row per (node, key, time), kept for a bounded time.

Why rows here while run metrics are packed in chunks (``store.metrics``): a node has a few
dozen keys sampled every 10 s and kept for a week (~60,000 rows per key), deleted by age;
rows make that delete one indexed statement and the window query one ``GROUP BY`` that the
database answers from the primary key, with nothing to decode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, cast, delete, func, select
from sqlalchemy.orm import Session

from trainyard.server.store._dialect import insert
from trainyard.server.store.tables import NodeSampleRow

__all__ = ["delete_samples_before", "insert_samples", "list_bucket_means"]


def insert_samples(
    session: Session, node_id: int, time: float, values: Iterable[tuple[str, float]]
) -> None:
    """Store one sample of the node (``(key, value)`` pairs at ``time``). A key already
    sampled at that time (another server of the same machine) keeps its first value."""
    rows = [{"node_id": node_id, "key": k, "time": time, "value": v} for k, v in values]
    if not rows:
        return
    session.execute(
        insert(session, NodeSampleRow)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["node_id", "key", "time"])
    )


def delete_samples_before(session: Session, time: float) -> int:
    """Delete every node's samples older than ``time``; how many went."""
    result: Any = session.execute(delete(NodeSampleRow).where(NodeSampleRow.time < time))
    return int(result.rowcount or 0)


def _bucket(session: Session, interval: int) -> Any:
    """The number of the ``interval``-second bucket of a sample's time (times are positive
    epoch seconds, so SQLite's truncating cast is a floor; PostgreSQL rounds casts)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(NodeSampleRow.time / interval), Integer)
    return cast(NodeSampleRow.time / interval, Integer)


def list_bucket_means(
    session: Session, node_id: int, since: float, until: float, interval: int
) -> list[tuple[str, float, float]]:
    """``(key, bucket start, mean)`` of the node's samples with time in [since, until],
    per key and ``interval``-second bucket aligned on multiples of ``interval``; by key,
    then time."""
    bucket = _bucket(session, interval).label("bucket")
    stmt = (
        select(NodeSampleRow.key, bucket, func.avg(NodeSampleRow.value))
        .where(
            NodeSampleRow.node_id == node_id,
            NodeSampleRow.time >= since,
            NodeSampleRow.time <= until,
        )
        .group_by(NodeSampleRow.key, bucket)
        .order_by(NodeSampleRow.key, bucket)
    )
    return [
        (str(key), float(int(b) * interval), float(mean)) for key, b, mean in session.execute(stmt)
    ]
