"""``/runs``: submit, list, get (by id or by ``project/task#N``), stop, events and logs."""

from __future__ import annotations

import builtins
import getpass
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from trainyard.client.http import Transport
from trainyard.client.logs import LogPage, LogStreamItem, read_log_page, stream_run_logs
from trainyard.client.refs import RunRef, parse_run_ref
from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.models import Event, GitInfo, Run
from trainyard.core.run_search import RunSearchPage
from trainyard.core.status import RunStatus

__all__ = ["RunPage", "RunsAPI", "os_user", "parse_run"]


def os_user() -> str:
    """The OS user running this process, sent as a run's ``submitted_by`` until users and
    tokens exist; "" when it cannot be told (no LOGNAME/USER and no passwd entry)."""
    try:
        user = getpass.getuser().strip()
    except (OSError, KeyError, ImportError):
        # No passwd entry for the uid (e.g. a container started with --user 12345).
        return ""
    # A name the server would refuse (LOGNAME can be anything) must not block submitting.
    return user if len(user) <= 128 and user.isprintable() else ""


def parse_run(data: Any) -> Run:
    """A Run from its JSON; ``ref`` is derived on the model, so the server's copy is dropped."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"expected a run object from the server, got {type(data).__name__}")
    fields = dict(data)
    fields.pop("ref", None)
    return Run.model_validate(fields)


@dataclass(frozen=True)
class RunPage:
    """One page of a run listing, newest first; ``total`` counts every match."""

    items: list[Run]
    total: int
    limit: int
    offset: int


def _status_param(status: str | Sequence[RunStatus | str] | None) -> str | None:
    if status is None:
        return None
    if isinstance(status, str):
        return status
    return ",".join(str(s) for s in status)


class RunsAPI:
    """Runs: one execution of a task, numbered per task (``BUILD_ID``)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def submit(
        self,
        project: str = "default",
        *,
        manifest: str | None = None,
        filename: str | None = None,
        task: str | None = None,
        name: str | None = None,
        parameters: Mapping[str, object] | None = None,
        snapshot_id: str | None = None,
        git: GitInfo | None = None,
        submitted_by: str | None = None,
        priority: int = 0,
        start_immediately: bool = False,
    ) -> Run:
        """Create a run from manifest text (the task is created or updated) or from a stored
        task. Exactly one of ``manifest`` and ``task``; ``name`` replaces the manifest's task
        name (an AIchor manifest has none). ``submitted_by`` defaults to the OS user (see
        :func:`os_user`); the server does not authenticate it. ``priority`` (-1000..1000)
        orders the queue, higher first; ``start_immediately`` skips the queue and shares GPUs
        with the runs already using them. Returns the run, status ``queued``.

        Raises ManifestError / ParameterError (400), InvalidInputError for a priority out of
        range, NotFoundError for the project, task or snapshot, UnsupportedError when this
        server cannot run the task or its group could never hold it (more GPUs on one node
        than any node of the group's pools has).
        """
        if (manifest is None) == (task is None):
            raise InvalidInputError("give exactly one of manifest (YAML text) or task (a name)")
        body: dict[str, Any] = {"parameters": dict(parameters or {})}
        if manifest is not None:
            body["manifest"] = manifest
            if filename:
                body["filename"] = filename
            if name:
                body["name"] = name
        else:
            body["task"] = task
        if snapshot_id:
            body["snapshot_id"] = snapshot_id
        if git is not None:
            body["git"] = git.model_dump(mode="json")
        body["submitted_by"] = os_user() if submitted_by is None else submitted_by
        # Sent only when set: servers without scheduling refuse unknown fields.
        if priority:
            body["priority"] = priority
        if start_immediately:
            body["start_immediately"] = True
        return parse_run(self._t.post(f"/projects/{quote(project, safe='')}/runs", json=body))

    def list(
        self,
        project: str | None = None,
        task: str | None = None,
        status: str | Sequence[RunStatus | str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RunPage:
        """Runs, newest first. ``status`` is a comma list (``"running,queued"``) or a sequence."""
        data = self._t.get(
            "/runs",
            params={
                "project": project,
                "task": task,
                "status": _status_param(status),
                "limit": limit,
                "offset": offset,
            },
        )
        return RunPage(
            items=[parse_run(item) for item in data["items"]],
            total=int(data.get("total", len(data["items"]))),
            limit=int(data.get("limit", limit)),
            offset=int(data.get("offset", offset)),
        )

    def search(
        self,
        project: str = "default",
        *,
        sort: str = "id",
        order: str = "desc",
        status: str | Sequence[RunStatus | str] | None = None,
        task: str | None = None,
        q: str | None = None,
        archived: bool | None = False,
        limit: int = 100,
        offset: int = 0,
    ) -> RunSearchPage:
        """A page of the project's runs, each with its params and metric summaries (last,
        min, max, step), sorted by the server: ``sort`` is ``id``, ``task``, ``status``,
        ``updated``, ``created``, ``metric:KEY`` (the last value; ``metric:KEY:min`` or
        ``:max``) or ``param:KEY``; runs without the key come last. ``archived`` None lists
        archived runs too. InvalidInputError for a malformed sort or a metric or param that
        no run of the project logged (the message lists those it has)."""
        flag = "all" if archived is None else str(bool(archived)).lower()
        data = self._t.get(
            f"/projects/{quote(project, safe='')}/runs",
            params={
                "sort": sort,
                "order": order,
                "status": _status_param(status),
                "task": task,
                "q": q,
                "archived": flag,
                "limit": limit,
                "offset": offset,
            },
        )
        return RunSearchPage.model_validate(data)

    def get(self, run_id: int) -> Run:
        """The run with this id (replicas included); NotFoundError if there is none."""
        return parse_run(self._t.get(f"/runs/{int(run_id)}"))

    def get_by_ref(self, project: str, task: str, build_id: int) -> Run:
        """The run ``project/task#build_id``; NotFoundError if there is none."""
        ref = RunRef(project, task, build_id)
        path = f"/projects/{quote(project, safe='')}/tasks/{quote(task, safe='')}/runs/{build_id}"
        try:
            return parse_run(self._t.get(path))
        except NotFoundError as exc:
            # The server may blame the project or the task; for the user it is the run that is
            # missing, and the server's words stay in the fields.
            raise NotFoundError(
                f"run '{ref}' not found", fields={"ref": str(ref), "detail": exc.message}
            ) from exc

    def resolve(self, ref: str) -> Run:
        """The run named by ``"42"`` or ``"project/task#N"``; InvalidInputError for other forms."""
        parsed = parse_run_ref(ref)
        if isinstance(parsed, int):
            return self.get(parsed)
        return self.get_by_ref(parsed.project, parsed.task, parsed.build_id)

    def stop(self, run_id: int) -> Run:
        """Ask the run to stop; idempotent (a finished run is returned unchanged)."""
        return parse_run(self._t.post(f"/runs/{int(run_id)}/stop"))

    def events(self, run_id: int, after: int | None = None) -> builtins.list[Event]:
        """The run's events, oldest first (only those after event id ``after`` if given)."""
        data = self._t.get(f"/runs/{int(run_id)}/events", params={"after": after})
        return [Event.model_validate(item) for item in data["items"]]

    def logs(
        self,
        run_id: int,
        replicas: Sequence[str] | None = None,
        cursor: str | None = None,
        tail: int | None = None,
        max_bytes: int | None = None,
    ) -> LogPage:
        """One page of the run's logs from ``cursor`` (or its last ``tail`` lines)."""
        return read_log_page(
            self._t, int(run_id), replicas=replicas, cursor=cursor, tail=tail, max_bytes=max_bytes
        )

    def stream_logs(
        self,
        run_id: int,
        replicas: Sequence[str] | None = None,
        cursor: str | None = None,
        *,
        reconnect_for: float = 120.0,
    ) -> Iterator[LogStreamItem]:
        """Follow the run's logs until it ends (see :func:`.logs.stream_run_logs`)."""
        return stream_run_logs(
            self._t, int(run_id), replicas=replicas, cursor=cursor, reconnect_for=reconnect_for
        )
