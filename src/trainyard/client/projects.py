"""``/projects``: list, create, get, set the markdown summary, and move to another group."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from trainyard.client.http import Transport
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
