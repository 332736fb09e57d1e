"""10⁷ metric points in one project: the dashboard and the run view still answer in < 300 ms.

Seeds a fresh SQLite home straight through the store: --runs finished runs (default 200),
each with 5 params and 5 metric keys of --steps points (default 10,000: 200 × 5 × 10,000 =
10⁷ points), packed as the server packs them. Then starts a real `trainyard server` on it and
times, over one keep-alive connection (p50/p90 of --reps requests after a warm-up):

- the dashboard (newest first; with metric columns sorted by a metric), the leaderboard and
  a compare page of 5 runs;
- the run view (HTML) and what its Metrics tab loads: the metric list, the params and one
  chart per key, each a 10,000-point series downsampled to the chart's width;
- the JSON run search ordered by a metric (the SDK's and the CLI's view).

    .venv/bin/python bench/metrics_scale.py [--runs 200] [--steps 10000] [--reps 20]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import time_pages, trainyard_server
from sqlalchemy import insert, update

from trainyard.manifest import load_manifest
from trainyard.server.services.projects import ensure_default_project
from trainyard.server.store import Database
from trainyard.server.store import metrics as metric_store
from trainyard.server.store import projects as project_store
from trainyard.server.store import tasks as task_store
from trainyard.server.store.migrations import upgrade
from trainyard.server.store.tables import ProjectRow, RunParamRow, RunRow

KEYS = ("loss", "acc", "val/loss", "val/acc", "lr")
USERS = ("ada", "grace", "alan", "edsger", "barbara")
MANIFEST = """\
name: train
resources:
- name: worker
  replicas: 1
  command: python train.py
"""


def _series(
    key: str, run: int, steps: int, t0: float
) -> tuple[list[float], list[int], list[float]]:
    rate = 1.0 + (run % 17) / 10
    values: list[float] = []
    for s in range(steps):
        x = s / steps
        if key.endswith("loss"):
            v = 2.5 * math.exp(-4 * rate * x) + 0.05 * math.sin(s / 7)
        elif key.endswith("acc"):
            v = 1 - 0.9 * math.exp(-3 * rate * x)
        else:
            v = 0.1 * (1 - x)
        values.append(v)
    return values, list(range(steps)), [t0 + s * 0.5 for s in range(steps)]


def seed(home: Path, runs: int, steps: int) -> int:
    """The database; returns the number of points written."""
    db = Database(f"sqlite:///{home / 'trainyard.db'}")
    upgrade(db)
    ensure_default_project(db)
    now = datetime.now(UTC)
    with db.write() as session:
        project = project_store.get_project(session, "default")
        assert project is not None
        task = task_store.insert_task(session, project, load_manifest(MANIFEST), MANIFEST)
        session.flush()
        spec = load_manifest(MANIFEST).model_dump(mode="json")
        rows = []
        for n in range(runs):
            at = now - timedelta(seconds=runs - n)
            rows.append(
                {
                    "project_id": project.id, "task_id": task.id, "build_id": n + 1,
                    "status": "complete", "reason": "", "parameters": {}, "manifest": MANIFEST,
                    "spec": spec, "executor": "local", "created_at": at, "updated_at": at,
                    "started_at": at, "finished_at": at, "archived": False, "observe_cursor": 0,
                    "submitted_by": USERS[n % len(USERS)],
                }
            )  # fmt: skip
        session.execute(insert(RunRow), rows)
        session.execute(
            update(ProjectRow)
            .where(ProjectRow.id == project.id)
            .values(leaderboard_metric="val/acc", leaderboard_goal="max")
        )
        params = [
            {"run_id": r, "key": k, "value": v}
            for r in range(1, runs + 1)
            for k, v in (
                ("lr", str(10 ** -(1 + r % 4))),
                ("batch_size", str(32 << (r % 3))),
                ("layers", str(2 + r % 6)),
                ("optimizer", ("adam", "sgd", "adamw")[r % 3]),
                ("dropout", str((r % 5) / 10)),
            )
        ]
        session.execute(insert(RunParamRow), params)
    total = 0
    t0 = time.time() - steps
    for run_id in range(1, runs + 1):
        with db.write() as session:
            by_key: dict[str, metric_store.Columns] = {}
            for key in KEYS:
                values, step_list, times = _series(key, run_id, steps, t0)
                by_key[key] = (values, step_list, times)
                total += steps
            metric_store.append_batch(session, run_id, by_key)
    db.dispose()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        points = seed(home, args.runs, args.steps)
        size = (home / "trainyard.db").stat().st_size
        print(
            f"seeded {args.runs} runs, {points:,} points in {time.perf_counter() - t0:.1f} s "
            f"(database {size / 2**20:.0f} MiB, {size / points:.1f} bytes a point)"
        )
        mid = args.runs // 2
        compare = "&".join(f"runs={mid + i}" for i in range(5))
        pages: dict[str, list[str]] = {
            "dashboard, newest first": ["/projects/default/runs"],
            "dashboard, sorted by val/acc": [
                "/projects/default/runs?sort=metric:val/acc&order=desc"
                "&cols=metric:val/acc&cols=metric:loss&cols=param:lr"
            ],
            "leaderboard": ["/projects/default/leaderboard"],
            "compare page, 5 runs": [f"/projects/default/compare?{compare}"],
            "run view (HTML)": [f"/runs/{mid}"],
            "Metrics tab: list + params + 5 charts": [
                f"/api/v1/runs/{mid}/metrics",
                f"/api/v1/runs/{mid}/params",
                *(f"/api/v1/runs/{mid}/metrics/{k}?max_points=1600" for k in KEYS),
            ],
            "JSON search, by val/acc, 100 runs": [
                "/api/v1/projects/default/runs?sort=metric:val/acc&order=desc&limit=100"
            ],
        }
        with trainyard_server(home) as server:
            worst = time_pages(server.url, pages, args.reps)
        print(f"\nslowest p90 {worst * 1000:.1f} ms (target: every view < 300 ms)")


if __name__ == "__main__":
    main()
