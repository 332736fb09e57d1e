"""`trainyard metrics RUN [KEY]` and `trainyard node metrics NODE` against a real server
whose supervisor and node sampler take resource samples every 0.3 s."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import RunCli, clean_env, run_cli_process


@pytest.fixture(scope="module")
def fast_server(server_factory: Any) -> Iterator[Any]:
    server = server_factory.start(
        extra_env={
            "TRAINYARD_METRICS__RESOURCE_INTERVAL": "0.3",
            "TRAINYARD_METRICS__NODE_INTERVAL": "0.3",
        }
    )
    yield server
    server.close()


@pytest.fixture
def cli(fast_server: Any, tmp_path: Path) -> RunCli:
    env = clean_env(tmp_path, fast_server.settings_env)

    def run(*args: str) -> Any:
        return run_cli_process(*args, env=env)

    return run


def _wait(what: str, probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_metrics_and_resource_metrics(cli: RunCli, fast_server: Any) -> None:
    api = httpx.Client(base_url=f"{fast_server.url}/api/v1", timeout=30)
    manifest = (
        "name: cli-metrics\nresources:\n  - name: worker\n    replicas: 1\n"
        '    command: "python -c \\"import time; [sum(range(10**5)) for _ in range(2000)]; '
        'time.sleep(2)\\""\n'
    )
    run = api.post("/projects/default/runs", json={"manifest": manifest}).json()
    run_id = run["id"]
    points = [{"key": "loss", "value": 1.0 / (s + 1), "step": s} for s in range(50)]
    _wait("the run to start", lambda: api.get(f"/runs/{run_id}").json()["status"] == "running")
    assert api.post(f"/runs/{run_id}/metrics", json={"points": points}).status_code == 200
    assert api.post(f"/runs/{run_id}/params", json={"params": {"lr": 0.1}}).status_code == 200
    _wait(
        "resource samples",
        lambda: any(
            m["key"].startswith("system/worker-0/")
            for m in api.get(f"/runs/{run_id}/metrics").json()["items"]
        ),
    )

    listed = cli("metrics", str(run_id))
    assert listed.code == 0, listed.stderr
    assert "loss" in listed.stdout and "0.02" in listed.stdout  # last value 1/50
    assert "lr" in listed.stdout and "0.1" in listed.stdout
    assert "system/" not in listed.stdout and "--system lists them" in listed.stderr
    with_system = cli("metrics", str(run_id), "--system", "--json")
    keys = {m["key"] for m in json.loads(with_system.stdout)["metrics"]}
    assert {"loss", "system/worker-0/cpu_percent", "system/worker-0/memory_mb"} <= keys

    one = cli("metrics", str(run_id), "loss", "--max-points", "10")
    assert one.code == 0, one.stderr
    assert "of 50 points" in one.stderr
    rows = [line for line in one.stdout.splitlines()[1:] if line.strip()]
    assert 3 <= len(rows) <= 10 and rows[0].split()[0] == "0"

    missing = cli("metrics", str(run_id), "nope")
    assert missing.code != 0 and "'nope'" in missing.stderr and "loss" in missing.stderr
    unknown = cli("metrics", "999999")
    assert unknown.code != 0 and "999999" in unknown.stderr
    api.post(f"/runs/{run_id}/stop")


def test_node_metrics(cli: RunCli, fast_server: Any) -> None:
    nodes = httpx.get(f"{fast_server.url}/api/v1/nodes").json()["items"]
    node = nodes[0]["name"]
    _wait(
        "node samples",
        lambda: httpx.get(f"{fast_server.url}/api/v1/nodes/{node}/metrics").json()["series"],
    )
    shown = cli("node", "metrics", node, "--window", "5m")
    assert shown.code == 0, shown.stderr
    assert "cpu_percent" in shown.stdout and "memory_mb" in shown.stdout
    assert "no GPU" in shown.stdout  # this machine has none, and says why
    assert "over the last 300 s" in shown.stderr
    as_json = json.loads(cli("node", "metrics", node, "--json").stdout)
    assert as_json["window"] == 3600 and as_json["gpus"] == []

    bad = cli("node", "metrics", node, "--window", "soon")
    assert bad.code == 2 and "not a duration" in bad.stderr
    too_long = cli("node", "metrics", node, "--window", "30d")
    assert too_long.code != 0 and "window" in too_long.stderr
    unknown = cli("node", "metrics", "no-such-node")
    assert unknown.code != 0 and "no-such-node" in unknown.stderr and node in unknown.stderr
