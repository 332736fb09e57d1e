"""Helpers of the browser suite: manifests, submitting runs, polling, screenshots."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def shoot(page: Any, name: str) -> None:
    """Save ``name``-light.png and ``name``-dark.png of the page as it is now."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{scheme}.png"))
    page.emulate_media(color_scheme="light")


def manifest(name: str, command: str, replicas: int = 1, extra: str = "") -> str:
    """A native manifest with one ``worker`` resource asking for 500m CPU and 256Mi."""
    return (
        f"name: {name}\n{extra}resources:\n  - name: worker\n    replicas: {replicas}\n"
        f"    command: {json.dumps(command)}\n"
        "    resources:\n      requests: {cpu: 500m, memory: 256Mi}\n"
    )


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def submit(api: httpx.Client, text: str, project: str = "default", **body: Any) -> dict[str, Any]:
    response = api.post(f"/projects/{project}/runs", json={"manifest": text, **body})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def wait_status(api: httpx.Client, run_id: int, statuses: set[str]) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"/runs/{run_id}").json()
        return run if run["status"] in statuses else None

    result: dict[str, Any] = wait_for(f"run {run_id} to be one of {statuses}", probe)
    return result
