"""The server is killed (SIGKILL) and restarted around running runs."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from server_support import targz, wait_for, wait_status

from trainyard.core.status import RunStatus
from trainyard.server.services.runs import load_run, transition
from trainyard.server.store import Database

GZ = {"content-type": "application/gzip"}

COUNT_PY = """
import os, sys, time
name = os.environ["TRAINYARD_REPLICA"]
for i in range(int(sys.argv[1])):
    print(f"{name} {i}", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _submit(client: httpx.Client, command: str, replicas: int = 2) -> dict[str, Any]:
    snap = client.post("/snapshots", content=targz({"count.py": COUNT_PY}), headers=GZ).json()
    text = (
        "name: survivor\nresources:\n  - name: worker\n"
        f"    replicas: {replicas}\n    command: {command}\n"
    )
    r = client.post("/projects/default/runs", json={"manifest": text, "snapshot_id": snap["id"]})
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def _all_lines(client: httpx.Client, run_id: int) -> list[str]:
    lines: list[str] = []
    cursor = ""
    for _ in range(100):
        page = client.get(f"/runs/{run_id}/logs", params={"cursor": cursor}).json()
        lines.extend(f"{line['replica']}|{line['text']}" for line in page["lines"])
        cursor = page["cursor"]
        if page["complete"]:
            return lines
    raise AssertionError("logs never complete")


def _supervisor(home: Path, run_id: int) -> psutil.Process:
    run_dir = str(home / "runs" / str(run_id))
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "trainyard.runtime" in cmd and run_dir in cmd:
            return proc
    raise AssertionError(f"no supervisor for run {run_id}")


def test_server_sigkill_mid_run_then_restart_finishes_once(live_server: Any) -> None:
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        run = _submit(client, "python count.py 30 0.1")
        wait_status(client, run["id"], {"running"})
        wait_for("some output", lambda: _lines_so_far(client, run["id"]) >= 4)
    live_server.kill()
    time.sleep(0.5)  # the run goes on without a server
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        done = wait_status(client, run["id"], {"complete", "error"}, timeout=60)
        assert done["status"] == "complete", done["reason"]
        lines = _all_lines(client, run["id"])
        assert sorted(lines) == sorted(
            f"worker-{r}|worker-{r} {i}" for r in (0, 1) for i in range(30)
        )
        events = client.get(f"/runs/{run['id']}/events").json()["items"]
        assert [e["status"] for e in events if e["kind"] == "status"] == [
            "queued",
            "starting",
            "running",
            "complete",
        ]
        replica_events = [e["message"] for e in events if e["kind"] == "replica"]
        assert len(replica_events) == len(set(replica_events)) == 4  # 2 started, 2 succeeded
        # One supervisor only, ever: launch.json and the replicas' pids are unchanged.
        assert [r["restarts"] for r in done["replicas"]] == [0, 0]


def _lines_so_far(client: httpx.Client, run_id: int) -> int:
    return len(client.get(f"/runs/{run_id}/logs").json()["lines"])


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_run_that_ended_while_the_server_was_down_ends_when_it_did(live_server: Any) -> None:
    """The end is recorded at the time the run ended, not when the restarted server saw it."""
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        run = _submit(client, "python count.py 10 0.05")
        wait_status(client, run["id"], {"running"})
    live_server.kill()
    state_file = live_server.home / "runs" / str(run["id"]) / "state.json"
    wait_for(
        "the run to end with no server",
        lambda: state_file.exists() and json.loads(state_file.read_text())["phase"] == "complete",
    )
    time.sleep(1.0)  # the outage goes on: what the server records must not depend on it
    restarted_at = datetime.now(UTC)
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        done = wait_status(client, run["id"], {"complete", "error"}, timeout=60)
        assert done["status"] == "complete", done["reason"]
        finished = _time(done["finished_at"])
        assert _time(done["started_at"]) <= finished <= restarted_at
        last_replica = max(_time(r["finished_at"]) for r in done["replicas"])
        assert last_replica <= finished
        events = client.get(f"/runs/{run['id']}/events").json()["items"]
        complete = [e for e in events if e["kind"] == "status" and e["status"] == "complete"]
        assert len(complete) == 1 and _time(complete[0]["time"]) == finished


OLD_STATE = {
    "version": 1,
    "run_id": 1,
    "phase": "complete",
    "reason": "",
    "supervisor_pid": 999999,
    "supervisor_start_ticks": 1,
    "replicas": [
        {
            "name": "worker-0",
            "resource": "worker",
            "index": 0,
            "address": "127.0.0.1",
            "status": "succeeded",
            "exit_code": 0,
        }
    ],
    "seq": 1,
    "updated_at": "2020-01-01T00:00:01+00:00",
}


def test_fresh_database_moves_an_old_run_directory_aside(live_server: Any) -> None:
    """The database was replaced (deleted, restored, switched) but runs/1 still holds the
    run 1 of the old one: the new run 1 never shows the old run's state or logs, and the old
    directory is kept under runs/stale/."""
    old = live_server.home / "runs" / "1"
    files = {
        "launch.json": json.dumps({"run_id": 1, "run_ref": "old/task#1", "replicas": []}),
        "state.json": json.dumps(OLD_STATE),
        "events.jsonl": json.dumps(
            {"seq": 1, "time": "2020-01-01T00:00:01+00:00", "kind": "phase", "message": "complete"}
        )
        + "\n",
        "logs/worker-0.log": "2020-01-01T00:00:00.000000Z output of the OLD run\n",
        "code/count.py": "print('old code')\n",
        "output/model.bin": "weights of the old run",
    }
    for name, text in files.items():
        (old / name).parent.mkdir(parents=True, exist_ok=True)
        (old / name).write_text(text)
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        run = _submit(client, "python count.py 3 0", replicas=1)
        assert run["id"] == 1
        done = wait_status(client, run["id"], {"complete", "error"})
        assert done["status"] == "complete", done["reason"]
        assert _all_lines(client, run["id"]) == [f"worker-0|worker-0 {i}" for i in range(3)]
        events = client.get(f"/runs/{run['id']}/events").json()["items"]
    stale = list((live_server.home / "runs" / "stale").iterdir())
    assert len(stale) == 1 and stale[0].name.startswith("1-")
    for name, text in files.items():
        assert (stale[0] / name).read_text() == text, name
    warnings = [e for e in events if e["kind"] == "warning"]
    assert [w["message"] for w in warnings] == [
        f"moved aside a run directory left by an earlier database: {old} → {stale[0]}"
    ]
    assert [e["status"] for e in events if e["kind"] == "status"] == [
        "queued",
        "starting",
        "running",
        "complete",
    ]


def test_supervisor_killed_while_server_down_is_error_supervisor_lost(live_server: Any) -> None:
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        # 25 lines each, then the replicas wait: the error must carry the last 20 of each.
        run = _submit(client, "python count.py 25 0; sleep 300")
        running = wait_status(client, run["id"], {"running"})
        wait_for(
            "replica pids",
            lambda: all(r["pid"] for r in client.get(f"/runs/{run['id']}").json()["replicas"]),
        )
        wait_for("all output", lambda: _lines_so_far(client, run["id"]) == 50)
        pids = [r["pid"] for r in client.get(f"/runs/{run['id']}").json()["replicas"]]
    assert running["status"] == "running" and len(pids) == 2
    live_server.kill()
    supervisor = _supervisor(live_server.home, run["id"])
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(10)
    restarted_at = datetime.now(UTC)
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        done = wait_status(client, run["id"], {"error"}, timeout=60)
        assert done["reason"] == "supervisor lost"
        events = client.get(f"/runs/{run['id']}/events").json()["items"]
        status_events = [e for e in events if e["kind"] == "status"]
        assert status_events[-1]["status"] == "error"
        # The replicas are over too, and say why.
        for replica in done["replicas"]:
            assert replica["status"] == "failed", replica
            assert replica["reason"] == "supervisor lost"
            assert replica["finished_at"] is not None
            assert _time(replica["finished_at"]) >= restarted_at
        # The error event carries what each replica last wrote: its last 20 lines only.
        message = status_events[-1]["message"]
        for name in ("worker-0", "worker-1"):
            tail = "\n".join(f"{name} {i}" for i in range(5, 25))
            assert f"last 20 log lines of {name}:\n{tail}" in message, message
            assert f"{name} 4\n" not in message
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
            pid
        )
    # Nothing of the run is left.
    marker = str(live_server.home / "runs" / str(run["id"]))
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline", "environ"])
        if any(marker in c for c in (p.info["cmdline"] or []))
        or marker in ((p.info["environ"] or {}).get("SRC_DIR", ""))
    ]
    assert left == []


