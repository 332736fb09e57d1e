"""Helpers of the server suite: factories for specs, manifests and archives; polling."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from trainyard.core.models import ResourceSpec, TaskSpec

T = TypeVar("T")


def make_spec(name: str = "train", replicas: int = 1, command: str = "echo hi") -> TaskSpec:
    """A small task spec built directly (no manifest)."""
    return TaskSpec(
        name=name, resources=[ResourceSpec(name="worker", replicas=replicas, command=command)]
    )


def manifest(
    name: str = "train",
    command: str = "echo hello",
    replicas: int = 1,
    extra: str = "",
    resource: str = "worker",
) -> str:
    """A native-format manifest with one resource (``command`` is quoted for YAML)."""
    return (
        f"name: {name}\n"
        "resources:\n"
        f"  - name: {resource}\n"
        f"    replicas: {replicas}\n"
        f"    command: {json.dumps(command)}\n"
        f"{extra}"
    )


def targz(
    files: dict[str, bytes | str], *, extra: Callable[[tarfile.TarFile], None] | None = None
) -> bytes:
    """A .tar.gz of ``files`` (path -> content); ``extra`` may add hand-made members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra(tar)
    return buf.getvalue()


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_status(
    client: httpx.Client, run_id: int, statuses: set[str], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll ``GET /runs/{id}`` until the run is in one of ``statuses``; the run JSON."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = client.get(f"/runs/{run_id}").json()
        return last if last.get("status") in statuses else None

    try:
        return wait_for(f"run {run_id} to reach {sorted(statuses)}", probe, timeout)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; last seen: {last.get('status')} {last.get('reason')!r}"
        ) from None


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
