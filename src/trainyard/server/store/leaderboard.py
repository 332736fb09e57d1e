"""The leaderboard query: each user's best run of a project by one metric's last value.

One statement: the runs that logged the metric (their summary row, never the points), ranked
within each user (``submitted_by``) by the value and then by run id, so a tie goes to the
earliest run; the first of each user is kept. Archived runs are left out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from trainyard.core.leaderboard import LeaderboardGoal
from trainyard.server.store.tables import MetricSeriesRow, RunRow, TaskRow

__all__ = ["list_best_runs"]


def list_best_runs(
    session: Session, project_id: int, metric: str, goal: LeaderboardGoal
) -> list[Any]:
    """Rows (``id``, ``submitted_by``, ``task``, ``build_id``, ``status``, ``created_at``,
    ``finished_at``, ``value``, ``step``, ``runs``: how many runs of that user have the
    metric), best first; equal values in run id order."""
    value = MetricSeriesRow.last_value
    better = value.desc() if goal is LeaderboardGoal.MAX else value.asc()
    ranked = (
        select(
            RunRow.id,
            RunRow.submitted_by,
            TaskRow.name.label("task"),
            RunRow.build_id,
            RunRow.status,
            RunRow.created_at,
            RunRow.finished_at,
            value.label("value"),
            MetricSeriesRow.last_step.label("step"),
            func.row_number()
            .over(partition_by=RunRow.submitted_by, order_by=(better, RunRow.id.asc()))
            .label("pick"),
            func.count().over(partition_by=RunRow.submitted_by).label("runs"),
        )
        .join(TaskRow, RunRow.task_id == TaskRow.id)
        .join(
            MetricSeriesRow,
            and_(MetricSeriesRow.run_id == RunRow.id, MetricSeriesRow.key == metric),
        )
        .where(RunRow.project_id == project_id, RunRow.archived.is_(False))
        .subquery()
    )
    best = ranked.c.value.desc() if goal is LeaderboardGoal.MAX else ranked.c.value.asc()
    stmt = select(ranked).where(ranked.c.pick == 1).order_by(best, ranked.c.id)
    return list(session.execute(stmt))
