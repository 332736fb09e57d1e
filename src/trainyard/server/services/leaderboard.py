"""Leaderboards (DKube's): the project owner sets the evaluation metric and whether lower or
higher is better; the board ranks each user's best run by that metric's last value.

Until users and roles exist anyone may set a project's leaderboard; then only its owner will.
"""

from __future__ import annotations

from trainyard.core.errors import InvalidInputError
from trainyard.core.leaderboard import (
    Leaderboard,
    LeaderboardEntry,
    LeaderboardGoal,
    LeaderboardSetting,
    check_leaderboard_metric,
)
from trainyard.core.models import Project
from trainyard.core.status import RunStatus
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project
from trainyard.server.store import leaderboard as store
from trainyard.server.store import projects as project_store
from trainyard.server.store.metrics import list_params

__all__ = ["clear_leaderboard", "get_leaderboard", "set_leaderboard"]


def set_leaderboard(ctx: ServiceContext, project: str, metric: str, goal: str) -> Project:
    """Rank the project's runs by ``metric`` (``goal`` ``min``: lower is better, ``max``:
    higher). The metric need not be logged yet. InvalidInputError for a bad key, a resource
    metric or another goal; NotFoundError for the project."""
    metric = check_leaderboard_metric(metric)
    setting = LeaderboardSetting(metric=metric, goal=_goal(goal))
    with ctx.db.write() as session:
        row = load_project(session, project)
        return project_store.to_project(
            project_store.update_project_leaderboard(session, row, setting)
        )


def _goal(goal: str) -> LeaderboardGoal:
    try:
        return LeaderboardGoal(goal)
    except ValueError:
        raise InvalidInputError(
            f"goal: {goal!r} is neither 'min' (lower is better, e.g. a loss) nor 'max' "
            "(higher is better, e.g. accuracy)",
            fields={"goal": str(goal)[:40]},
        ) from None


def clear_leaderboard(ctx: ServiceContext, project: str) -> Project:
    """Remove the project's leaderboard metric (idempotent)."""
    with ctx.db.write() as session:
        row = load_project(session, project)
        return project_store.to_project(
            project_store.update_project_leaderboard(session, row, None)
        )


def get_leaderboard(ctx: ServiceContext, project: str) -> Leaderboard:
    """The project's board: each user's best run that logged the metric (archived runs left
    out), best first; equal values share a rank. No entries while no metric is set."""
    with ctx.db.read() as session:
        row = load_project(session, project)
        metric, goal_text = row.leaderboard_metric, row.leaderboard_goal
        if not metric or not goal_text:
            return Leaderboard(project=project)
        goal = LeaderboardGoal(goal_text)
        best = store.list_best_runs(session, row.id, metric, goal)
        params: dict[int, dict[str, str]] = {}
        for p in list_params(session, [b.id for b in best]):
            params.setdefault(p.run_id, {})[p.key] = p.value
    entries: list[LeaderboardEntry] = []
    for i, b in enumerate(best):
        tied = entries and entries[-1].value == b.value
        entries.append(
            LeaderboardEntry(
                rank=entries[-1].rank if tied else i + 1,
                user=b.submitted_by or "",
                run_id=b.id,
                ref=f"{project}/{b.task}#{b.build_id}",
                task=b.task,
                build_id=b.build_id,
                status=RunStatus(b.status),
                value=b.value,
                step=b.step,
                runs=b.runs,
                params=params.get(b.id, {}),
                created_at=b.created_at,
                finished_at=b.finished_at,
            )
        )
    return Leaderboard(project=project, metric=metric, goal=goal, entries=entries)
