"""RELIABILITY.md, "Crashes and restarts": the server SIGKILLed mid-run and restarted after a
delay. Every run finishes exactly once, with exactly the log lines it would have had without
the crash. 0, 3 and 20 s run in CI (3 s and 20 s outlive the runs: they finish while no
server exists); 60 s is a soak test (`make soak`)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from e2e_support import all_log_lines, wait_status

LINES = 40
COUNT_TASK = f"""
name: counter
resources:
- name: worker
  replicas: 3
  command: >-
    python -c "import os, time;
    [print(os.environ['TRAINYARD_REPLICA'], i, flush=True) or time.sleep(0.05)
    for i in range({LINES})]"
"""


def _submit(api: httpx.Client) -> int:
    r = api.post("/projects/default/runs", json={"manifest": COUNT_TASK})
    assert r.status_code == 201, r.text
    run_id: int = r.json()["id"]
    return run_id


def _check_exactly_once(api: httpx.Client, run_ids: list[int]) -> None:
    for run_id in run_ids:
        run = wait_status(api, run_id, ("complete",), timeout=90)
        assert [r["status"] for r in run["replicas"]] == ["succeeded"] * 3
        events = api.get(f"/runs/{run_id}/events").json()["items"]
        statuses = [e["status"] for e in events if e["kind"] == "status"]
        assert statuses == ["queued", "starting", "running", "complete"], statuses
        lines = [(line["replica"], line["text"]) for line in all_log_lines(api, run_id)]
        expected = {(f"worker-{r}", f"worker-{r} {i}") for r in range(3) for i in range(LINES)}
        assert len(lines) == len(expected) and set(lines) == expected


def _crash_and_restart(live_server: Any, delay: float) -> None:
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as api:
        run_ids = [_submit(api) for _ in range(3)]
        for run_id in run_ids:
            wait_status(api, run_id, ("running",))
    live_server.kill()
    time.sleep(delay)
    live_server.start()
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as api:
        _check_exactly_once(api, run_ids)
        # A new run after the restart works and gets the next build id.
        later = _submit(api)
        assert api.get(f"/runs/{later}").json()["build_id"] == 4
        _check_exactly_once(api, [later])


@pytest.mark.parametrize("delay", [0.0, 3.0, 20.0])
def test_server_sigkill_then_restart_every_run_finishes_once(
    live_server: Any, delay: float
) -> None:
    _crash_and_restart(live_server, delay)


@pytest.mark.soak
@pytest.mark.parametrize("delay", [60.0])
def test_server_sigkill_long_outage_soak(live_server: Any, delay: float) -> None:
    _crash_and_restart(live_server, delay)


def test_twenty_concurrent_submissions_all_run_to_completion(live_server: Any) -> None:
    """20 clients submit at once; every run completes with its own build id and logs."""
    from concurrent.futures import ThreadPoolExecutor

    text = "name: burst\nresources:\n- name: worker\n  command: echo run $BUILD_ID\n"

    def submit(_: int) -> dict[str, Any]:
        with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=60) as api:
            r = api.post("/projects/default/runs", json={"manifest": text})
            assert r.status_code == 201, r.text
            body: dict[str, Any] = r.json()
            return body

    with ThreadPoolExecutor(20) as pool:
        runs = list(pool.map(submit, range(20)))
    assert sorted(r["build_id"] for r in runs) == list(range(1, 21))
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as api:
        for run in runs:
            wait_status(api, run["id"], ("complete",), timeout=120)
            texts = [line["text"] for line in all_log_lines(api, run["id"])]
            assert texts == [f"run {run['build_id']}"]
