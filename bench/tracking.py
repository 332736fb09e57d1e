"""Tracking against MLflow's tracking server, both started in this run on this machine.

trainyard: a real `trainyard server` (SQLite). MLflow: `mlflow server` with a SQLite backend
store, from the peer virtualenv (--peer-python, e.g. .venv-bench/bin/python; `make bench`
installs it). Both are driven over HTTP by the same keep-alive httpx client, each through its
own REST API, so the figures compare the servers, not client libraries:

- ingest: 100 batches of 1,000 points (10 keys × 100 steps) into one run: trainyard
  ``POST /api/v1/runs/{id}/metrics``, MLflow ``POST /api/2.0/mlflow/runs/log-batch`` (its
  limit is 1,000 metrics per batch); points per second;
- history: one metric of 100,000 points read whole (trainyard ``GET
  /api/v1/runs/{id}/metrics/{key}``; MLflow ``GET metrics/get-history``, paged as its client
  does), and a chart window of it downsampled to 1,000 points (trainyard ``?max_points=1000``;
  MLflow's UI endpoint ``ajax-api/2.0/mlflow/metrics/get-history-bulk-interval`` with
  ``max_results=1000``).

Each figure is the median of --repeat rounds; the ratio is MLflow time / trainyard time.

    .venv/bin/python bench/tracking.py --peer-python .venv-bench/bin/python [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from common import free_port, mlflow_command, trainyard_server, wait_http

KEYS = 10
STEPS_PER_BATCH = 100
BATCHES = 100
HISTORY_POINTS = 100_000


@contextmanager
def mlflow_server(peer_python: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as home:
        port = free_port()
        proc = subprocess.Popen(
            mlflow_command(peer_python, home, port),
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health", 120, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- trainyard ------------------------------------------------------------------------------


def _ty_run(c: httpx.Client) -> int:
    r = c.post("/api/v1/projects/default/external-runs", json={"name": "bench"})
    r.raise_for_status()
    return int(r.json()["id"])


def _ty_ingest(c: httpx.Client, run_id: int) -> None:
    now = time.time()
    for b in range(BATCHES):
        points = [
            {"key": f"k{k}", "value": float(s), "step": b * STEPS_PER_BATCH + s, "time": now}
            for k in range(KEYS)
            for s in range(STEPS_PER_BATCH)
        ]
        c.post(
            f"/api/v1/runs/{run_id}/metrics", json={"points": points, "batch_id": uuid.uuid4().hex}
        ).raise_for_status()


def _ty_fill_history(c: httpx.Client, run_id: int) -> None:
    now = time.time()
    for start in range(0, HISTORY_POINTS, 10_000):
        points = [
            {"key": "long", "value": (i % 977) / 977.0, "step": i, "time": now + i}
            for i in range(start, start + 10_000)
        ]
        c.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points}).raise_for_status()


def _ty_history(c: httpx.Client, run_id: int) -> int:
    r = c.get(f"/api/v1/runs/{run_id}/metrics/long")
    r.raise_for_status()
    return len(r.json()["points"])


def _ty_chart(c: httpx.Client, run_id: int) -> int:
    r = c.get(f"/api/v1/runs/{run_id}/metrics/long", params={"max_points": 1000})
    r.raise_for_status()
    return len(r.json()["points"])


# -- MLflow ---------------------------------------------------------------------------------


def _ml_run(c: httpx.Client) -> str:
    r = c.post(
        "/api/2.0/mlflow/runs/create",
        json={"experiment_id": "0", "start_time": int(time.time() * 1000)},
    )
    r.raise_for_status()
    return str(r.json()["run"]["info"]["run_id"])


def _ml_batch(c: httpx.Client, run_id: str, metrics: list[dict[str, object]]) -> None:
    c.post(
        "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": metrics}
    ).raise_for_status()


def _ml_ingest(c: httpx.Client, run_id: str) -> None:
    now = int(time.time() * 1000)
    for b in range(BATCHES):
        metrics: list[dict[str, object]] = [
            {"key": f"k{k}", "value": float(s), "step": b * STEPS_PER_BATCH + s, "timestamp": now}
            for k in range(KEYS)
            for s in range(STEPS_PER_BATCH)
        ]
        _ml_batch(c, run_id, metrics)


def _ml_fill_history(c: httpx.Client, run_id: str) -> None:
    now = int(time.time() * 1000)
    for start in range(0, HISTORY_POINTS, 1000):
        metrics: list[dict[str, object]] = [
            {"key": "long", "value": (i % 977) / 977.0, "step": i, "timestamp": now + i}
            for i in range(start, start + 1000)
        ]
        _ml_batch(c, run_id, metrics)


def _ml_history(c: httpx.Client, run_id: str) -> int:
    n, token = 0, None
    while True:
        params: dict[str, str | int] = {"run_id": run_id, "metric_key": "long"}
        if token:
            params["page_token"] = token
        r = c.get("/api/2.0/mlflow/metrics/get-history", params=params)
        r.raise_for_status()
        body = r.json()
        n += len(body.get("metrics", []))
        token = body.get("next_page_token")
        if not token:
            return n


def _ml_chart(c: httpx.Client, run_id: str) -> int:
    r = c.get(
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": run_id, "metric_key": "long", "max_results": 1000},
    )
    r.raise_for_status()
    return len(r.json().get("metrics", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", required=True, help="python of a venv with mlflow")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    points = BATCHES * KEYS * STEPS_PER_BATCH
    rows: list[tuple[str, float, float, str]] = []

    with trainyard_server() as ty, httpx.Client(base_url=ty.url, timeout=300) as c:
        ingest_ty = statistics.median(
            _timed(lambda: _ty_ingest(c, _ty_run(c))) for _ in range(args.repeat)
        )
        long_run = _ty_run(c)
        _ty_fill_history(c, long_run)
        assert _ty_history(c, long_run) == HISTORY_POINTS
        hist_ty = statistics.median(
            _timed(lambda: _ty_history(c, long_run)) for _ in range(args.repeat)
        )
        chart_ty = statistics.median(
            _timed(lambda: _ty_chart(c, long_run)) for _ in range(args.repeat)
        )

    with mlflow_server(args.peer_python) as url, httpx.Client(base_url=url, timeout=300) as c:
        ingest_ml = statistics.median(
            _timed(lambda: _ml_ingest(c, _ml_run(c))) for _ in range(args.repeat)
        )
        long_ml = _ml_run(c)
        _ml_fill_history(c, long_ml)
        got = _ml_history(c, long_ml)
        assert got == HISTORY_POINTS, got
        hist_ml = statistics.median(
            _timed(lambda: _ml_history(c, long_ml)) for _ in range(args.repeat)
        )
        chart_ml = statistics.median(
            _timed(lambda: _ml_chart(c, long_ml)) for _ in range(args.repeat)
        )

    rows.append(
        ("ingest, batches of 1,000 (points/s)", points / ingest_ty, points / ingest_ml, "≥ 10×")
    )
    rows.append(("history of 100,000 points (ms)", hist_ty * 1000, hist_ml * 1000, "≥ 10×"))
    rows.append(("chart window, 1,000 points (ms)", chart_ty * 1000, chart_ml * 1000, "≥ 10×"))
    print(f"{'':40} {'trainyard':>12} {'MLflow':>12} {'ratio':>8}  target")
    for name, t, m, target in rows:
        ratio = t / m if "points/s" in name else m / t
        print(f"{name:40} {t:12,.1f} {m:12,.1f} {ratio:7.1f}×  {target}")
    print(f"(medians of {args.repeat}; ingest: {points:,} points per round, one run each)")


if __name__ == "__main__":
    main()
