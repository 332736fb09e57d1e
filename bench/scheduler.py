"""Scheduler throughput: the pure gang planner deciding a 10,000-run queue on 64 GPUs.

No server, no database: a discrete-event simulation drives
``trainyard.server.scheduler.placement.plan`` directly. The cluster is --nodes nodes of
--gpus-per-node GPUs, 64 CPUs and 512 GiB each, every GPU in the default pool of group
"default". The queue is --runs runs submitted at t=0 (seeded): 60% 1 GPU, 20% 2, 10% 4, 7% 8
GPUs (as 1 × 8 or 2 × 4 replicas, half each), 3% CPU-only; 6 CPUs and 48 GiB per GPU (4 CPUs
and 16 GiB for a CPU-only run); durations 1-100 time units.

At t=0, plan() gets the whole queue; admitted runs hold their GPUs, CPU and memory until
t + duration. At each completion time the finished runs release what they held, the cluster
is rebuilt from the current holdings (as the server does every pass) and plan() gets the
whole remaining queue again; heads' ``overtaken`` counts carry over from pass to pass.

Per --backfill-limit (0: strict order for competing runs; 8: the server's default) it prints:
plan() calls, decisions (one run considered by one plan() call, admitted or blocked),
decisions per second (time inside plan() only, and with the Cluster construction), p50/p99
of one plan() call while the queue still holds ≥ 90% of the runs, the makespan, the GPU
utilisation achieved (GPU-time of all runs / (GPUs × makespan)) against the ideal (the same
over the lower bound max(GPU-time / GPUs, longest run)), and achieved / ideal.

Every pass plans the whole remaining queue, so a full simulation costs about (completion
times) × (average queue length) decisions: tens of millions for 10,000 runs. --max-events
stops each simulation after that many plan() calls (500 by default, which keeps the whole
script near 2 minutes on 2 cores; utilisation is then over the simulated span, and there is
no makespan); --max-events 0 runs it to the end (about 4 minutes on 2 cores).

    .venv/bin/python bench/scheduler.py [--runs 10000] [--nodes 8] [--gpus-per-node 8]
        [--seed 1] [--backfill-limit 0 8] [--max-events 500]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time
from dataclasses import dataclass, field, replace

from common import pct

from trainyard.core.models import Placement
from trainyard.core.scheduling import ReplicaDemand
from trainyard.server.scheduler.placement import (
    Candidate,
    Cluster,
    GpuState,
    NodeState,
    PoolState,
    infeasible_reason,
    plan,
)

GiB = 2**30
NODE_CPU = 64_000  # millicores
NODE_MEMORY = 512 * GiB
CPU_PER_GPU = 6_000
MEMORY_PER_GPU = 48 * GiB
PRODUCT = "A100-SXM4-80GB"
TARGET_DECISIONS_PER_S = 2_000


@dataclass(frozen=True)
class Job:
    candidate: Candidate
    duration: int

    @property
    def gpu_time(self) -> int:
        return self.candidate.gpus * self.duration


def make_jobs(runs: int, gpus_per_node: int, seed: int) -> list[Job]:
    """The queue, in submission order (all of priority 0, so scheduling order too)."""
    rng = random.Random(seed)
    jobs = []
    for run_id in range(1, runs + 1):
        r = rng.random()
        if r < 0.60:
            shape = (1, 1)  # (replicas, GPUs per replica)
        elif r < 0.80:
            shape = (1, 2)
        elif r < 0.90:
            shape = (1, 4)
        elif r < 0.97:
            shape = (1, 8) if rng.random() < 0.5 else (2, 4)
        else:
            shape = (1, 0)
        replicas, gpus = shape
        while gpus > gpus_per_node:  # keep every run placeable on smaller nodes
            replicas, gpus = replicas * 2, gpus // 2
        cpu, memory = (gpus * CPU_PER_GPU, gpus * MEMORY_PER_GPU) if gpus else (4_000, 16 * GiB)
        demands = tuple(
            ReplicaDemand(f"worker-{i}", cpu, memory, gpus, None) for i in range(replicas)
        )
        candidate = Candidate(run_id, "default", demands, ref=f"default/bench#{run_id}")
        jobs.append(Job(candidate, rng.randint(1, 100)))
    return jobs


@dataclass
class Holdings:
    """What running replicas hold; the cluster is rebuilt from it before every pass."""

    nodes: int
    gpus_per_node: int
    held: set[str] = field(default_factory=set)
    cpu_used: dict[str, int] = field(default_factory=dict)
    memory_used: dict[str, int] = field(default_factory=dict)

    def cluster(self) -> Cluster:
        names = [f"node-{n}" for n in range(self.nodes)]
        nodes = [
            NodeState(
                name,
                NODE_CPU - self.cpu_used.get(name, 0),
                NODE_MEMORY - self.memory_used.get(name, 0),
                NODE_CPU,
                NODE_MEMORY,
            )
            for name in names
        ]
        gpus = [
            GpuState(uuid, name, PRODUCT, "default", i, held=uuid in self.held)
            for name in names
            for i in range(self.gpus_per_node)
            for uuid in (f"GPU-{name}-{i}",)
        ]
        return Cluster(nodes, [PoolState("default", "default")], gpus)

    def take(self, placements: list[Placement], sign: int = 1) -> None:
        for p in placements:
            self.cpu_used[p.node] = self.cpu_used.get(p.node, 0) + sign * p.cpu_millis
            self.memory_used[p.node] = self.memory_used.get(p.node, 0) + sign * p.memory_bytes
            if sign > 0:
                self.held.update(p.gpus)
            else:
                self.held.difference_update(p.gpus)


@dataclass
class Result:
    backfill_limit: int
    calls: int = 0
    decisions: int = 0
    plan_s: float = 0.0
    build_s: float = 0.0
    full_queue_calls: list[float] = field(default_factory=list)  # seconds, queue ≥ 90%
    end: int = 0  # makespan, or where the simulation stopped
    finished: bool = False
    gpu_time_done: int = 0  # GPU-time inside [0, end]
    queued_left: int = 0
    wall_s: float = 0.0


def simulate(
    jobs: list[Job], nodes: int, gpus_per_node: int, backfill_limit: int, max_events: int
) -> Result:
    res = Result(backfill_limit)
    by_id = {j.candidate.run_id: j for j in jobs}
    queue = [j.candidate for j in jobs]
    holdings = Holdings(nodes, gpus_per_node)
    running: dict[int, list[Placement]] = {}
    ends: list[tuple[int, int]] = []  # (end time, run id)
    started: dict[int, int] = {}
    full = 0.9 * len(jobs)
    t = 0
    t_start = time.perf_counter()
    while queue:
        t0 = time.perf_counter()
        cluster = holdings.cluster()
        t1 = time.perf_counter()
        decided = plan(cluster, queue, backfill_limit=backfill_limit)
        t2 = time.perf_counter()
        res.calls += 1
        res.decisions += len(queue)
        res.build_s += t1 - t0
        res.plan_s += t2 - t1
        if len(queue) >= full:
            res.full_queue_calls.append(t2 - t1)
        admitted = set()
        for run_id, placements in decided.admitted:
            admitted.add(run_id)
            holdings.take(placements)
            running[run_id] = placements
            started[run_id] = t
            heapq.heappush(ends, (t + by_id[run_id].duration, run_id))
        # A head's overtaken count carries over to the next pass, as the server stores it.
        overtaken = decided.overtaken
        queue = [
            c if c.run_id not in overtaken else replace(c, overtaken=overtaken[c.run_id])
            for c in queue
            if c.run_id not in admitted
        ]
        if not queue:
            break
        if not ends:
            raise SystemExit(f"stuck at t={t}: nothing runs and nothing queued fits")
        if max_events and res.calls >= max_events:
            break
        t = ends[0][0]
        while ends and ends[0][0] == t:
            _, run_id = heapq.heappop(ends)
            holdings.take(running.pop(run_id), sign=-1)
    res.wall_s = time.perf_counter() - t_start
    res.finished = not queue
    res.queued_left = len(queue)
    res.end = max((end for end, _ in ends), default=t) if res.finished else t
    res.gpu_time_done = sum(
        by_id[run_id].candidate.gpus * min(by_id[run_id].duration, res.end - begin)
        for run_id, begin in started.items()
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backfill-limit", type=int, nargs="+", default=[0, 8])
    ap.add_argument(
        "--max-events",
        type=int,
        default=500,
        help="stop each simulation after this many plan() calls (0: run to the end)",
    )
    args = ap.parse_args()

    jobs = make_jobs(args.runs, args.gpus_per_node, args.seed)
    total_gpus = args.nodes * args.gpus_per_node
    empty = Holdings(args.nodes, args.gpus_per_node).cluster()
    for j in jobs:
        reason = infeasible_reason(empty, j.candidate)
        if reason:
            raise SystemExit(f"run {j.candidate.run_id} can never be placed: {reason}")
    gpu_time = sum(j.gpu_time for j in jobs)
    bound = max(gpu_time / total_gpus, max(j.duration for j in jobs))
    ideal = gpu_time / (total_gpus * bound)
    print(
        f"{args.nodes} nodes × {args.gpus_per_node} GPUs ({total_gpus}), {args.runs:,} runs "
        f"(seed {args.seed}): {sum(j.candidate.gpus for j in jobs):,} GPUs asked, GPU-time "
        f"{gpu_time:,}, makespan lower bound {bound:,.0f}, ideal utilisation {ideal:.1%}"
    )
    header = (
        f"{'backfill':>8} {'plan()':>7} {'decisions':>11} {'dec/s plan':>11} {'dec/s +build':>12}"
        f" {'p50 plan':>9} {'p99 plan':>9} {'makespan':>9} {'util':>6} {'ideal':>6}"
        f" {'achieved/ideal':>14} {'wall':>7}"
    )
    print(header)
    results = []
    for limit in args.backfill_limit:
        r = simulate(jobs, args.nodes, args.gpus_per_node, limit, args.max_events)
        results.append(r)
        if r.finished:
            util = gpu_time / (total_gpus * r.end)
            makespan, versus = f"{r.end:,}", f"{util / ideal:.1%}"
            ideal_text = f"{ideal:.1%}"
        else:  # utilisation over the simulated span; the queue never ran dry, ideal 100%
            util = r.gpu_time_done / (total_gpus * r.end) if r.end else 0.0
            makespan, versus, ideal_text = f"(t={r.end:,})", f"{util:.1%}", "100%"
        p50 = statistics.median(r.full_queue_calls) if r.full_queue_calls else float("nan")
        p99 = pct(r.full_queue_calls, 0.99) if r.full_queue_calls else float("nan")
        print(
            f"{limit:>8} {r.calls:>7,} {r.decisions:>11,} {r.decisions / r.plan_s:>11,.0f}"
            f" {r.decisions / (r.plan_s + r.build_s):>12,.0f} {p50 * 1000:>6.1f} ms"
            f" {p99 * 1000:>6.1f} ms {makespan:>9} {util:>6.1%} {ideal_text:>6} {versus:>14}"
            f" {r.wall_s:>6.1f}s"
        )
    worst = min(r.decisions / r.plan_s for r in results)
    print(
        f"\nslowest: {worst:,.0f} decisions/s inside plan() "
        f"(target ≥ {TARGET_DECISIONS_PER_S:,} decisions/s)"
    )
    print(
        f"p50/p99 over the plan() calls made while ≥ 90% of the {args.runs:,} runs were queued "
        f"({', '.join(str(len(r.full_queue_calls)) for r in results)} calls)"
    )
    for r in results:
        if not r.finished:
            print(
                f"backfill {r.backfill_limit}: stopped after {r.calls:,} plan() calls "
                f"(--max-events) at t={r.end:,} with {r.queued_left:,} runs still queued; "
                "utilisation is over [0, t], where the ideal is 100%"
            )


if __name__ == "__main__":
    main()
