"""Queries on runs and their replicas."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from trainyard.core.models import GitInfo, Placement, Replica, Run, TaskSpec
from trainyard.core.status import ReplicaStatus, RunStatus
from trainyard.server.store.metrics import delete_run_metrics
from trainyard.server.store.tables import (
    EventRow,
    GpuAllocationRow,
    PlacementRow,
    ProjectRow,
    ReplicaRow,
    RunRow,
    TaskRow,
    utcnow,
)

__all__ = [
    "RunState",
    "delete_run",
    "get_next_queued",
    "get_resource_cursor",
    "get_run",
    "get_run_by_build",
    "insert_run",
    "list_run_states",
    "list_runs",
    "to_replica",
    "to_run",
    "update_replicas",
    "update_resource_cursor",
]


def to_replica(row: ReplicaRow) -> Replica:
    return Replica(
        name=row.name,
        resource=row.resource,
        index=row.index,
        address=row.address,
        pid=row.pid,
        status=ReplicaStatus(row.status),
        exit_code=row.exit_code,
        signal=row.signal,
        restarts=row.restarts,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.reason,
        gpus=list(row.gpus or []),
    )


def to_run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        project=row.project.name,
        task=row.task.name,
        build_id=row.build_id,
        status=RunStatus(row.status),
        reason=row.reason,
        parameters=dict(row.parameters or {}),
        manifest=row.manifest,
        spec=TaskSpec.model_validate(row.spec),
        git=GitInfo.model_validate(row.git) if row.git is not None else None,
        snapshot_id=row.snapshot_id,
        executor=row.executor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        replicas=[to_replica(r) for r in row.replicas],
        archived=row.archived,
        submitted_by=row.submitted_by or "",
        priority=row.priority or 0,
        start_immediately=bool(row.start_immediately),
        group=row.project.group.name,
        placements=[
            Placement(
                replica=p.replica,
                node=p.node,
                cpu_millis=p.cpu_millis,
                memory_bytes=p.memory_bytes,
                gpus=list(p.gpus or []),
                shared=p.shared,
            )
            for p in row.placements
        ],
    )


@dataclass(frozen=True)
class RunState:
    """The few columns the background services poll, without joins."""

    id: int
    status: RunStatus
    observe_cursor: int
    claimed_at: datetime | None
    updated_at: datetime
    resource_cursor: int = 0  # where the executor's resource samples were stored up to


def insert_run(
    session: Session,
    *,
    project: ProjectRow,
    task: TaskRow,
    build_id: int,
    spec: TaskSpec,
    manifest: str,
    parameters: dict[str, Any],
    git: GitInfo | None,
    snapshot_id: str | None,
    executor: str,
    submitted_by: str = "",
    priority: int = 0,
    start_immediately: bool = False,
    scheduling: dict[str, Any] | None = None,
) -> RunRow:
    """``scheduling``: the demand columns (see ``services.scheduling.demand_columns``)."""
    now = utcnow()
    row = RunRow(
        project_id=project.id,
        task_id=task.id,
        build_id=build_id,
        status=RunStatus.QUEUED.value,
        reason="",
        parameters=parameters,
        manifest=manifest,
        spec=spec.model_dump(mode="json"),
        git=git.model_dump(mode="json") if git is not None else None,
        snapshot_id=snapshot_id,
        executor=executor,
        created_at=now,
        updated_at=now,
        archived=False,
        observe_cursor=0,
        submitted_by=submitted_by,
        priority=priority,
        start_immediately=start_immediately,
        overtaken=0,
        **(scheduling or {}),
    )
    session.add(row)
    session.flush()
    # A new run has no replicas or placements yet: say so instead of querying for them.
    set_committed_value(row, "replicas", [])
    set_committed_value(row, "placements", [])
    return row


def get_run(
    session: Session, run_id: int, *, lock: bool = False, light: bool = False
) -> RunRow | None:
    """The run, or None. ``lock`` takes its row lock (PostgreSQL) for a read-modify-write;
    on SQLite the write transaction already holds the database lock. ``light`` loads its
    replicas and placements only if they are used (a status change needs neither)."""
    stmt = select(RunRow).where(RunRow.id == run_id).execution_options(populate_existing=True)
    if light:
        stmt = stmt.options(lazyload(RunRow.replicas), lazyload(RunRow.placements))
    if lock:
        stmt = stmt.with_for_update(of=RunRow)
    return session.scalars(stmt).first()


def get_run_by_build(session: Session, project: str, task: str, build_id: int) -> RunRow | None:
    stmt = (
        select(RunRow)
        .join(RunRow.project)
        .join(RunRow.task)
        .where(ProjectRow.name == project, TaskRow.name == task, RunRow.build_id == build_id)
    )
    return session.scalars(stmt).first()


def list_runs(
    session: Session,
    *,
    project_id: int | None = None,
    task_id: int | None = None,
    statuses: Collection[RunStatus] | None = None,
    archived: bool | None = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RunRow], int]:
    """A page of runs, newest first, and the total count matching the filters.
    ``archived``: False (default) only live runs, True only archived ones, None both."""
    where: list[Any] = []
    if archived is not None:
        where.append(RunRow.archived == archived)
    if project_id is not None:
        where.append(RunRow.project_id == project_id)
    if task_id is not None:
        where.append(RunRow.task_id == task_id)
    if statuses:
        where.append(RunRow.status.in_([s.value for s in statuses]))
    total = session.execute(select(func.count(RunRow.id)).where(*where)).scalar_one()
    rows = session.scalars(
        select(RunRow).where(*where).order_by(RunRow.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def list_run_states(session: Session, statuses: Collection[RunStatus]) -> list[RunState]:
    """Id, status and bookkeeping of every run in ``statuses``, oldest first (cheap: one
    indexed query, no joins — the reconciler calls it many times a second). Runs created by
    tracking clients (executor ``external``) are left out: no backend runs them."""
    stmt = (
        select(
            RunRow.id,
            RunRow.status,
            RunRow.observe_cursor,
            RunRow.claimed_at,
            RunRow.updated_at,
            RunRow.resource_cursor,
        )
        .where(RunRow.status.in_([s.value for s in statuses]), RunRow.executor != "external")
        .order_by(RunRow.id)
    )
    return [
        RunState(
            id=r.id,
            status=RunStatus(r.status),
            observe_cursor=r.observe_cursor,
            claimed_at=r.claimed_at,
            updated_at=r.updated_at,
            resource_cursor=r.resource_cursor,
        )
        for r in session.execute(stmt)
    ]


def get_resource_cursor(session: Session, run_id: int) -> int | None:
    """Where the run's resource samples are stored up to; None if there is no such run."""
    value = session.scalar(select(RunRow.resource_cursor).where(RunRow.id == run_id))
    return int(value) if value is not None else None


