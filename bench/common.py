"""Helpers shared by the benchmarks: a real trainyard server on loopback, timing, statistics."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:8.1f} ms   p90 {pct(values, 0.9) * 1000:8.1f} ms"
        f"   (n={len(values)})"
    )


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``url`` until it answers 200; return the seconds it took."""
    t0 = time.perf_counter()
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() - t0 < deadline_s:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {deadline_s} s")


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    started_s: float


@contextmanager
def trainyard_server(home: Path | None = None) -> Iterator[Server]:
    """A real `trainyard server` (SQLite) on a free loopback port, in ``home`` (a database
    seeded beforehand) or a fresh temporary one."""
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        home = home or Path(tmp)
        port = free_port()
        env = {**os.environ, "TRAINYARD_HOME": str(home)}
        env.pop("TRAINYARD_DB__URL", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainyard.server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/api/v1/health", 60, proc)
            yield Server(url, home, proc, time.perf_counter() - t0)
        finally:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                try:
                    for run in client.get(
                        "/api/v1/runs?status=queued,starting,running&limit=500"
                    ).json()["items"]:
                        client.post(f"/api/v1/runs/{run['id']}/stop")
                except (httpx.HTTPError, KeyError):
                    pass
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def time_pages(url: str, pages: dict[str, list[str]], reps: int, width: int = 40) -> float:
    """GET each view's paths (one view may need several requests) ``reps`` times after a
    warm-up over one keep-alive connection; print p50/p90 per view; return the worst p90."""
    worst = 0.0
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, paths in pages.items():
            times = []
            for i in range(reps + 1):
                t = time.perf_counter()
                for path in paths:
                    client.get(path).raise_for_status()
                if i:
                    times.append(time.perf_counter() - t)
            p90 = pct(times, 0.9)
            worst = max(worst, p90)
            print(
                f"{name:{width}s} p50 {statistics.median(times) * 1000:7.1f} ms   "
                f"p90 {p90 * 1000:7.1f} ms"
            )
    return worst


def mlflow_command(peer_python: str, home: str, port: int) -> list[str]:
    """``mlflow server`` of the peer virtualenv on loopback, SQLite store under ``home``."""
    mlflow = str(Path(peer_python).parent / "mlflow")
    return [
        mlflow,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{home}/mlflow.db",
        "--default-artifact-root",
        f"{home}/artifacts",
    ]
