"""Scheduling through real servers: concurrent submissions racing for a GPU, two servers on
one PostgreSQL database sharing a queue, and a server restart with a queue.

GPUs are simulated (``PUT /nodes/{node}/simulated-gpus``): no GPU exists on the machines
this suite runs on. Everything else is real: server processes, HTTP, the database, the
supervisors and the replicas.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from server_support import manifest, wait_for
from sqlalchemy import create_engine, text

NODE = "sched-node"
ENV = {"TRAINYARD_NODE__NAME": NODE, "TRAINYARD_NODE__DISCOVER_GPUS": "false"}


def _gpu_manifest(name: str, command: str, gpus: int = 1, extra: str = "") -> str:
    return (
        manifest(name, command, extra=f"    resources:\n      requests:\n        gpu: {gpus}\n")
        + extra
    )


def _api(server: Any) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", timeout=30.0)


def _simulate(api: httpx.Client, count: int) -> None:
    r = api.put(f"/nodes/{NODE}/simulated-gpus", json={"count": count, "type": "Tesla-V100"})
    assert r.status_code == 200, r.text


def _submit(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/projects/default/runs", json=body)
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def test_fifty_submissions_race_for_the_last_gpu(server_factory: Any) -> None:
    server = server_factory.start(extra_env=ENV)
    try:
        with _api(server) as api:
            _simulate(api, 2)
            holder = _submit(api, {"manifest": _gpu_manifest("hold", "sleep 120")})
            wait_for(
                "the holder to run",
                lambda: api.get(f"/runs/{holder['id']}").json()["status"] == "running",
                timeout=30,
            )
            body = {"manifest": _gpu_manifest("race", "sleep 120")}

            def submit(_: int) -> int:
                with _api(server) as own:
                    return int(_submit(own, body)["id"])

            with ThreadPoolExecutor(50) as pool:
                ids = list(pool.map(submit, range(50)))
            assert len(set(ids)) == 50

            def settled() -> dict[str, int] | None:
                runs = [api.get(f"/runs/{i}").json() for i in ids]
                counts: dict[str, int] = {}
                for run in runs:
                    counts[run["status"]] = counts.get(run["status"], 0) + 1
                placed = counts.get("running", 0) + counts.get("starting", 0)
                return counts if placed == 1 and counts.get("queued") == 49 else None

            counts = wait_for("one run placed, 49 queued", settled, timeout=60)
            time.sleep(1.0)  # a few more passes: still exactly one
            assert settled() == counts
            winner = next(
                r for i in ids if (r := api.get(f"/runs/{i}").json())["status"] != "queued"
            )
            queued = api.get("/queue").json()["items"]
            assert [q["run_id"] for q in queued] == sorted(set(ids) - {winner["id"]})
            assert queued[0]["reason"].startswith("waiting for 1 × Tesla-V100 in pool 'default'")
            node = api.get(f"/nodes/{NODE}").json()
            holders = sorted(u["run_id"] for g in node["gpus"] for u in g["used_by"])
            assert holders == sorted([holder["id"], winner["id"]])
            for run_id in [holder["id"], *ids]:
                api.post(f"/runs/{run_id}/stop")
    finally:
        server.close()


def test_two_servers_on_postgresql_share_the_queue(server_factory: Any) -> None:
    """200 queued runs, 4 GPUs, two servers on one database (and one TRAINYARD_HOME, as two
    servers on one machine): every run is launched exactly once, and never more than 4 GPUs
    are held at any moment."""
    first = server_factory.start("postgresql", extra_env=ENV)
    second = None
    try:
        with _api(first) as api:
            _simulate(api, 4)
            # Queue everything while the first server is held off by a run on every GPU.
            blocker = _submit(api, {"manifest": _gpu_manifest("block", "sleep 120", gpus=4)})
            wait_for(
                "the blocker to start",
                lambda: api.get(f"/runs/{blocker['id']}").json()["status"] == "running",
                timeout=30,
            )
            body = {"manifest": _gpu_manifest("many", "true")}
            ids = [_submit(api, body)["id"] for _ in range(200)]
            second = server_factory.start(first.db_url, home=first.home, extra_env=ENV)
            engine = create_engine(first.db_url)
            peak = [0]
            done = threading.Event()

            def sample() -> None:
                with engine.connect() as conn:
                    while not done.is_set():
                        held = conn.execute(
                            text("SELECT count(*) FROM gpu_allocations WHERE NOT shared")
                        ).scalar_one()
                        peak[0] = max(peak[0], int(held))
                        conn.commit()
                        time.sleep(0.01)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            api.post(f"/runs/{blocker['id']}/stop")

            def all_done() -> bool:
                page = api.get("/runs", params={"limit": 300, "status": "complete"}).json()
                return int(page["total"]) == 200

            wait_for("200 runs to complete", all_done, timeout=240)
            done.set()
            sampler.join(5)
            assert 1 <= peak[0] <= 4
            with engine.connect() as conn:
                starts = dict(
                    conn.execute(
                        text(
                            "SELECT run_id, count(*) FROM events WHERE kind = 'status' "
                            "AND status = 'starting' GROUP BY run_id"
                        )
                    ).all()
                )
                claimers = {
                    r[0]
                    for r in conn.execute(
                        text("SELECT DISTINCT claimed_by FROM runs WHERE id = ANY(:ids)"),
                        {"ids": ids},
                    )
                }
            engine.dispose()
            assert all(starts.get(i) == 1 for i in ids), "a run was placed twice"
            assert len(claimers) == 2, "both servers should have launched runs"
            # Each run was launched into its own directory, and none was moved aside as
            # another launch's leftover (which a second launch of the same run would cause).
            assert all((first.home / "runs" / str(i) / "launch.json").is_file() for i in ids)
            assert not (first.home / "runs" / "stale").exists()
            for run_id in ids:
                events = api.get(f"/runs/{run_id}/events").json()["items"]
                statuses = [e["status"] for e in events if e["kind"] == "status"]
                assert statuses.count("starting") == 1 and statuses[-1] == "complete", statuses
    finally:
        if second is not None:
            second.close()
        first.close()


def test_restart_keeps_the_queue_and_reservations(server_factory: Any) -> None:
    server = server_factory.start(extra_env=ENV)
    try:
        with _api(server) as api:
            _simulate(api, 2)
            holder = _submit(api, {"manifest": _gpu_manifest("hold", "sleep 120", gpus=2)})
            wait_for(
                "the holder to run",
                lambda: api.get(f"/runs/{holder['id']}").json()["status"] == "running",
                timeout=30,
            )
            for i, priority in enumerate([0, 5, 0, 10, 5]):
                _submit(
                    api,
                    {"manifest": _gpu_manifest(f"q{i}", "sleep 1"), "priority": priority},
                )

            def snapshot() -> tuple[Any, ...]:
                queue = [
                    {k: v for k, v in q.items() if k != "waiting_seconds"}
                    for q in api.get("/queue").json()["items"]
                ]
                placements = api.get(f"/runs/{holder['id']}").json()["placements"]
                gpus = [
                    (g["uuid"], g["pool"], [u["run_id"] for u in g["used_by"]])
                    for g in api.get(f"/nodes/{NODE}").json()["gpus"]
                ]
                return queue, placements, gpus

            wait_for(
                "reasons to be recorded",
                lambda: all(" × " in q["reason"] for q in api.get("/queue").json()["items"]),
                timeout=10,
            )
            before = snapshot()
            assert [q["priority"] for q in before[0]] == [10, 5, 5, 0, 0]
        server.kill()
        server.start()
        with _api(server) as api:
            after = snapshot()
            assert after[0] == before[0], "the queue changed across the restart"
            assert after[1] == before[1], "the holder's placement changed across the restart"
            assert after[2] == before[2], "GPU holdings changed across the restart"
            assert api.get(f"/runs/{holder['id']}").json()["status"] == "running"
            # And the queue moves on once the holder ends, highest priority first.
            api.post(f"/runs/{holder['id']}/stop")
            first_up = before[0][0]["run_id"]
            wait_for(
                "the top of the queue to start",
                lambda: api.get(f"/runs/{first_up}").json()["status"] != "queued",
                timeout=30,
            )
    finally:
        server.close()