def update_resource_cursor(session: Session, run_id: int, old: int, new: int) -> bool:
    """Move the run's resource cursor from ``old`` to ``new``; False (nothing changed) when
    it is not at ``old`` any more: another server stored those samples first. The row lock
    this takes is held to the end of the caller's transaction, so of two servers storing the
    same samples one waits, then finds the cursor moved."""
    result: Any = session.execute(
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.resource_cursor == old)
        .values(resource_cursor=new)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)


def get_next_queued(session: Session) -> RunRow | None:
    """The oldest queued run, locked for this transaction.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several servers claim different runs and never
    wait on each other. SQLite: the write transaction holds the database lock; the caller's
    status change (a conditional update) makes the claim visible on commit.
    """
    stmt = (
        select(RunRow)
        .where(RunRow.status == RunStatus.QUEUED.value)
        .order_by(RunRow.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=RunRow)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).first()


def update_replicas(session: Session, run: RunRow, replicas: list[Replica]) -> None:
    """Insert or update the run's replicas by name (replicas never disappear)."""
    by_name = {r.name: r for r in run.replicas}
    for replica in replicas:
        row = by_name.get(replica.name)
        if row is None:
            row = ReplicaRow(run_id=run.id, name=replica.name)
            run.replicas.append(row)
        row.resource = replica.resource
        row.index = replica.index
        row.address = replica.address
        row.pid = replica.pid
        row.status = replica.status.value
        row.exit_code = replica.exit_code
        row.signal = replica.signal
        row.restarts = replica.restarts
        row.started_at = replica.started_at
        row.finished_at = replica.finished_at
        row.reason = replica.reason
        row.gpus = list(replica.gpus)
    session.flush()


def delete_run(session: Session, run: RunRow) -> None:
    """Delete the run with its events and replicas (explicit deletes, so SQLite without
    foreign-key enforcement leaves no orphans either)."""
    session.execute(delete(EventRow).where(EventRow.run_id == run.id))
    delete_run_metrics(session, run.id)
    session.execute(delete(GpuAllocationRow).where(GpuAllocationRow.run_id == run.id))
    session.execute(delete(PlacementRow).where(PlacementRow.run_id == run.id))
    session.execute(delete(ReplicaRow).where(ReplicaRow.run_id == run.id))
    session.execute(delete(RunRow).where(RunRow.id == run.id))
    session.expunge(run)
    session.flush()