def test_stop_right_after_a_restart(live_server: Any) -> None:
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        run = _submit(client, "sleep 300", replicas=1)
        wait_status(client, run["id"], {"running"})
        pid = wait_for(
            "replica pid", lambda: client.get(f"/runs/{run['id']}").json()["replicas"][0]["pid"]
        )
    live_server.kill()
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        assert client.post(f"/runs/{run['id']}/stop").json()["status"] in ("stopping", "stopped")
        done = wait_status(client, run["id"], {"stopped"}, timeout=30)
        assert done["replicas"][0]["status"] == "stopped"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_stop_recorded_but_not_sent_before_a_crash_is_sent_after_restart(live_server: Any) -> None:
    """The server dies between committing `stopping` and asking the executor: the next one
    repeats the stop instead of leaving the run `stopping` forever."""
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        run = _submit(client, "sleep 300", replicas=1)
        wait_status(client, run["id"], {"running"})
    live_server.kill()
    db = Database(live_server.settings().database_url)
    try:
        with db.write() as session:
            row = load_run(session, run["id"], lock=True)
            transition(session, row, RunStatus.STOPPING, "stop requested by user")
    finally:
        db.dispose()
    state = json.loads((live_server.home / "runs" / str(run["id"]) / "state.json").read_text())
    assert state["phase"] == "running"  # the executor never heard of the stop
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        done = wait_status(client, run["id"], {"stopped"}, timeout=30)
        assert done["reason"]
