"""Resource metrics end to end on a real server: a run's replicas are sampled by their
supervisor and the samples become the run's ``system/…`` metrics, exactly once even when
the server is SIGKILLed mid-run and restarted (SQLite and PostgreSQL); the history's time
window and interval parameters and the node metrics endpoint over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import manifest, targz, wait_for, wait_status

FAST = {
    "TRAINYARD_METRICS__RESOURCE_INTERVAL": "0.3",
    "TRAINYARD_METRICS__NODE_INTERVAL": "0.5",
}
GZ = {"content-type": "application/gzip"}

# Each replica burns a little CPU and holds some memory for `seconds`, then exits.
WORK = """
import sys, time
data = bytearray(30 * 1024 * 1024)
for i in range(0, len(data), 4096):
    data[i] = 1
end = time.time() + float(sys.argv[1])
while time.time() < end:
    sum(range(20000))
    time.sleep(0.01)
"""


def _system_keys(client: httpx.Client, run_id: int) -> dict[str, int]:
    items = client.get(f"/runs/{run_id}/metrics").json()["items"]
    return {m["key"]: m["count"] for m in items if m["key"].startswith("system/")}


def _file_samples(home: Path, run_id: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    path = home / "runs" / str(run_id) / "resources.jsonl"
    for line in path.read_text().splitlines():
        record = json.loads(line)
        out.setdefault(record["replica"], []).append(record["seq"])
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_samples_are_stored_exactly_once_across_a_server_sigkill(
    server_factory: Any, backend: str
) -> None:
    server = server_factory.start(backend, extra_env=FAST)
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
            snap = client.post("/snapshots", content=targz({"work.py": WORK}), headers=GZ)
            text = manifest("sampled", "python work.py 5", replicas=2)
            r = client.post(
                "/projects/default/runs", json={"manifest": text, "snapshot_id": snap.json()["id"]}
            )
            assert r.status_code == 201, r.text
            run_id = int(r.json()["id"])
            wait_status(client, run_id, {"running"})
            wait_for(
                "a few samples of each replica stored",
                lambda: all(
                    _system_keys(client, run_id).get(f"system/worker-{i}/cpu_percent", 0) >= 3
                    for i in (0, 1)
                ),
            )
        server.kill()  # SIGKILL, mid-run: samples go on piling up in the run directory
        time.sleep(1.0)
        server.start()
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
            done = wait_status(client, run_id, {"complete", "error"}, timeout=60)
            assert done["status"] == "complete", done["reason"]
            written = _file_samples(server.home, run_id)
            assert sorted(written) == ["worker-0", "worker-1"]
            keys = _system_keys(client, run_id)
            assert sorted(keys) == sorted(
                f"system/worker-{i}/{m}" for i in (0, 1) for m in ("cpu_percent", "memory_mb")
            )
            for replica, seqs in written.items():
                assert seqs == list(range(len(seqs))), replica
                for name in ("cpu_percent", "memory_mb"):
                    history = client.get(f"/runs/{run_id}/metrics/system/{replica}/{name}")
                    steps = [p[0] for p in history.json()["points"]]
                    # Every sample in the file, each once: 0..n-1, no gap, no repeat.
                    assert steps == list(range(len(seqs))), (replica, name)
                memory = client.get(f"/runs/{run_id}/metrics/system/{replica}/memory_mb").json()
                assert max(p[2] for p in memory["points"]) >= 30  # the 30 MiB it holds
            events = client.get(f"/runs/{run_id}/events").json()["items"]
            assert not [e for e in events if e["kind"] == "warning"]
    finally:
        server.close()


def test_samples_of_a_run_that_ended_while_the_server_was_down_are_all_stored(
    server_factory: Any,
) -> None:
    """The restarted server stores every sample before it records the run's end."""
    server = server_factory.start("sqlite", extra_env=FAST)
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
            snap = client.post("/snapshots", content=targz({"work.py": WORK}), headers=GZ)
            text = manifest("ended", "python work.py 2", replicas=1)
            r = client.post(
                "/projects/default/runs", json={"manifest": text, "snapshot_id": snap.json()["id"]}
            )
            run_id = int(r.json()["id"])
            wait_status(client, run_id, {"running"})
        server.kill()
        state = server.home / "runs" / str(run_id) / "state.json"
        wait_for(
            "the run to end with no server",
            lambda: state.exists() and json.loads(state.read_text())["phase"] == "complete",
        )
        server.start()
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
            done = wait_status(client, run_id, {"complete", "error"}, timeout=60)
            assert done["status"] == "complete", done["reason"]
            # No waiting: the samples were stored before the end was recorded.
            seqs = _file_samples(server.home, run_id)["worker-0"]
            assert len(seqs) >= 4
            history = client.get(f"/runs/{run_id}/metrics/system/worker-0/cpu_percent").json()
            assert [p[0] for p in history["points"]] == seqs == list(range(len(seqs)))
    finally:
        server.close()


