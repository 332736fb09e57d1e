"""The typed client against a real server: every resource, errors re-raised as the same class."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainyard.client import (
    LogEntry,
    ServerUnreachableError,
    StatusChange,
    StreamEnd,
    TrainyardClient,
    make_snapshot,
)
from trainyard.core.errors import (
    ConflictError,
    InvalidInputError,
    ManifestError,
    NotFoundError,
    ParameterError,
)
from trainyard.core.models import GitInfo, Run
from trainyard.core.status import TERMINAL_STATUSES, RunStatus

ECHO = """\
name: {name}
resources:
  - name: worker
    replicas: 2
    command: for i in $(seq 1 {{{{ .lines }}}}); do echo "line $i of $REPLICA_INDEX"; done
parameters:
  - name: lines
    type: int
    default: 3
"""


@pytest.fixture(scope="module")
def server(server_factory: Any) -> Iterator[Any]:
    started = server_factory.start()
    try:
        yield started
    finally:
        started.close()
        server_factory.servers.remove(started)


@pytest.fixture
def client(server: Any) -> Iterator[TrainyardClient]:
    with TrainyardClient(server.url) as c:
        yield c


def wait_done(client: TrainyardClient, run: Run, timeout: float = 30.0) -> Run:
    deadline = time.monotonic() + timeout
    while run.status not in TERMINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.runs.get(run.id)
    return run


def test_health(client: TrainyardClient) -> None:
    health = client.health()
    assert health["status"] == "ok" and health["version"] == "0.1.0"


def test_projects(client: TrainyardClient) -> None:
    created = client.projects.create("client-proj", "first")
    assert created.name == "client-proj" and created.summary == "first"
    assert client.projects.get("client-proj").id == created.id
    assert "client-proj" in {p.name for p in client.projects.list()}
    assert client.projects.set_summary("client-proj", "# new").summary == "# new"
    with pytest.raises(ConflictError):
        client.projects.create("client-proj")
    with pytest.raises(NotFoundError, match="project 'missing'"):
        client.projects.get("missing")
    with pytest.raises(InvalidInputError):
        client.projects.create("../etc")


def test_tasks_and_manifest_errors_keep_line_and_column(client: TrainyardClient) -> None:
    task = client.tasks.create("default", ECHO.format(name="client-task"), filename="echo.yaml")
    assert task.name == "client-task" and task.spec.replica_count == 2
    assert client.tasks.get("default", "client-task").manifest == task.manifest
    assert "client-task" in {t.name for t in client.tasks.list("default")}
    with pytest.raises(ConflictError):
        client.tasks.create("default", ECHO.format(name="client-task"))
    replaced = client.tasks.create(
        "default", ECHO.format(name="client-task"), replace=True, name="client-task"
    )
    assert replaced.id == task.id
    with pytest.raises(ManifestError) as caught:
        client.tasks.create("default", "name: x\nresources:\n  - name: w\n    replicas: -1\n")
    [issue] = [i for i in caught.value.issues if "replicas" in i.path]
    assert (issue.filename, issue.line, issue.column) == ("task.yaml", 4, 15)


def test_submit_logs_and_stream(client: TrainyardClient, tmp_path: Path) -> None:
    (tmp_path / "task.yaml").write_text(ECHO.format(name="client-run"))
    with make_snapshot(tmp_path, 1 << 20) as archive:
        snapshot_id = client.snapshots.upload(archive.path)
        assert client.snapshots.upload(archive.path) == snapshot_id, "content-addressed"
    git = GitInfo(branch="main", commit="a" * 40, dirty=True)
    run = client.runs.submit(
        "default",
        manifest=ECHO.format(name="client-run"),
        parameters={"lines": "4"},
        snapshot_id=snapshot_id,
        git=git,
    )
    assert run.status == RunStatus.QUEUED and run.parameters == {"lines": 4}
    assert run.git == git and run.snapshot_id == snapshot_id

    items = list(client.runs.stream_logs(run.id))
    assert isinstance(items[0], StatusChange)
    assert items[-1] == StreamEnd(RunStatus.COMPLETE)
    lines = [i for i in items if isinstance(i, LogEntry)]
    assert sorted((line.replica, line.text) for line in lines) == sorted(
        (f"worker-{r}", f"line {i} of {r}") for r in (0, 1) for i in range(1, 5)
    )
    assert all(line.time is not None and line.cursor for line in lines)
    # Resuming from any line's cursor gives exactly the lines after it.
    middle = lines[3]
    rest = [i for i in client.runs.stream_logs(run.id, cursor=middle.cursor)]
    assert [(i.replica, i.text) for i in rest if isinstance(i, LogEntry)] == [
        (line.replica, line.text) for line in lines[4:]
    ]

    page = client.runs.logs(run.id, replicas=["worker-1"])
    assert [line.text for line in page.lines] == [f"line {i} of 1" for i in range(1, 5)]
    assert page.complete and "worker-1" in page.replicas
    assert client.runs.logs(run.id, replicas=["worker-1"], cursor=page.cursor).lines == []
    assert [
        line.text for line in client.runs.logs(run.id, tail=1, replicas=["worker-0"]).lines
    ] == ["line 4 of 0"]

    done = client.runs.resolve(f"default/client-run#{run.build_id}")
    assert done.id == run.id and done.status == RunStatus.COMPLETE
    assert client.runs.resolve(str(run.id)).ref == done.ref
    events = client.runs.events(run.id)
    assert [e.status for e in events if e.kind == "status"][-1] == RunStatus.COMPLETE
    assert client.runs.events(run.id, after=events[-1].id) == []
    assert client.runs.stop(run.id).status == RunStatus.COMPLETE, (
        "stopping a finished run is a no-op"
    )


def test_submit_stored_task_list_and_filters(client: TrainyardClient) -> None:
    client.tasks.create("default", ECHO.format(name="client-list"))
    runs = [client.runs.submit("default", task="client-list") for _ in range(3)]
    assert [r.build_id for r in runs] == [1, 2, 3]
    for run in runs:
        wait_done(client, run)
    page = client.runs.list(project="default", task="client-list", limit=2)
    assert page.total == 3 and [r.build_id for r in page.items] == [3, 2]
    second = client.runs.list(project="default", task="client-list", limit=2, offset=2)
    assert [r.build_id for r in second.items] == [1]
    assert (
        client.runs.list(project="default", task="client-list", status="running,queued").total == 0
    )
    assert (
        client.runs.list(project="default", task="client-list", status=[RunStatus.COMPLETE]).total
        == 3
    )
    with pytest.raises(InvalidInputError, match="exploded"):
        client.runs.list(status="exploded")


def test_errors_are_the_server_classes(client: TrainyardClient) -> None:
    with pytest.raises(NotFoundError, match="run 99999 not found"):
        client.runs.get(99999)
    with pytest.raises(NotFoundError, match=r"run 'default/none#3' not found"):
        client.runs.resolve("default/none#3")
    with pytest.raises(InvalidInputError, match="not a run reference"):
        client.runs.resolve("default/none")
    with pytest.raises(ParameterError, match="lines"):
        client.runs.submit(
            "default", manifest=ECHO.format(name="bad-param"), parameters={"lines": "x"}
        )
    with pytest.raises(InvalidInputError, match="exactly one"):
        client.runs.submit("default")
    with pytest.raises(NotFoundError):
        client.runs.submit("default", task="client-no-such-task")


def test_corrupt_snapshot_is_refused(client: TrainyardClient, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(InvalidInputError):
        client.snapshots.upload(junk)


def test_server_away_raises_unreachable(tmp_path: Path, server_factory: Any) -> None:
    server = server_factory.start()
    url = server.url
    server.close()
    server_factory.servers.remove(server)
    with TrainyardClient(url, timeout=2) as client, pytest.raises(ServerUnreachableError) as caught:
        client.health()
    assert url in caught.value.message
