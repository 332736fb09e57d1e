"""``trainyard.init`` and the module-level functions: where the run comes from, what happens
outside a run, at interpreter exit, in a forked child, and what importing the SDK loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_support import RUN_ID, FakeServer

import trainyard
import trainyard.sdk
from trainyard.core.errors import ConflictError, InvalidInputError, UnsupportedError
from trainyard.sdk.context import resolve_context

RUN_ENV = ("TRAINYARD_RUN_ID", "TRAINYARD_SERVER_URL", "TRAINYARD_TOKEN", "TRAINYARD_REPLICA")


@pytest.fixture
def run_env(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The environment of a replica of run 7 on the fake server."""
    env = {
        "TRAINYARD_RUN_ID": str(RUN_ID),
        "TRAINYARD_SERVER_URL": server.url,
        "TRAINYARD_TOKEN": "",
        "TRAINYARD_REPLICA": "worker-0",
        "TRAINYARD_HOME": str(tmp_path / "home"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    trainyard.finish(timeout=2)


def test_init_reads_the_replica_environment(run_env: dict[str, str], server: FakeServer) -> None:
    tracker = trainyard.init()
    assert tracker.run_id == RUN_ID and tracker.server_url == server.url
    assert tracker.context.replica == "worker-0"
    assert tracker.context.spool_dir == Path(run_env["TRAINYARD_HOME"]) / "spool" / "7"
    assert trainyard.init() is tracker  # the same run: the same tracker
    trainyard.log_params({"lr": 0.1, "layers": 4})
    trainyard.log_metric("loss", 0.31, step=10)
    trainyard.log_metrics({"acc": 0.9, "f1": 0.8}, step=10)
    trainyard.finish()
    assert tracker.finished and trainyard.sdk.active() is None
    assert server.params[RUN_ID] == {"lr": "0.1", "layers": "4"}
    assert sorted((p["key"], p["step"]) for p in server.stored()) == [
        ("acc", 10),
        ("f1", 10),
        ("loss", 10),
    ]
    with pytest.raises(ConflictError, match=r"call trainyard.init\(\) first"):
        trainyard.log_metric("loss", 1.0)


def test_explicit_arguments_override_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "TRAINYARD_RUN_ID": "7",
        "TRAINYARD_SERVER_URL": "http://127.0.0.1:1",
        "TRAINYARD_TOKEN": "env-token",
    }
    context = resolve_context(
        run_id="12", server_url="http://10.0.0.1:8080/", token="mine", environ=env
    )
    assert (context.run_id, context.server_url, context.token) == (
        12,
        "http://10.0.0.1:8080",
        "mine",
    )
    context = resolve_context(environ=env)
    assert (context.run_id, context.server_url, context.token) == (
        7,
        "http://127.0.0.1:1",
        "env-token",
    )
    assert context.spool_root == Path.home() / ".trainyard" / "spool"
    home = resolve_context(run_id=3, environ={"TRAINYARD_HOME": str(tmp_path)})
    assert home.spool_root == tmp_path / "spool"
    assert home.server_url == "http://127.0.0.1:8080" and home.token is None


def test_outside_a_run_init_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RUN_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UnsupportedError) as info:
        trainyard.init(project="vision")  # no name: nothing to create
    message = str(info.value)
    assert "give the run a name" in message and "trainyard run" in message
    assert trainyard.sdk.active() is None
    with pytest.raises(InvalidInputError, match="not a run id"):
        resolve_context(environ={"TRAINYARD_RUN_ID": "abc"})


def test_init_for_another_run_finishes_the_previous_one(
    run_env: dict[str, str], server: FakeServer
) -> None:
    server.runs[8] = "running"
    first = trainyard.init()
    trainyard.log_metric("loss", 1.0)
    second = trainyard.init(run_id=8)
    assert first.finished and not second.finished and trainyard.sdk.active() is second
    trainyard.log_metric("loss", 2.0)
    trainyard.finish()
    assert [p["value"] for p in server.stored(RUN_ID)] == [1.0]
    assert [p["value"] for p in server.stored(8)] == [2.0]


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_points_are_sent_at_exit_without_finish(server: FakeServer, tmp_path: Path) -> None:
    env = {
        "TRAINYARD_RUN_ID": str(RUN_ID),
        "TRAINYARD_SERVER_URL": server.url,
        "TRAINYARD_HOME": str(tmp_path),
    }
    done = run_python(
        """
        import trainyard as ty
        ty.init()
        for i in range(2500):
            ty.log_metric("loss", 1.0 / (i + 1))
        ty.log_params({"lr": 0.1})
        # no finish(): the exit hook sends what is left
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [p["step"] for p in server.stored()] == list(range(2500))
    assert server.params[RUN_ID] == {"lr": "0.1"}


def test_an_exit_with_the_server_away_leaves_a_spool_that_the_next_process_sends(
    server: FakeServer, tmp_path: Path
) -> None:
    env = {
        "TRAINYARD_RUN_ID": str(RUN_ID),
        "TRAINYARD_SERVER_URL": server.url,
        "TRAINYARD_HOME": str(tmp_path),
        "TRAINYARD_REPLICA": "worker-0",
    }
    server.stop()
    done = run_python(
        """
        import trainyard as ty
        ty.init()
        for i in range(100):
            ty.log_metric("loss", float(i))
        ty.finish(timeout=0.5)
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    files = list((tmp_path / "spool" / str(RUN_ID)).glob("*.jsonl"))
    assert len(files) == 1 and "worker-0" in files[0].name
    assert "100 points of run 7 could not be sent" in done.stderr
    assert str(files[0]) in done.stderr

    server.start()
    done = run_python("import trainyard as ty; ty.init(); ty.finish()", env)
    assert done.returncode == 0, done.stderr
    assert [p["value"] for p in server.stored()] == [float(i) for i in range(100)]
    assert list((tmp_path / "spool" / str(RUN_ID)).glob("*")) == []


def test_a_forked_child_does_not_inherit_the_tracker(server: FakeServer, tmp_path: Path) -> None:
    env = {
        "TRAINYARD_RUN_ID": str(RUN_ID),
        "TRAINYARD_SERVER_URL": server.url,
        "TRAINYARD_HOME": str(tmp_path),
    }
    done = run_python(
        """
        import os, trainyard as ty
        from trainyard.core.errors import ConflictError
        tracker = ty.init()
        ty.log_metric("parent", 1.0)
        pid = os.fork()
        if pid == 0:
            code = 0
            for call in (lambda: ty.log_metric("child", 1.0),
                         lambda: tracker.log_metric("child", 1.0)):
                try:
                    call()
                    code = 3
                except ConflictError:
                    pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        ty.log_metric("parent", 2.0)
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    assert [(p["key"], p["value"]) for p in server.stored()] == [
        ("parent", 1.0),
        ("parent", 2.0),
    ]


def test_the_sdk_does_not_load_the_server_stack() -> None:
    code = (
        "import sys, json, trainyard; trainyard.init; trainyard.log_metric;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    assert "trainyard.sdk" in modules
    heavy = {"fastapi", "sqlalchemy", "starlette", "uvicorn", "alembic"}
    assert {m for m in modules if m.split(".")[0] in heavy} == set()
    assert {m for m in modules if m.startswith("trainyard.server")} == set()


def test_importing_trainyard_alone_does_not_load_the_sdk() -> None:
    code = "import sys, trainyard; print('trainyard.sdk' in sys.modules, 'httpx' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False"]
    assert set(trainyard.__all__) <= set(dir(trainyard))
