"""The server's scheduling pass on a real database: a 10,000-run queue on 64 simulated GPUs.

``bench/scheduler.py`` times the pure planner; this times what a server really does per pass
(``trainyard.server.services.scheduling.schedule_pass``): lock the scheduler row, read the
queue and the cluster, plan, write the admissions (placements, GPU allocations, status
changes) and the changed queue reasons — on SQLite (the default) or PostgreSQL (--db URL).

The cluster is 8 nodes × 8 simulated GPUs (the same as bench/scheduler.py). The queue is
--runs runs in the default project (seeded: 60% 1 GPU, 20% 2, 10% 4, 7% 8, 3% CPU-only),
inserted with one SQL statement per shape after one real submission of each (submitting
10,000 runs through the API is not what is measured here).

Printed: the first pass (admits what fits and records a reason and an event for every waiting
run), a pass after 8 runs end (the common case: a few admissions, few reasons change), a pass
with nothing changed, and the poll check (``pass_needed``) a server makes every second instead
of a pass when nothing changed. Decisions/s = queued runs considered / pass time.

    .venv/bin/python bench/scheduler_db.py [--runs 10000] [--db URL] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import insert, select

from trainyard.core.settings import Settings
from trainyard.core.status import RunStatus
from trainyard.executors.local import LocalExecutor
from trainyard.server.services import runs as runs_service
from trainyard.server.services import scheduling
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import ensure_default_project
from trainyard.server.store import Database
from trainyard.server.store.migrations import upgrade
from trainyard.server.store.tables import EventRow, RunRow

T = TypeVar("T")
NODES = [f"node-{i}" for i in range(8)]
SHAPES = [(1, 60), (2, 20), (4, 10), (8, 7), (0, 3)]  # (GPUs, % of runs)


def _manifest(gpus: int) -> str:
    request = f"        gpu: {gpus}\n" if gpus else ""
    return (
        f"name: shape-{gpus}\nresources:\n  - name: worker\n    command: sleep 1\n"
        f"    resources:\n      requests:\n        cpu: 1\n        memory: 1Gi\n{request}"
    )


def _populate(ctx: ServiceContext, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    counts = {g: 0 for g, _ in SHAPES}
    for _ in range(runs):
        roll, acc = rng.uniform(0, 100), 0.0
        for gpus, share in SHAPES:
            acc += share
            if roll <= acc:
                counts[gpus] += 1
                break
    templates = {
        g: runs_service.submit_run(ctx, "default", manifest=_manifest(g)).id for g in counts
    }
    columns = [c.name for c in RunRow.__table__.columns if c.name not in ("id", "build_id")]
    with ctx.db.write() as session:
        for gpus, n in counts.items():
            template = session.get(RunRow, templates[gpus])
            assert template is not None
            row = {name: getattr(template, name) for name in columns}
            rows = [{**row, "build_id": 2 + i} for i in range(n - 1)]
            if rows:
                session.execute(insert(RunRow), rows)
        ids = list(session.scalars(select(RunRow.id).where(RunRow.id.not_in(templates.values()))))
        session.execute(
            insert(EventRow),
            [
                {
                    "run_id": i,
                    "kind": "status",
                    "status": "queued",
                    "reason": "submitted",
                    "message": "",
                }
                for i in ids
            ],
        )


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    url = args.db or f"sqlite:///{home / 'trainyard.db'}"
    db = Database(url)
    upgrade(db)
    ensure_default_project(db)
    for name in NODES:
        scheduling.register_node(db, name, cpu_millis=64_000, memory_bytes=512 << 30, gpus=[])
    ctx = ServiceContext(
        settings=Settings(home=home),
        db=db,
        executor=LocalExecutor(home / "runs"),
        server_url="http://127.0.0.1:9",
        node_name=NODES[0],
    )
    for name in NODES:
        scheduling.simulate_gpus(ctx, name, 8, "A100-SXM4-80GB")
    t_fill, _ = _timed(lambda: _populate(ctx, args.runs, args.seed))

    def one_pass() -> list[int]:
        admitted = scheduling.schedule_pass(ctx, "bench", NODES)
        for run_id in admitted:
            ctx.launching.discard(run_id)
        return admitted

    first, admitted = _timed(one_pass)
    rows = []
    rows.append(("first pass (reasons + events for all)", first, len(admitted), args.runs))

    after_end: list[float] = []
    admitted_after: list[int] = []
    idle: list[float] = []
    poll: list[float] = []
    for _ in range(args.repeat):
        running = [i for i in admitted if runs_service.get_run(ctx, i).status.value == "starting"]
        for run_id in running[:8]:
            with db.write() as session:
                row = runs_service.load_run(session, run_id, lock=True)
                runs_service.transition(session, row, RunStatus.COMPLETE, "bench")
        with db.read() as session:
            queued = session.query(RunRow).filter(RunRow.status == "queued").count()
        dt, newly = _timed(one_pass)
        after_end.append(dt)
        admitted_after.append(len(newly))
        admitted = [i for i in admitted if i not in running[:8]] + newly
        idle.append(_timed(one_pass)[0])
        _, seen = scheduling.pass_needed(ctx, None)
        start = time.perf_counter()
        scheduling.pass_needed(ctx, seen)
        poll.append(time.perf_counter() - start)
    rows.append(
        (
            "pass after 8 runs end",
            statistics.median(after_end),
            int(statistics.median(admitted_after)),
            queued,
        )
    )
    rows.append(("pass with nothing changed", statistics.median(idle), 0, queued))

    backend = "PostgreSQL" if db.is_postgresql else "SQLite"
    print(
        f"{backend}, {args.runs:,} queued runs, 8 nodes × 8 simulated GPUs "
        f"(filled in {t_fill:.1f} s); medians of {args.repeat}"
    )
    print(f"{'':40} {'time':>9} {'admitted':>9} {'queued':>7} {'decisions/s':>12}")
    for name, dt, n_admitted, n_queued in rows:
        print(f"{name:40} {dt * 1000:7.0f} ms {n_admitted:9} {n_queued:7} {n_queued / dt:12,.0f}")
    print(
        f"{'poll check (pass_needed), nothing changed':40} {statistics.median(poll) * 1000:7.1f} ms"
    )
    print("target: ≥ 2,000 decisions/s")
    ctx.executor.close()
    db.dispose()


if __name__ == "__main__":
    main()
