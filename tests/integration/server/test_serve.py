"""``serve()`` and ``python -m trainyard.server``: the loopback rule, startup, shutdown."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import manifest, wait_for, wait_status

from trainyard.core.errors import UserError
from trainyard.server.main import is_loopback, serve

REFUSAL = (
    "refusing to listen on 0.0.0.0: trainyard has no authentication yet and every run executes "
    "arbitrary commands, so anyone who can reach this port could run code on this machine. "
    "Use --host 127.0.0.1, or pass --insecure-no-auth if the network is trusted."
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update({"TRAINYARD_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    return env


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_0000_without_the_flag(tmp_path: Path, make_settings: Any) -> None:
    settings = make_settings(tmp_path / "home")
    with pytest.raises(UserError) as info:
        serve(settings, host="0.0.0.0", port=0)
    assert info.value.message == REFUSAL
    assert not (tmp_path / "home").exists()  # refused before touching anything


def test_module_refuses_a_public_host(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainyard.server", "--host", "0.0.0.0", "--port", "0"],
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {REFUSAL}"


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainyard.server", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "trainyard server listening on http://" in line, line + proc.stdout.read()
    url = line.split("listening on ", 1)[1].split()[0]
    return proc, url


def test_insecure_no_auth_allows_a_public_host_and_sigterm_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, url = _start(["--host", "0.0.0.0", "--port", "0", "--insecure-no-auth"], _env(home))
    try:
        assert url.startswith("http://0.0.0.0:")
        port = int(url.rsplit(":", 1)[1])
        with httpx.Client(timeout=10) as client:
            wait_for(
                "health",
                lambda: _healthy(client, f"http://127.0.0.1:{port}/api/v1/health"),
                timeout=30,
            )
        assert f"(home: {home})" in f"listening on {url} (home: {home})"
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(15) in (0, -signal.SIGTERM)
        assert proc.stdout is not None
        assert "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.TransportError:
        return False


def test_startup_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad_db = subprocess.run(
        [sys.executable, "-m", "trainyard.server", "--port", "0"],
        env=_env(tmp_path / "a", TRAINYARD_DB__URL="postgresql+psycopg://postgres@127.0.0.1:1/x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_db.returncode == 1
    assert bad_db.stderr.startswith(
        "error: cannot connect to the database postgresql+psycopg://postgres@127.0.0.1:1/x: "
    )
    assert "TRAINYARD_DB__URL" in bad_db.stderr
    bad_executor = subprocess.run(
        [sys.executable, "-m", "trainyard.server", "--port", "0"],
        env=_env(tmp_path / "b", TRAINYARD_RUNS__EXECUTOR="ray"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_executor.returncode == 1
    assert bad_executor.stderr.startswith("error: executor 'ray' is not available")
    assert not (tmp_path / "b" / "trainyard.db").exists()


def test_port_in_use_is_a_clear_error(live_server: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainyard.server", "--port", str(live_server.port)],
        env=_env(live_server.home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{live_server.port}" in done.stderr


def test_keep_alive_requests_do_not_stall(api_client: httpx.Client) -> None:
    """TCP_NODELAY is on: no ~40 ms delayed-ACK stall per keep-alive request."""
    api_client.get("/health")
    took = []
    for _ in range(30):
        start = time.perf_counter()
        assert api_client.get("/health").status_code == 200
        took.append(time.perf_counter() - start)
    assert statistics.median(took) < 0.030, took


def test_graceful_stop_leaves_runs_running_and_an_open_stream_does_not_block(
    live_server: Any,
) -> None:
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        run = client.post(
            "/projects/default/runs", json={"manifest": manifest("bg", "sleep 2")}
        ).json()
        wait_status(client, run["id"], {"running"})
        with client.stream("GET", f"/runs/{run['id']}/logs/stream") as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            live_server.stop()
            assert time.monotonic() - started < 10
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        done = wait_status(client, run["id"], {"complete"}, timeout=30)
    assert done["status"] == "complete"
