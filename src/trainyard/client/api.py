"""``TrainyardClient``: the typed client of the trainyard REST API."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from trainyard.client.artifacts import ArtifactsAPI
from trainyard.client.http import Transport
from trainyard.client.metrics import MetricsAPI
from trainyard.client.projects import ProjectsAPI
from trainyard.client.runs import RunsAPI
from trainyard.client.scheduling import GroupsAPI, NodesAPI, PoolsAPI, QueueAPI
from trainyard.client.snapshots import SnapshotsAPI
from trainyard.client.tasks import TasksAPI

__all__ = ["TrainyardClient"]


class TrainyardClient:
    """A client of one trainyard server.

    Resources hang off it: ``client.projects``, ``client.tasks``, ``client.snapshots``,
    ``client.runs``, ``client.metrics`` (tracked metrics and params), ``client.artifacts``,
    and for scheduling ``client.nodes``, ``client.pools``, ``client.groups``, ``client.queue``.
    Every call raises the trainyard error the server raised (same class, same message);
    connection failures raise ``ServerUnreachableError``. Close it (or use ``with``) to
    release its connections.

    >>> with TrainyardClient("http://127.0.0.1:8080") as client:  # doctest: +SKIP
    ...     run = client.runs.resolve("default/train#3")
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        self._transport = Transport(base_url, timeout=timeout, token=token)
        self.projects = ProjectsAPI(self._transport)
        self.tasks = TasksAPI(self._transport)
        self.snapshots = SnapshotsAPI(self._transport)
        self.runs = RunsAPI(self._transport)
        self.metrics = MetricsAPI(self._transport)
        self.artifacts = ArtifactsAPI(self._transport)
        self.nodes = NodesAPI(self._transport)
        self.pools = PoolsAPI(self._transport)
        self.groups = GroupsAPI(self._transport)
        self.queue = QueueAPI(self._transport)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ..., "executor": ...}``; raises if the server is away."""
        data = self._transport.get("/health")
        return dict(data) if isinstance(data, dict) else {"status": str(data)}

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> TrainyardClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
