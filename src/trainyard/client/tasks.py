"""``/projects/{project}/tasks``: task templates stored in a project."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from trainyard.client.http import Transport
from trainyard.core.models import Task

__all__ = ["TasksAPI"]


def _task(data: Any) -> Task:
    return Task.model_validate(data)


class TasksAPI:
    """Tasks are created from a manifest and launched many times as runs."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self, project: str = "default") -> list[Task]:
        return [
            _task(item)
            for item in self._t.get(f"/projects/{quote(project, safe='')}/tasks")["items"]
        ]

    def create(
        self,
        project: str,
        manifest: str,
        *,
        filename: str = "task.yaml",
        replace: bool = False,
        name: str | None = None,
    ) -> Task:
        """Store a task from manifest text. ManifestError if it is malformed, ConflictError if a
        task of that name exists and ``replace`` is false. ``name`` replaces the manifest's."""
        body: dict[str, object] = {"manifest": manifest, "filename": filename, "replace": replace}
        if name:
            body["name"] = name
        return _task(self._t.post(f"/projects/{quote(project, safe='')}/tasks", json=body))

    def get(self, project: str, name: str) -> Task:
        return _task(
            self._t.get(f"/projects/{quote(project, safe='')}/tasks/{quote(name, safe='')}")
        )
