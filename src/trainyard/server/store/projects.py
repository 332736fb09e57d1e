"""Queries on projects. ``get_*`` return None when the row does not exist."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.core.leaderboard import LeaderboardGoal, LeaderboardSetting
from trainyard.core.models import Project
from trainyard.server.store._dialect import insert
from trainyard.server.store.tables import DEFAULT_GROUP_ID, ProjectRow, utcnow

__all__ = [
    "get_or_insert_project",
    "get_project",
    "insert_project",
    "list_projects",
    "to_project",
    "update_project_leaderboard",
    "update_project_summary",
]


def to_project(row: ProjectRow) -> Project:
    board = None
    if row.leaderboard_metric and row.leaderboard_goal:
        board = LeaderboardSetting(
            metric=row.leaderboard_metric, goal=LeaderboardGoal(row.leaderboard_goal)
        )
    return Project(
        id=row.id,
        name=row.name,
        summary=row.summary,
        created_at=row.created_at,
        group=row.group.name,
        leaderboard=board,
    )


def get_project(session: Session, name: str) -> ProjectRow | None:
    return session.scalars(select(ProjectRow).where(ProjectRow.name == name)).first()


def list_projects(session: Session) -> list[ProjectRow]:
    return list(session.scalars(select(ProjectRow).order_by(ProjectRow.name)))


def insert_project(
    session: Session, name: str, summary: str = "", group_id: int = DEFAULT_GROUP_ID
) -> ProjectRow | None:
    """Create the project; None if one with that name exists (no exception, no race)."""
    stmt = (
        insert(session, ProjectRow)
        .values(name=name, summary=summary, created_at=utcnow(), group_id=group_id)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(ProjectRow.id)
    )
    new_id = session.execute(stmt).scalar()
    return None if new_id is None else session.get(ProjectRow, new_id)


def get_or_insert_project(session: Session, name: str) -> ProjectRow:
    """The project ``name``, created if missing. Idempotent under concurrency."""
    row = insert_project(session, name)
    if row is None:
        row = get_project(session, name)
    assert row is not None
    return row


def update_project_summary(session: Session, row: ProjectRow, summary: str) -> ProjectRow:
    row.summary = summary
    session.flush()
    return row


def update_project_leaderboard(
    session: Session, row: ProjectRow, setting: LeaderboardSetting | None
) -> ProjectRow:
    """Set the leaderboard's metric and goal (None clears both)."""
    row.leaderboard_metric = setting.metric if setting else None
    row.leaderboard_goal = setting.goal.value if setting else None
    session.flush()
    return row
