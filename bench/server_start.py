"""Server start → healthy, and idle memory (RSS of all its processes), beside MLflow.

trainyard: `python -m trainyard.server` (what `trainyard server` runs) with a fresh home.
MLflow: `mlflow server --backend-store-uri sqlite:///… --host 127.0.0.1` from the peer
virtualenv, started the same way and polled on its /health. Targets: ≤ 1.5 s and ≤ 150 MiB.

    .venv/bin/python bench/server_start.py --peer-python .venv-bench/bin/python [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import free_port, mlflow_command, tree_rss, wait_http

MIB = 1024 * 1024


def measure(cmd: list[str], health: str, env: dict[str, str]) -> tuple[float, int]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        took = wait_http(health, 120, proc)
        time.sleep(3)  # idle: let background services settle before reading memory
        return took, tree_rss(proc.pid)
    finally:
        for child in _children(proc.pid):
            child.terminate()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _children(pid: int) -> list:  # type: ignore[type-arg]
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def trainyard_once() -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = {**os.environ, "TRAINYARD_HOME": home}
        env.pop("TRAINYARD_DB__URL", None)
        cmd = [sys.executable, "-m", "trainyard.server", "--host", "127.0.0.1", "--port", str(port)]
        return measure(cmd, f"http://127.0.0.1:{port}/api/v1/health", env)


def mlflow_once(peer_python: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        cmd = mlflow_command(peer_python, home, port)
        return measure(cmd, f"http://127.0.0.1:{port}/health", dict(os.environ))


def report(name: str, samples: list[tuple[float, int]]) -> tuple[float, float]:
    start = statistics.median(s[0] for s in samples)
    rss = statistics.median(s[1] for s in samples) / MIB
    print(
        f"{name:10s} start → healthy p50 {start:6.2f} s   idle RSS p50 {rss:7.1f} MiB"
        f"   (n={len(samples)})"
    )
    return start, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peer-python", help="python of a virtualenv with mlflow; omit to skip")
    args = ap.parse_args()
    ty = report("trainyard", [trainyard_once() for _ in range(args.runs)])
    print("           targets: ≤ 1.5 s, ≤ 150 MiB")
    if args.peer_python:
        ml = report("mlflow", [mlflow_once(args.peer_python) for _ in range(args.runs)])
        print(f"mlflow / trainyard: start {ml[0] / ty[0]:.1f}×, memory {ml[1] / ty[1]:.1f}×")


if __name__ == "__main__":
    main()
