"""Run search against MLflow's tracking server: 2,000 runs with 5 params and 3 metrics each,
ordered by a metric. Both servers are started in this run on this machine (SQLite).

Both are filled over HTTP the same way (a run, then its params and metrics), then searched
over one keep-alive httpx client:

- trainyard: ``GET /api/v1/projects/{project}/runs?sort=metric:acc&order=desc&limit=N``
  (each run with its params and metric summaries), and the same search through trainyard's
  MLflow-compatible ``runs/search``;
- MLflow: ``POST /api/2.0/mlflow/runs/search`` with ``order_by: ["metrics.acc DESC"]`` and
  ``max_results: N`` — what ``mlflow.search_runs`` and MLflow's UI send.

N is 100 (a page of a UI) and 1,000 (``mlflow.search_runs``' default). Each figure is the
median of --repeat searches; the ratio is MLflow time / trainyard time.

    .venv/bin/python bench/search.py --peer-python .venv-bench/bin/python [--runs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx
from common import trainyard_server
from tracking import mlflow_server

PARAMS = ("lr", "batch_size", "layers", "optimizer", "dropout")
METRICS = ("acc", "loss", "f1")


def _params(i: int) -> dict[str, str]:
    return {
        "lr": str(10 ** -(1 + i % 4)),
        "batch_size": str(32 << (i % 3)),
        "layers": str(2 + i % 6),
        "optimizer": ("adam", "sgd", "adamw")[i % 3],
        "dropout": str((i % 5) / 10),
    }


def _metrics(i: int) -> dict[str, float]:
    return {"acc": (i * 7919 % 1000) / 1000, "loss": 1 / (1 + i % 97), "f1": (i % 89) / 89}


def _median(fn: Callable[[], int], repeat: int, expect: int) -> float:
    assert fn() == expect  # warm-up, and a check that both return the same page size
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - start)
        assert got == expect, got
    return statistics.median(times)


# -- trainyard ------------------------------------------------------------------------------


def _ty_fill(c: httpx.Client, runs: int) -> None:
    c.post("/api/v1/projects", json={"name": "search"}).raise_for_status()
    for i in range(runs):
        r = c.post("/api/v1/projects/search/external-runs", json={"name": "sweep"})
        r.raise_for_status()
        run_id = r.json()["id"]
        c.post(f"/api/v1/runs/{run_id}/params", json={"params": _params(i)}).raise_for_status()
        points = [{"key": k, "value": v, "step": 0} for k, v in _metrics(i).items()]
        c.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points}).raise_for_status()
        c.post(f"/api/v1/runs/{run_id}/finish", json={"status": "complete"}).raise_for_status()


def _ty_search(c: httpx.Client, limit: int) -> int:
    r = c.get(
        "/api/v1/projects/search/runs",
        params={"sort": "metric:acc", "order": "desc", "limit": limit},
    )
    r.raise_for_status()
    items = r.json()["items"]
    assert len(items[0]["params"]) == len(PARAMS) and len(items[0]["metrics"]) == len(METRICS)
    return len(items)


# -- MLflow ---------------------------------------------------------------------------------


def _ml_fill(c: httpx.Client, runs: int) -> str:
    r = c.post("/api/2.0/mlflow/experiments/create", json={"name": "search"})
    r.raise_for_status()
    experiment = str(r.json()["experiment_id"])
    now = int(time.time() * 1000)
    for i in range(runs):
        r = c.post(
            "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment, "start_time": now}
        )
        r.raise_for_status()
        run_id = r.json()["run"]["info"]["run_id"]
        body = {
            "run_id": run_id,
            "params": [{"key": k, "value": v} for k, v in _params(i).items()],
            "metrics": [
                {"key": k, "value": v, "timestamp": now, "step": 0} for k, v in _metrics(i).items()
            ],
        }
        c.post("/api/2.0/mlflow/runs/log-batch", json=body).raise_for_status()
        c.post(
            "/api/2.0/mlflow/runs/update",
            json={"run_id": run_id, "status": "FINISHED", "end_time": now},
        ).raise_for_status()
    return experiment


def _mlflow_search(c: httpx.Client, experiment: str, limit: int) -> int:
    """``runs/search`` by ``metrics.acc`` (MLflow's API, which trainyard also serves)."""
    r = c.post(
        "/api/2.0/mlflow/runs/search",
        json={
            "experiment_ids": [experiment],
            "order_by": ["metrics.acc DESC"],
            "max_results": limit,
        },
    )
    r.raise_for_status()
    return len(r.json()["runs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", required=True, help="python of a venv with mlflow")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    limits = (100, 1000)
    ty: dict[int, float] = {}
    ty_ml: dict[int, float] = {}
    ml: dict[int, float] = {}

    with trainyard_server() as server, httpx.Client(base_url=server.url, timeout=300) as c:
        start = time.perf_counter()
        _ty_fill(c, args.runs)
        print(f"trainyard: {args.runs} runs filled in {time.perf_counter() - start:.1f} s")
        experiment = c.get(
            "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "search"}
        ).json()["experiment"]["experiment_id"]
        for n in limits:
            ty[n] = _median(lambda n=n: _ty_search(c, n), args.repeat, n)
            ty_ml[n] = _median(lambda n=n: _mlflow_search(c, experiment, n), args.repeat, n)

    with mlflow_server(args.peer_python) as url, httpx.Client(base_url=url, timeout=300) as c:
        start = time.perf_counter()
        exp = _ml_fill(c, args.runs)
        print(f"MLflow:    {args.runs} runs filled in {time.perf_counter() - start:.1f} s")
        for n in limits:
            ml[n] = _median(lambda n=n: _mlflow_search(c, exp, n), args.repeat, n)

    title = f"search {args.runs} runs by metrics.acc"
    print(f"\n{title:44} {'trainyard':>10} {'MLflow':>10} {'ratio':>8}")
    for n in limits:
        for label, ours in (
            (f"top {n}, native API (ms)", ty[n]),
            (f"top {n}, MLflow-compatible API (ms)", ty_ml[n]),
        ):
            print(f"  {label:42} {ours * 1000:10.1f} {ml[n] * 1000:10.1f} {ml[n] / ours:7.1f}×")
    print(f"(medians of {args.repeat}; target ≥ 10×)")


if __name__ == "__main__":
    main()
