"""What the end-to-end tests share: the real `trainyard` command and API polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
_SCRIPT = Path(sys.executable).with_name("trainyard")
TERMINAL = ("complete", "error", "stopped")


def trainyard(
    env: dict[str, str], *args: str, timeout: float = 240.0
) -> subprocess.CompletedProcess[str]:
    """Run the installed `trainyard` command against a live server (``env`` from it)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    full.update(env)
    full.update({"NO_COLOR": "1", "COLUMNS": "200"})
    return subprocess.run(
        [str(_SCRIPT), *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def latest_run(api: httpx.Client, task: str) -> dict[str, Any]:
    items = api.get("/runs", params={"project": "default", "task": task, "limit": 1}).json()[
        "items"
    ]
    assert items, f"no run of task {task!r}"
    run: dict[str, Any] = items[0]
    return run


def wait_status(
    api: httpx.Client, run_id: int, want: tuple[str, ...], timeout: float = 60.0
) -> dict[str, Any]:
    """Poll the run until its status is one of ``want``; fail on another terminal status."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            run = api.get(f"/runs/{run_id}").json()
        except httpx.TransportError:  # the server may be restarting
            time.sleep(0.1)
            continue
        if run["status"] in want:
            return run
        assert run["status"] not in TERMINAL, f"run {run_id} ended {run['status']}: {run}"
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} not in {want} after {timeout}s: {run}")


def all_log_lines(api: httpx.Client, run_id: int) -> list[dict[str, Any]]:
    """Every log line of every replica, paging with the cursor."""
    lines: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"cursor": cursor} if cursor else {}
        page = api.get(f"/runs/{run_id}/logs", params=params).json()
        lines.extend(page["lines"])
        if not page["lines"]:
            return lines
        cursor = page["cursor"]
