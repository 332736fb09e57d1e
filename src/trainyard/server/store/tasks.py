"""Queries on tasks, including the atomic BUILD_ID counter."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from trainyard.core.models import Task, TaskSpec
from trainyard.server.store._dialect import insert
from trainyard.server.store.tables import ProjectRow, TaskRow, utcnow

__all__ = [
    "get_task",
    "insert_or_update_task",
    "insert_task",
    "list_tasks",
    "to_task",
    "update_next_build_id",
    "update_task",
]


def to_task(row: TaskRow) -> Task:
    return Task(
        id=row.id,
        project=row.project.name,
        name=row.name,
        format=row.format,  # type: ignore[arg-type]  # pydantic coerces the enum value
        manifest=row.manifest,
        spec=TaskSpec.model_validate(row.spec),
        created_at=row.created_at,
        updated_at=row.updated_at,
        runs_count=row.runs_count,
    )


def get_task(session: Session, project: ProjectRow, name: str) -> TaskRow | None:
    return session.scalars(
        select(TaskRow).where(TaskRow.project_id == project.id, TaskRow.name == name)
    ).first()


def list_tasks(session: Session, project: ProjectRow) -> list[TaskRow]:
    return list(
        session.scalars(
            select(TaskRow).where(TaskRow.project_id == project.id).order_by(TaskRow.name)
        )
    )


def _values(project: ProjectRow, spec: TaskSpec, manifest: str) -> dict[str, Any]:
    return {
        "project_id": project.id,
        "name": spec.name,
        "format": spec.format.value,
        "manifest": manifest,
        "spec": spec.model_dump(mode="json"),
    }


def insert_task(
    session: Session, project: ProjectRow, spec: TaskSpec, manifest: str
) -> TaskRow | None:
    """Create the task ``spec.name``; None if the project already has a task of that name."""
    now = utcnow()
    stmt = (
        insert(session, TaskRow)
        .values(**_values(project, spec, manifest), runs_count=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
        .returning(TaskRow.id)
    )
    new_id = session.execute(stmt).scalar()
    return None if new_id is None else _load(session, new_id)


def insert_or_update_task(
    session: Session, project: ProjectRow, spec: TaskSpec, manifest: str
) -> TaskRow:
    """Create the task or replace its manifest and spec. Safe when callers race on one name."""
    now = utcnow()
    values = _values(project, spec, manifest)
    stmt = insert(session, TaskRow).values(**values, runs_count=0, created_at=now, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["project_id", "name"],
        set_={
            "format": values["format"],
            "manifest": values["manifest"],
            "spec": values["spec"],
            "updated_at": now,
        },
    ).returning(TaskRow.id)
    task_id = session.execute(stmt).scalar_one()
    return _load(session, task_id)


def update_task(session: Session, row: TaskRow, spec: TaskSpec, manifest: str) -> TaskRow:
    row.format = spec.format.value
    row.manifest = manifest
    row.spec = spec.model_dump(mode="json")
    row.updated_at = utcnow()
    session.flush()
    return row


def update_next_build_id(session: Session, task_id: int) -> int:
    """The next BUILD_ID of the task: 1, 2, 3… with no gaps or repeats under concurrency.

    One ``UPDATE ... RETURNING``: PostgreSQL locks the row until the transaction ends, and a
    SQLite write transaction holds the database lock, so two submissions never see the same
    value; a rolled-back submission gives its number back.
    """
    stmt = (
        update(TaskRow)
        .where(TaskRow.id == task_id)
        .values(runs_count=TaskRow.runs_count + 1)
        .returning(TaskRow.runs_count)
    )
    value = session.execute(stmt).scalar_one()
    return int(value)


def _load(session: Session, task_id: int) -> TaskRow:
    row = session.scalars(
        select(TaskRow).where(TaskRow.id == task_id).execution_options(populate_existing=True)
    ).one()
    return row
