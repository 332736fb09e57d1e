"""``/projects``: list, create, get, set the markdown summary, move to another group, and the
leaderboard (set or clear its metric, read the board)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from trainyard.client.http import Transport
from trainyard.core.leaderboard import Leaderboard, LeaderboardGoal
from trainyard.core.models import Project

__all__ = ["ProjectsAPI"]


def _project(data: Any) -> Project:
    return Project.model_validate(data)


class ProjectsAPI:
    """Projects group tasks and runs; a ``default`` project always exists."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Project]:
        return [_project(item) for item in self._t.get("/projects")["items"]]

    def create(self, name: str, summary: str = "", group: str = "default") -> Project:
        """Create a project in ``group`` (whose GPU pools its runs use). Raises ConflictError
        if it exists, InvalidInputError for a bad name, NotFoundError for the group."""
        body = {"name": name, "summary": summary}
        if group != "default":  # sent only when needed: older servers refuse the field
            body["group"] = group
        return _project(self._t.post("/projects", json=body))

    def get(self, name: str) -> Project:
        """The project ``name``; raises NotFoundError if there is none."""
        return _project(self._t.get(f"/projects/{quote(name, safe='')}"))

    def set_summary(self, name: str, summary: str) -> Project:
        return _project(
            self._t.put(f"/projects/{quote(name, safe='')}/summary", json={"summary": summary})
        )

    def set_group(self, name: str, group: str) -> Project:
        """Move the project to ``group``: its queued and future runs draw on that group's
        pools (running ones keep what they hold). NotFoundError for the project or group."""
        return _project(
            self._t.put(f"/projects/{quote(name, safe='')}/group", json={"group": group})
        )

    def leaderboard(self, name: str) -> Leaderboard:
        """The project's board: each user's best run by the evaluation metric's last value,
        best first (no entries while no metric is set). NotFoundError for the project."""
        return Leaderboard.model_validate(
            self._t.get(f"/projects/{quote(name, safe='')}/leaderboard")
        )

    def set_leaderboard(self, name: str, metric: str, goal: LeaderboardGoal | str) -> Project:
        """Rank the project's runs by ``metric``; ``goal`` ``"max"`` (higher is better) or
        ``"min"`` (lower is better). InvalidInputError for a bad key, a resource metric
        (``system/…``) or another goal; NotFoundError for the project."""
        body = {"metric": metric, "goal": str(goal)}
        return _project(self._t.put(f"/projects/{quote(name, safe='')}/leaderboard", json=body))

    def clear_leaderboard(self, name: str) -> Project:
        """Remove the project's leaderboard metric (idempotent)."""
        return _project(self._t.request("DELETE", f"/projects/{quote(name, safe='')}/leaderboard"))
