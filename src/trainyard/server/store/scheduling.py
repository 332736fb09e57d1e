"""Queries on nodes, GPUs, pools, groups, placements, GPU allocations and the run queue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.orm import Session

from trainyard.core.models import Placement
from trainyard.core.status import RunStatus
from trainyard.server.store.tables import (
    DEFAULT_GROUP_ID,
    DEFAULT_POOL_ID,
    GpuAllocationRow,
    GpuRow,
    GroupRow,
    NodeRow,
    PlacementRow,
    PoolRow,
    ProjectRow,
    RunRow,
    SchedulerRow,
    TaskRow,
    utcnow,
)

__all__ = [
    "QueuedRow",
    "active_reservations",
    "allocations_by_gpu",
    "count_ahead",
    "ensure_defaults",
    "fingerprint",
    "get_group",
    "get_node",
    "get_pool",
    "insert_allocations",
    "insert_placements",
    "list_gpus",
    "list_groups",
    "list_nodes",
    "list_placements",
    "list_pools",
    "list_queued",
    "lock_scheduler",
    "queue_deadlines",
    "release_replica",
    "release_run",
    "to_placement",
]


def ensure_defaults(session: Session) -> None:
    """The default group and pool (ids 1) and the scheduler row, if missing (migration 0003
    creates them; a database emptied by hand gets them back)."""
    now = utcnow()
    if session.get(GroupRow, DEFAULT_GROUP_ID) is None:
        session.add(GroupRow(id=DEFAULT_GROUP_ID, name="default", is_default=True, created_at=now))
        session.flush()
    if session.get(PoolRow, DEFAULT_POOL_ID) is None:
        session.add(
            PoolRow(
                id=DEFAULT_POOL_ID,
                name="default",
                gpu_type=None,
                group_id=DEFAULT_GROUP_ID,
                is_default=True,
                created_at=now,
            )
        )
    if session.get(SchedulerRow, 1) is None:
        session.add(SchedulerRow(id=1, pass_by=""))
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        # Rows inserted with explicit ids: keep the sequences past them.
        for table in ("groups", "pools"):
            session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"GREATEST((SELECT max(id) FROM {table}), 1))"
                )
            )


def get_group(session: Session, name: str) -> GroupRow | None:
    return session.scalars(select(GroupRow).where(GroupRow.name == name)).first()


def list_groups(session: Session) -> list[GroupRow]:
    return list(
        session.scalars(select(GroupRow).order_by(GroupRow.is_default.desc(), GroupRow.name))
    )


def get_pool(session: Session, name: str) -> PoolRow | None:
    return session.scalars(select(PoolRow).where(PoolRow.name == name)).first()


def list_pools(session: Session) -> list[PoolRow]:
    return list(session.scalars(select(PoolRow).order_by(PoolRow.is_default.desc(), PoolRow.name)))


def get_node(session: Session, name: str) -> NodeRow | None:
    return session.scalars(select(NodeRow).where(NodeRow.name == name)).first()


def list_nodes(session: Session) -> list[NodeRow]:
    return list(session.scalars(select(NodeRow).order_by(NodeRow.name)))


def list_gpus(session: Session, *, node_id: int | None = None) -> list[GpuRow]:
    stmt = select(GpuRow).join(GpuRow.node).order_by(NodeRow.name, GpuRow.index)
    if node_id is not None:
        stmt = stmt.where(GpuRow.node_id == node_id)
    return list(session.scalars(stmt).unique())


def lock_scheduler(session: Session, by: str) -> None:
    """Serialise scheduling passes across servers: one UPDATE of the scheduler row, whose
    row lock (PostgreSQL) is held until the transaction ends; on SQLite the write
    transaction already excludes every other writer."""
    session.execute(
        update(SchedulerRow)
        .where(SchedulerRow.id == 1)
        .values(pass_at=utcnow(), pass_by=by[:64])
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class QueuedRow:
    """A queued run as the scheduler needs it (one query, no spec parsing)."""

    id: int
    ref: str
    project: str
    group: str
    group_id: int
    priority: int
    start_immediately: bool
    overtaken: int
    timeout_seconds: int | None
    demand: list[Any]
    gpus: int
    reason: str
    created_at: datetime
    submitted_by: str


def list_queued(session: Session, *, lock: bool = False) -> list[QueuedRow]:
    """Every queued run in scheduling order: priority (highest first), then submission."""
    stmt = (
        select(
            RunRow.id,
            RunRow.build_id,
            ProjectRow.name.label("project"),
            TaskRow.name.label("task"),
            GroupRow.name.label("group"),
            ProjectRow.group_id,
            RunRow.priority,
            RunRow.start_immediately,
            RunRow.overtaken,
            RunRow.timeout_seconds,
            RunRow.demand,
            RunRow.gpus,
            RunRow.reason,
            RunRow.created_at,
            RunRow.submitted_by,
        )
        .join(ProjectRow, ProjectRow.id == RunRow.project_id)
        .join(TaskRow, TaskRow.id == RunRow.task_id)
        .join(GroupRow, GroupRow.id == ProjectRow.group_id)
        .where(RunRow.status == RunStatus.QUEUED.value)
        .order_by(RunRow.priority.desc(), RunRow.id)
    )
    if lock:
        stmt = stmt.with_for_update(of=RunRow, skip_locked=True)
    return [
        QueuedRow(
            id=r.id,
            ref=f"{r.project}/{r.task}#{r.build_id}",
            project=r.project,
            group=r.group,
            group_id=r.group_id,
            priority=r.priority,
            start_immediately=bool(r.start_immediately),
            overtaken=r.overtaken,
            timeout_seconds=r.timeout_seconds,
            demand=list(r.demand or []),
            gpus=r.gpus,
            reason=r.reason,
            created_at=r.created_at,
            submitted_by=r.submitted_by or "",
        )
        for r in session.execute(stmt)
    ]


def fingerprint(session: Session) -> tuple[Any, ...]:
    """A cheap digest of everything a scheduling pass depends on: the queue, what is held,
    the GPUs and their pools, groups of projects and pools, node sizes. Equal digests mean a
    pass would decide the same (except for queue timeouts, which the caller tracks)."""
    queued = RunRow.status == RunStatus.QUEUED.value
    parts = (
        select(func.count(RunRow.id), func.max(RunRow.id), func.sum(RunRow.priority)).where(queued),
        select(func.count(PlacementRow.id)).where(PlacementRow.released_at.is_(None)),
        select(func.count(GpuAllocationRow.id), func.max(GpuAllocationRow.id)),
        select(func.count(GpuRow.id), func.sum(GpuRow.pool_id), func.sum(GpuRow.index)).where(
            GpuRow.present.is_(True)
        ),
        select(func.count(ProjectRow.id), func.sum(ProjectRow.group_id)),
        select(func.count(PoolRow.id), func.sum(PoolRow.group_id)),
        select(func.sum(NodeRow.cpu_millis), func.sum(NodeRow.memory_bytes)),
    )
    return tuple(tuple(session.execute(q).one()) for q in parts)


def queue_deadlines(session: Session) -> list[tuple[datetime, int]]:
    """(queued at, timeout seconds) of the queued runs that have a timeout."""
    stmt = select(RunRow.created_at, RunRow.timeout_seconds).where(
        RunRow.status == RunStatus.QUEUED.value, RunRow.timeout_seconds.is_not(None)
    )
    return [(r[0], int(r[1] or 0)) for r in session.execute(stmt)]


def count_ahead(session: Session, run: RunRow, group_id: int) -> tuple[int, int]:
    """(runs ahead of ``run`` in its group, runs ahead in the whole queue)."""
    ahead = (RunRow.priority > run.priority) | (
        (RunRow.priority == run.priority) & (RunRow.id < run.id)
    )
    stmt = (
        select(
            func.count(RunRow.id),
            func.coalesce(func.sum(case((ProjectRow.group_id == group_id, 1), else_=0)), 0),
        )
        .join(ProjectRow, ProjectRow.id == RunRow.project_id)
        .where(RunRow.status == RunStatus.QUEUED.value, ahead)
    )
    total, in_group = session.execute(stmt).one()
    return int(in_group), int(total)


def to_placement(row: PlacementRow) -> Placement:
    return Placement(
        replica=row.replica,
        node=row.node,
        cpu_millis=row.cpu_millis,
        memory_bytes=row.memory_bytes,
        gpus=list(row.gpus or []),
        shared=row.shared,
    )


def list_placements(session: Session, run_id: int) -> list[PlacementRow]:
    return list(
        session.scalars(
            select(PlacementRow).where(PlacementRow.run_id == run_id).order_by(PlacementRow.id)
        )
    )


def insert_placements(session: Session, run_id: int, placements: Iterable[Placement]) -> None:
    now = utcnow()
    for p in placements:
        session.add(
            PlacementRow(
                run_id=run_id,
                replica=p.replica,
                node=p.node,
                cpu_millis=p.cpu_millis,
                memory_bytes=p.memory_bytes,
                gpus=list(p.gpus),
                shared=p.shared,
                placed_at=now,
            )
        )
    session.flush()


def insert_allocations(
    session: Session, run_id: int, placements: Iterable[Placement], gpu_ids: dict[str, int]
) -> None:
    """One allocation per GPU of each placement. An exclusive allocation of a GPU another
    replica holds exclusively violates ``uq_gpu_allocations_exclusive`` (IntegrityError)."""
    for p in placements:
        for uuid in p.gpus:
            session.add(
                GpuAllocationRow(
                    gpu_id=gpu_ids[uuid], run_id=run_id, replica=p.replica, shared=p.shared
                )
            )
    session.flush()


def allocations_by_gpu(session: Session) -> dict[int, list[tuple[int, str, str, bool]]]:
    """gpu id -> [(run id, run ref, replica, shared)] for every GPU held now."""
    stmt = (
        select(
            GpuAllocationRow.gpu_id,
            GpuAllocationRow.run_id,
            GpuAllocationRow.replica,
            GpuAllocationRow.shared,
            RunRow.build_id,
            ProjectRow.name.label("project"),
            TaskRow.name.label("task"),
        )
        .join(RunRow, RunRow.id == GpuAllocationRow.run_id)
        .join(ProjectRow, ProjectRow.id == RunRow.project_id)
        .join(TaskRow, TaskRow.id == RunRow.task_id)
        .order_by(GpuAllocationRow.id)
    )
    out: dict[int, list[tuple[int, str, str, bool]]] = {}
    for r in session.execute(stmt):
        ref = f"{r.project}/{r.task}#{r.build_id}"
        out.setdefault(r.gpu_id, []).append((r.run_id, ref, r.replica, bool(r.shared)))
    return out


def active_reservations(session: Session) -> dict[str, tuple[int, int]]:
    """node name -> (CPU millicores, memory bytes) reserved by unreleased placements."""
    stmt = (
        select(
            PlacementRow.node,
            func.coalesce(func.sum(PlacementRow.cpu_millis), 0),
            func.coalesce(func.sum(PlacementRow.memory_bytes), 0),
        )
        .where(PlacementRow.released_at.is_(None))
        .group_by(PlacementRow.node)
    )
    return {node: (int(cpu), int(mem)) for node, cpu, mem in session.execute(stmt)}


def release_run(session: Session, run_id: int) -> None:
    """Free everything the run holds (its placements stay, marked released)."""
    session.execute(
        delete(GpuAllocationRow)
        .where(GpuAllocationRow.run_id == run_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(PlacementRow)
        .where(PlacementRow.run_id == run_id, PlacementRow.released_at.is_(None))
        .values(released_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def release_replica(session: Session, run_id: int, replica: str) -> None:
    """Free what one finished replica holds while the rest of its run goes on."""
    session.execute(
        delete(GpuAllocationRow).where(
            GpuAllocationRow.run_id == run_id, GpuAllocationRow.replica == replica
        )
    )
    session.execute(
        update(PlacementRow)
        .where(
            PlacementRow.run_id == run_id,
            PlacementRow.replica == replica,
            PlacementRow.released_at.is_(None),
        )
        .values(released_at=utcnow())
    )
