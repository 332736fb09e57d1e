"""The experiments dashboard with 10,000 runs in a project: every page answers in < 300 ms.

Seeds a fresh SQLite home with 10,000 finished runs of 5 tasks (2 replicas each, git info,
mixed statuses) straight through the store, starts a real `trainyard server` on it, and times
the dashboard's HTML pages (default, sorted, filtered, searched, a deep page), the run view and
the JSON list over one keep-alive connection: p50 and p90 of --reps requests after a warm-up.

    .venv/bin/python bench/dashboard.py [--runs 10000] [--reps 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import time_pages, trainyard_server
from sqlalchemy import insert

from trainyard.manifest import load_manifest
from trainyard.server.services.projects import ensure_default_project
from trainyard.server.store import Database
from trainyard.server.store import projects as project_store
from trainyard.server.store import tasks as task_store
from trainyard.server.store.migrations import upgrade
from trainyard.server.store.tables import ReplicaRow, RunRow

STATUSES = ["complete", "complete", "complete", "error", "stopped"]
MANIFEST = """\
name: {name}
resources:
- name: worker
  replicas: 2
  command: python train.py --lr 0.1
  resources:
    requests: {{cpu: 500m, memory: 1Gi}}
"""


def seed(home: Path, runs: int) -> None:
    db = Database(f"sqlite:///{home / 'trainyard.db'}")
    upgrade(db)
    ensure_default_project(db)
    now = datetime.now(UTC)
    with db.write() as session:
        project = project_store.get_project(session, "default")
        assert project is not None
        tasks = []
        for i in range(5):
            text = MANIFEST.format(name=f"train-{i}")
            tasks.append(
                (task_store.insert_task(session, project, load_manifest(text), text), text)
            )
        session.flush()
        spec = load_manifest(MANIFEST.format(name="train-0")).model_dump(mode="json")
        rows = []
        for n in range(runs):
            task, text = tasks[n % 5]
            at = now - timedelta(seconds=runs - n)
            rows.append(
                {
                    "project_id": project.id, "task_id": task.id, "build_id": n // 5 + 1,
                    "status": STATUSES[n % len(STATUSES)], "reason": "", "parameters": {"lr": 0.1},
                    "manifest": text, "spec": spec, "executor": "local",
                    "git": {"branch": "main", "commit": f"{n:040x}", "dirty": False},
                    "created_at": at, "updated_at": at, "started_at": at, "finished_at": at,
                    "archived": False, "observe_cursor": 0,
                }
            )  # fmt: skip
        session.execute(insert(RunRow), rows)
        replicas = [
            {"run_id": run_id, "name": f"worker-{i}", "resource": "worker", "index": i,
             "address": f"127.1.1.{i + 1}", "status": "succeeded", "exit_code": 0, "restarts": 0,
             "reason": "", "gpus": []}
            for run_id in range(1, runs + 1) for i in range(2)
        ]  # fmt: skip
        session.execute(insert(ReplicaRow), replicas)
    db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        seed(home, args.runs)
        print(f"seeded {args.runs} runs in {time.perf_counter() - t0:.1f} s")
        pages = {
            "dashboard, newest first": ["/projects/default/runs"],
            "sorted by task": ["/projects/default/runs?sort=task&order=asc"],
            "status filter (error)": ["/projects/default/runs?status=error"],
            "search 'train-3'": ["/projects/default/runs?q=train-3"],
            "page 300": ["/projects/default/runs?page=300"],
            "run view": [f"/runs/{args.runs // 2}"],
            "JSON list, 50 runs": ["/api/v1/runs?project=default&limit=50"],
        }
        with trainyard_server(home) as server:
            worst = time_pages(server.url, pages, args.reps, width=28)
        print(f"\nslowest p90 {worst * 1000:.1f} ms (target: every page < 300 ms)")


if __name__ == "__main__":
    main()