@pytest.fixture(scope="module")
def client(server_factory: Any) -> Iterator[httpx.Client]:
    server = server_factory.start("sqlite", extra_env=FAST)
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as c:
        yield c
    server.close()


def test_history_window_and_interval_over_http(client: httpx.Client) -> None:
    r = client.post("/projects/default/external-runs", json={"name": "window"})
    run_id = r.json()["id"]
    t0 = 1_800_000_000.0
    points = [{"key": "loss", "value": float(i), "step": i, "time": t0 + i} for i in range(120)]
    assert client.post(f"/runs/{run_id}/metrics", json={"points": points}).status_code == 200
    got = client.get(
        f"/runs/{run_id}/metrics/loss",
        params={"min_time": t0 + 30, "max_time": t0 + 89, "interval": 30},
    ).json()
    assert got == {
        "key": "loss",
        "points": [[59, t0 + 30, 44.5], [89, t0 + 60, 74.5]],
        "total": 60,
        "downsampled": True,
        "interval": 30,
    }
    plain = client.get(f"/runs/{run_id}/metrics/loss", params={"max_step": 1}).json()
    assert plain["interval"] is None and plain["downsampled"] is False
    for params, text in (
        ({"interval": 0}, "interval must be between 1 and 86400 seconds, not 0"),
        ({"interval": 100000}, "interval must be between 1 and 86400 seconds, not 100000"),
        ({"min_time": 10, "max_time": 5}, "min_time (10.0) is after max_time (5.0)"),
        ({"min_time": "nan"}, "min_time must be a finite number of epoch seconds, not nan"),
    ):
        bad = client.get(f"/runs/{run_id}/metrics/loss", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert text in bad.json()["error"]["message"]


def test_node_metrics_over_http(client: httpx.Client) -> None:
    node = client.get("/nodes").json()["items"][0]["name"]
    assert client.put(f"/nodes/{node}/simulated-gpus", json={"count": 2}).status_code == 200

    def sampled() -> dict[str, Any] | None:
        data: dict[str, Any] = client.get(f"/nodes/{node}/metrics").json()
        return data if {"cpu_percent", "memory_mb"} <= {s["key"] for s in data["series"]} else None

    got = wait_for("node samples", sampled, timeout=15)
    assert (got["node"], got["window"], got["interval"], got["sample_interval"]) == (
        node,
        3600,
        10,
        0.5,
    )
    assert got["until"] - got["since"] == 3600 and abs(got["until"] - time.time()) < 30
    series = {s["key"]: s for s in got["series"]}
    assert series["cpu_percent"]["unit"] == "%" and series["memory_mb"]["unit"] == "MB"
    assert all(0 <= p[1] <= 100 for p in series["cpu_percent"]["points"])
    assert all(p[1] > 0 for p in series["memory_mb"]["points"])
    # No GPU here: the simulated ones are listed, never measured, and no GPU key exists.
    assert [(g["index"], g["simulated"], g["measured"]) for g in got["gpus"]] == [
        (0, True, False),
        (1, True, False),
    ]
    assert not [k for k in series if k.startswith("gpu/")]
    assert got["gpu_error"]  # why NVML cannot be used on this machine
    # Explicit interval and window; "auto" spelled out.
    day = client.get(f"/nodes/{node}/metrics", params={"window": 86400, "interval": "auto"})
    assert day.status_code == 200 and day.json()["interval"] == 300
    one = client.get(f"/nodes/{node}/metrics", params={"window": 60, "interval": 1}).json()
    assert one["interval"] == 1
    missing = client.get("/nodes/nope/metrics")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == (
        f"node 'nope' not found (known nodes: {node}); `trainyard node ls` lists them"
    )
    for params, text in (
        ({"window": 10}, "window must be between 60 and 604800 seconds"),
        ({"window": 10**6}, "window must be between 60 and 604800 seconds"),
        ({"interval": 0}, "interval must be 'auto' or whole seconds from 1 to 3600"),
        ({"interval": "fast"}, "interval must be 'auto' or whole seconds from 1 to 3600"),
        ({"until": "nan"}, "until must be a finite number of epoch seconds"),
    ):
        bad = client.get(f"/nodes/{node}/metrics", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert text in bad.json()["error"]["message"]
    client.put(f"/nodes/{node}/simulated-gpus", json={"count": 0})
