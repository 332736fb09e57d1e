"""End to end through a live server: a 2-replica run with a code snapshot, its statuses and
events, its logs read by pages, by tail and as a live stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_support import targz, wait_status

GZ = {"content-type": "application/gzip"}

TRAIN_PY = """
import os, sys, time
name = os.environ["TRAINYARD_REPLICA"]
for i in range(int(sys.argv[1])):
    print(f"{name} line {i}", flush=True)
    time.sleep(float(sys.argv[2]))
"""

TASK = """name: two
resources:
  - name: worker
    replicas: 2
    command: python train.py {lines} {pause}
"""


def _submit(client: httpx.Client, lines: int, pause: float) -> dict[str, Any]:
    snap = client.post("/snapshots", content=targz({"train.py": TRAIN_PY}), headers=GZ).json()
    body = {"manifest": TASK.format(lines=lines, pause=pause), "snapshot_id": snap["id"]}
    r = client.post("/projects/default/runs", json=body)
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def _expected(lines: int) -> set[str]:
    return {f"worker-{r} line {i}" for r in (0, 1) for i in range(lines)}


def _sse(client: httpx.Client, run_id: int, **params: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of the run's log stream until it closes."""
    with client.stream("GET", f"/runs/{run_id}/logs/stream", params=params, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event, data = "message", ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                yield event, json.loads(data)
                event, data = "message", ""


def test_two_replica_run_end_to_end(api_client: httpx.Client) -> None:
    run = _submit(api_client, lines=20, pause=0.02)
    assert run["status"] == "queued"
    # Follow it live from the start: every line once, status changes, then `end`.
    seen_lines: list[str] = []
    statuses: list[str] = []
    ended: dict[str, Any] | None = None
    for event, data in _sse(api_client, run["id"]):
        if event == "log":
            seen_lines.append(data["text"])
            assert data["cursor"] and data["replica"] in ("worker-0", "worker-1")
        elif event == "status":
            statuses.append(data["status"])
        elif event == "end":
            ended = data
    assert ended == {"status": "complete"}
    assert sorted(seen_lines) == sorted(_expected(20))
    assert statuses[-1] == "complete"
    assert statuses == sorted(set(statuses), key=statuses.index)  # each change once

    done = api_client.get(f"/runs/{run['id']}").json()
    assert done["status"] == "complete"
    assert done["started_at"] and done["finished_at"]
    assert [(r["name"], r["status"], r["exit_code"]) for r in done["replicas"]] == [
        ("worker-0", "succeeded", 0),
        ("worker-1", "succeeded", 0),
    ]
    assert len({r["address"] for r in done["replicas"]}) == 2
    events = api_client.get(f"/runs/{run['id']}/events").json()["items"]
    assert [e["status"] for e in events if e["kind"] == "status"] == [
        "queued",
        "starting",
        "running",
        "complete",
    ]
    times = [e["time"] for e in events if e["kind"] == "status"]
    assert times == sorted(times)

    # Pages of ~200 bytes: every line exactly once, merged by time, then complete.
    cursor = None
    paged: list[dict[str, Any]] = []
    for _ in range(200):
        params: dict[str, Any] = {"max_bytes": 200}
        if cursor:
            params["cursor"] = cursor
        page = api_client.get(f"/runs/{run['id']}/logs", params=params).json()
        paged.extend(page["lines"])
        cursor = page["cursor"]
        if page["complete"]:
            break
    assert page["complete"] and page["replicas"] == ["worker-0", "worker-1"]
    assert sorted(line["text"] for line in paged) == sorted(_expected(20))
    assert [line["time"] for line in paged] == sorted(line["time"] for line in paged)
    # Reading again from the final cursor gives nothing more.
    tail_page = api_client.get(f"/runs/{run['id']}/logs", params={"cursor": cursor}).json()
    assert tail_page["lines"] == [] and tail_page["complete"]

    last = api_client.get(f"/runs/{run['id']}/logs", params={"tail": 3}).json()
    assert len(last["lines"]) == 3
    assert {line["text"] for line in last["lines"]} <= {
        "worker-0 line 19",
        "worker-1 line 19",
        "worker-0 line 18",
        "worker-1 line 18",
    }
    one = api_client.get(f"/runs/{run['id']}/logs", params={"replica": "worker-1"}).json()
    assert [line["text"] for line in one["lines"]] == [f"worker-1 line {i}" for i in range(20)]
    assert one["replicas"] == ["worker-1"]


def test_stream_resumes_from_a_line_cursor(api_client: httpx.Client) -> None:
    run = _submit(api_client, lines=10, pause=0)
    wait_status(api_client, run["id"], {"complete"})
    first = [d for e, d in _sse(api_client, run["id"]) if e == "log"]
    assert len(first) == 20
    resumed = [d for e, d in _sse(api_client, run["id"], cursor=first[7]["cursor"]) if e == "log"]
    assert [d["text"] for d in resumed] == [d["text"] for d in first[8:]]
    # The SSE id is the cursor too, for EventSource's Last-Event-ID.
    with api_client.stream(
        "GET", f"/runs/{run['id']}/logs/stream", headers={"Last-Event-ID": first[17]["cursor"]}
    ) as r:
        body = r.read().decode()
    assert body.count("event: log") == 2 and "event: end" in body


@pytest.mark.parametrize("path", ["/logs", "/logs/stream"])
def test_log_request_errors(api_client: httpx.Client, path: str) -> None:
    run = _submit(api_client, lines=1, pause=0)
    r = api_client.get(f"/runs/{run['id']}{path}", params={"replica": "worker-9"})
    assert r.status_code == 404 and "replica 'worker-9' not found" in r.json()["error"]["message"]
    r = api_client.get(f"/runs/{run['id']}{path}", params={"cursor": "not-a-cursor!"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    r = api_client.get(f"/runs/424242{path}")
    assert r.status_code == 404 and r.json()["error"]["message"] == "run 424242 not found"


def test_non_utf8_and_long_lines_come_back_readable(api_client: httpx.Client) -> None:
    script = (
        "import sys\n"
        "sys.stdout.buffer.write(b'bad \\xff\\xfe bytes\\n')\n"
        "sys.stdout.buffer.write(b'x' * 3_000_000 + b'\\n')\n"
        "sys.stdout.buffer.write(b'after\\n')\n"
    )
    snap = api_client.post("/snapshots", content=targz({"out.py": script}), headers=GZ).json()
    text = "name: bytes\nresources:\n  - name: worker\n    command: python out.py\n"
    run = api_client.post(
        "/projects/default/runs", json={"manifest": text, "snapshot_id": snap["id"]}
    ).json()
    wait_status(api_client, run["id"], {"complete"})
    lines: list[str] = []
    cursor = None
    for _ in range(50):
        page = api_client.get(f"/runs/{run['id']}/logs", params={"cursor": cursor or ""}).json()
        lines.extend(line["text"] for line in page["lines"])
        cursor = page["cursor"]
        if page["complete"]:
            break
    assert lines[0] == "bad \ufffd\ufffd bytes"
    assert lines[-1] == "after"
    assert sum(line.count("x") for line in lines[1:-1]) == 3_000_000


def test_replicas_can_reach_the_server_that_launched_them(live_server: Any) -> None:
    """TRAINYARD_SERVER_URL names the real port even when the server was asked for port 0."""
    script = (
        "import os, urllib.request\n"
        "url = os.environ['TRAINYARD_SERVER_URL']\n"
        "print(url)\n"
        "print(urllib.request.urlopen(url + '/api/v1/health').read().decode())\n"
    )
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        snap = client.post("/snapshots", content=targz({"ping.py": script}), headers=GZ).json()
        text = "name: ping\nresources:\n  - name: worker\n    command: python ping.py\n"
        body = {"manifest": text, "snapshot_id": snap["id"]}
        run = client.post("/projects/default/runs", json=body).json()
        done = wait_status(client, run["id"], {"complete", "error"})
        lines = [line["text"] for line in client.get(f"/runs/{run['id']}/logs").json()["lines"]]
    assert done["status"] == "complete", (done["reason"], lines)
    assert lines[0] == live_server.url
    assert json.loads(lines[1])["status"] == "ok"
