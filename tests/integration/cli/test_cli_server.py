"""The CLI and server processes: following logs across a server restart, starting a local
server on demand, and `trainyard server` itself."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_support import COMMAND, clean_env, free_port, run_cli_process, write_task

from trainyard.client import ServerUnreachableError, TrainyardClient

GATED_COUNTER = """\
name: counter
resources:
  - name: worker
    replicas: 2
    command: python count.py {gate}
"""
COUNT_PY = """\
import os, sys, time
me = os.environ["REPLICA_INDEX"]
for i in range(20):
    print(f"before {i} from {me}", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
for i in range(20):
    print(f"after {i} from {me}", flush=True)
"""


def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_logs_follow_survives_a_server_kill_and_restart(live_server: Any, tmp_path: Path) -> None:
    env = clean_env(tmp_path, live_server.settings_env)
    gate = tmp_path / "gate"
    manifest = write_task(
        tmp_path / "counter", GATED_COUNTER.format(gate=gate), {"count.py": COUNT_PY}
    )
    assert run_cli_process("run", str(manifest), env=env).code == 0
    out_path, err_path = tmp_path / "follow.out", tmp_path / "follow.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        follower = subprocess.Popen(
            [*COMMAND, "logs", "default/counter#1", "-f"], env=env, stdout=out, stderr=err
        )
    try:
        wait_until(lambda: out_path.read_text().count("before 19") == 2, "the first half")
        live_server.kill()
        gate.touch()  # the replicas finish while no server is there
        live_server.start()
        follower.wait(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err_path.read_text()
    lines = out_path.read_text().splitlines()
    expected = {
        f"worker-{r} | {half} {i} from {r}"
        for r in (0, 1)
        for half in ("before", "after")
        for i in range(20)
    }
    assert len(lines) == len(expected), "every line exactly once"
    assert set(lines) == expected
    for r in (0, 1):
        mine = [line for line in lines if line.startswith(f"worker-{r} ")]
        assert mine == sorted(mine, key=lambda t: (t.split()[2] == "after", int(t.split()[3])))
    assert "default/counter#1: complete" in err_path.read_text()


def _servers_on(port: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "trainyard.server" in cmdline and str(port) in cmdline:
            found.append(proc)
    return found


@pytest.fixture
def autostart_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No TRAINYARD_SERVER_URL, a free port for the default server; kills what was started."""
    port = free_port()
    env = clean_env(tmp_path, {"TRAINYARD_SERVER__PORT": str(port)})
    yield env
    victims = _servers_on(port)
    for proc in victims:
        proc.terminate()
    _, alive = psutil.wait_procs(victims, timeout=15)
    for proc in alive:
        proc.kill()


def test_run_starts_a_local_server_when_none_is_configured(
    autostart_env: dict[str, str], tmp_path: Path
) -> None:
    port = autostart_env["TRAINYARD_SERVER__PORT"]
    manifest = write_task(
        tmp_path / "hello", "name: hello\nresources:\n  - name: worker\n    command: echo hi\n"
    )
    first = run_cli_process("run", str(manifest), "--wait", env=autostart_env)
    assert first.code == 0, first.stderr
    assert (
        f"no server at http://127.0.0.1:{port}; started one in the background "
        "(logs: ~/.trainyard/server.log)"
    ) in first.stderr
    assert "worker-0 | hi" in first.stdout
    assert "listening on" in (tmp_path / ".trainyard" / "server.log").read_text()
    assert len(_servers_on(int(port))) == 1
    # The server keeps running for the next commands, which find it without starting another.
    second = run_cli_process("run", str(manifest), env=autostart_env)
    assert second.code == 0 and "started one" not in second.stderr
    listed = run_cli_process("ps", "--all", env=autostart_env)
    assert "default/hello#1" in listed.stdout and "default/hello#2" in listed.stdout
    assert len(_servers_on(int(port))) == 1


def test_other_commands_do_not_start_a_server(autostart_env: dict[str, str]) -> None:
    port = autostart_env["TRAINYARD_SERVER__PORT"]
    result = run_cli_process("ps", env=autostart_env)
    assert result.code == 1
    assert f"cannot reach the trainyard server at http://127.0.0.1:{port}" in result.stderr
    assert _servers_on(int(port)) == []


def test_server_command_serves_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path)
    server = subprocess.Popen(
        [*COMMAND, "server", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with TrainyardClient(f"http://127.0.0.1:{port}", timeout=2) as client:

            def healthy() -> bool:
                try:
                    return bool(client.health()["status"] == "ok")
                except ServerUnreachableError:
                    return server.poll() is not None  # exited: stop waiting, assert below

            wait_until(healthy, "the server to answer")
            assert server.poll() is None
            assert [p.name for p in client.projects.list()] == ["default"]
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert f"listening on http://127.0.0.1:{port}" in output
    assert (tmp_path / ".trainyard" / "trainyard.db").exists()


def test_server_stop_stops_the_server_of_this_home_and_its_runs_go_on(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path)
    record = tmp_path / ".trainyard" / "server.json"
    server = subprocess.Popen(
        [*COMMAND, "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(record.exists, "the server's record")
        online = {**env, "TRAINYARD_SERVER_URL": f"http://127.0.0.1:{port}"}
        manifest = write_task(
            tmp_path / "sleeper", "name: sleeper\nresources:\n- name: worker\n  command: sleep 60\n"
        )
        assert run_cli_process("run", str(manifest), "--no-code", env=online).code == 0
        stopped = run_cli_process("server-stop", env=env)
        assert stopped.code == 0, stopped.stderr
        assert f"stopped the trainyard server at http://127.0.0.1:{port}" in stopped.stdout
        assert server.wait(timeout=20) is not None
        assert not record.exists()
        # The run was not touched: its replica still runs without a server.
        sleepers = [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "60"]
        ]
        assert sleepers, "the run's replica should outlive the server"
        again = run_cli_process("server-stop", env=env)
        assert again.code == 1
        assert "no trainyard server is recorded" in again.stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for proc in psutil.process_iter(["cmdline"]):
            if proc.info["cmdline"] == ["sleep", "60"]:
                proc.kill()


def test_server_command_refuses_a_public_address(tmp_path: Path) -> None:
    result = run_cli_process("server", "--host", "0.0.0.0", "--port", "1", env=clean_env(tmp_path))
    assert result.code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: refusing to listen on 0.0.0.0")
    assert "--insecure-no-auth" in line


def test_autostart_failure_says_why_and_where_the_log_is(tmp_path: Path) -> None:
    # Something that is not a trainyard server holds the port: the background server cannot
    # bind it, and the command must say so rather than hang or pretend.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = clean_env(tmp_path, {"TRAINYARD_SERVER__PORT": str(port)})
        manifest = write_task(
            tmp_path / "t", "name: t\nresources:\n  - name: worker\n    command: echo hi\n"
        )
        result = run_cli_process("run", str(manifest), env=env)
    assert result.code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: no server at http://127.0.0.1:{port}, and the one started")
    assert "exited with code" in line and str(tmp_path / ".trainyard" / "server.log") in line
    assert _servers_on(port) == []
