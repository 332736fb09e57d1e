"""Tracking SDK overhead: the cost of one ``trainyard.log_metric`` call in a training loop.

Against a real server (fresh home, SQLite) and a run that is running, the SDK logs
--calls points per round in a tight loop, --rounds times, while its sender thread ships
them in the background. Printed: ns per call (p50 and max over the rounds) beside the same
loop calling an empty function (the loop's own cost), then how long ``finish()`` took to
deliver the rest and whether the server holds every point. Target: ≤ 20 µs per call.

    .venv/bin/python bench/sdk_overhead.py [--calls 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import httpx
from common import trainyard_server

import trainyard as ty
from trainyard.client import TrainyardClient

SLEEPER = f'{sys.executable} -c "import time; time.sleep(3600)"'
TARGET_NS = 20_000


def noop(key: str, value: float, step: int | None = None) -> None:
    pass


def loop_ns(log: Callable[[str, float, int | None], None], calls: int, offset: int) -> float:
    """ns per call of ``log`` over ``calls`` calls (a float value, an explicit step)."""
    t0 = time.perf_counter_ns()
    for i in range(offset, offset + calls):
        log("train/loss", i * 0.5, i)
    return (time.perf_counter_ns() - t0) / calls


def start_run(client: httpx.Client) -> int:
    manifest = f"name: sdk-bench\nresources:\n- name: worker\n  command: '{SLEEPER}'\n"
    r = client.post("/api/v1/projects/default/runs", json={"manifest": manifest, "parameters": {}})
    r.raise_for_status()
    run_id = int(r.json()["id"])
    deadline = time.monotonic() + 60
    while (status := client.get(f"/api/v1/runs/{run_id}").json()["status"]) != "running":
        if status in ("complete", "error", "stopped") or time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} is {status}, not running")
        time.sleep(0.01)
    return run_id


def show(label: str, values: list[float]) -> None:
    print(
        f"{label:34s} p50 {statistics.median(values):8.1f} ns/call   "
        f"max {max(values):8.1f} ns/call   (rounds={len(values)})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    with trainyard_server() as server, httpx.Client(base_url=server.url, timeout=30) as http:
        run_id = start_run(http)
        base = [loop_ns(noop, args.calls, 0) for _ in range(args.rounds)]
        show("baseline: empty function", base)

        started = time.perf_counter()
        ty.init(run_id=run_id, server_url=server.url)
        ours = [loop_ns(ty.log_metric, args.calls, r * args.calls) for r in range(args.rounds)]
        show("trainyard.log_metric", ours)
        extra = statistics.median(ours) - statistics.median(base)
        verdict = "ok" if statistics.median(ours) <= TARGET_NS else "OVER TARGET"
        print(f"{'log_metric beyond the empty loop':34s} p50 {extra:8.1f} ns/call")
        print(f"target ≤ 20 µs per call: {verdict}")

        total = args.calls * args.rounds
        t0 = time.perf_counter()
        ty.finish(timeout=600)
        took = time.perf_counter() - t0
        with TrainyardClient(server.url) as client:
            stored = {s.key: s.count for s in client.metrics.list(run_id)}.get("train/loss", 0)
        rate = total / (time.perf_counter() - started)
        print(
            f"\nfinish(): {took:.1f} s to deliver what was still buffered; the server holds "
            f"{stored:,} of {total:,} points{'' if stored == total else '  (MISSING POINTS)'}"
            f"\nend to end: {rate:,.0f} points/s from init() to the end of finish()"
        )


if __name__ == "__main__":
    main()
