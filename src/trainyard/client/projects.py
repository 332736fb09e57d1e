"""``/projects``: list, create, get, and set the markdown summary."""

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

    def create(self, name: str, summary: str = "") -> Project:
        """Create a project. Raises ConflictError if it exists, InvalidInputError for a bad name."""
        return _project(self._t.post("/projects", json={"name": name, "summary": summary}))

    def get(self, name: str) -> Project:
        """The project ``name``; raises NotFoundError if there is none."""
        return _project(self._t.get(f"/projects/{quote(name, safe='')}"))

    def set_summary(self, name: str, summary: str) -> Project:
        return _project(
            self._t.put(f"/projects/{quote(name, safe='')}/summary", json={"summary": summary})
        )
