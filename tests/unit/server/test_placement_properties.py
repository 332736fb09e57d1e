"""Properties of gang placement on random clusters and queues (hypothesis).

Clusters have 1-8 nodes with 0-8 GPUs each of 1-3 products, in 1-3 pools assigned to 1-3
groups, some GPUs already held or shared, some CPU and memory already taken. Queues have 1-40
runs of 1-4 replicas asking for 0-4 GPUs (some of a named type), CPU and memory, some to start
immediately. Whatever the plan, it must never double-book a GPU, place a replica where it may
not go, over-commit a node for an exclusive run, lose a run, or leave a run that fits behind
without a reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from trainyard.core.models import Placement
from trainyard.core.scheduling import ReplicaDemand, gpu_type_matches
from trainyard.server.scheduler.placement import (
    Candidate,
    Cluster,
    GpuState,
    NodeState,
    Plan,
    PoolState,
    plan,
)

T = TypeVar("T")
GiB = 2**30
PRODUCTS = ("A100-SXM4-80GB", "Tesla-V100-SXM3-32GB", "H100-80GB-HBM3")
# What manifests may ask for: a family, a full product name, another spelling, or a type no
# node has.
GPU_TYPES = (None, None, None, "A100", "Tesla-V100", "tesla v100-sxm3-32gb", "H100-80GB", "L4")
GROUPS = ("default", "research", "prod")
# (held exclusively, start-immediately replicas sharing it)
GPU_STATES = ((False, 0), (False, 0), (True, 0), (True, 0), (False, 1), (True, 1), (True, 2))


@dataclass
class Scenario:
    nodes: list[NodeState]
    pools: list[PoolState]
    gpus: list[GpuState]
    queue: list[Candidate]
    backfill_limit: int


@cache
def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Strategies built once: building one per draw would cost more than the plan itself."""
    return st.integers(lo, hi)


@cache
def pick(options: tuple[T, ...]) -> st.SearchStrategy[T]:
    return st.sampled_from(options)


@st.composite
def scenarios(draw: st.DrawFn, backfill_limit: st.SearchStrategy[int] | None = None) -> Scenario:
    products = PRODUCTS[: draw(ints(1, 3))]
    groups = GROUPS[: draw(ints(1, 3))]
    pools = [PoolState(f"pool-{i}", draw(pick(groups))) for i in range(draw(ints(1, 3)))]
    pool_names = tuple(p.name for p in pools)
    nodes: list[NodeState] = []
    gpus: list[GpuState] = []
    for n in range(draw(ints(1, 8))):
        name = f"node-{n}"
        cpu_total = draw(ints(1, 64)) * 1000
        memory_total = draw(ints(1, 256)) * GiB
        nodes.append(
            NodeState(
                name,
                cpu_free=cpu_total * draw(ints(0, 4)) // 4,
                memory_free=memory_total * draw(ints(0, 4)) // 4,
                cpu_total=cpu_total,
                memory_total=memory_total,
            )
        )
        for i in range(draw(ints(0, 8))):
            held, shared_users = draw(pick(GPU_STATES))
            gpus.append(
                GpuState(
                    f"GPU-{n}-{i}",
                    name,
                    draw(pick(products)),
                    draw(pick(pool_names)),
                    index=i,
                    held=held,
                    shared_users=shared_users,
                )
            )
    queue: list[Candidate] = []
    for run_id in range(1, draw(ints(1, 40)) + 1):
        # Like a manifest: one or two resources, whose replicas all ask for the same.
        demands: list[ReplicaDemand] = []
        for resource in ("worker", "ps")[: draw(ints(1, 2))]:
            cpu_millis = draw(ints(0, 16)) * 500
            memory_bytes = draw(ints(0, 64)) * GiB // 2
            gpu_count = draw(ints(0, 4))
            gpu_type = draw(pick(GPU_TYPES))
            for r in range(draw(ints(1, 4 - len(demands)))):
                demands.append(
                    ReplicaDemand(f"{resource}-{r}", cpu_millis, memory_bytes, gpu_count, gpu_type)
                )
            if len(demands) == 4:
                break
        queue.append(
            Candidate(
                run_id,
                draw(pick(GROUPS)),  # a group may have no pool
                tuple(demands),
                start_immediately=draw(ints(0, 6)) == 0,
                overtaken=draw(ints(0, 3)),
                ref=f"default/train#{run_id}",
            )
        )
    limit = draw(backfill_limit if backfill_limit is not None else ints(0, 5))
    return Scenario(nodes, pools, gpus, queue, limit)


@dataclass
class Before:
    """What the planner was given, copied before ``plan`` mutates the cluster."""

    cpu_free: dict[str, int]
    memory_free: dict[str, int]
    held: set[str]
    shared_users: dict[str, int]


def run_plan(s: Scenario) -> tuple[Cluster, Before, Plan]:
    cluster = Cluster(s.nodes, s.pools, s.gpus)
    before = Before(
        cpu_free={n.name: n.cpu_free for n in s.nodes},
        memory_free={n.name: n.memory_free for n in s.nodes},
        held={g.uuid for g in s.gpus if g.held},
        shared_users={g.uuid: g.shared_users for g in s.gpus},
    )
    return cluster, before, plan(cluster, s.queue, backfill_limit=s.backfill_limit)


def exclusive(p: Plan) -> list[Placement]:
    return [pl for _, placements in p.admitted for pl in placements if not pl.shared]


def fits_now(s: Scenario, c: Candidate, d: ReplicaDemand) -> bool:
    """``d`` fits on some node as things stand (worked out from the GPU states, not from the
    planner's own indexes): CPU and memory free, and ``d.gpus`` free GPUs of one product in one
    pool of the run's group."""
    group_pools = {p.name for p in s.pools if p.group == c.group}
    for node in s.nodes:
        if node.cpu_free < d.cpu_millis or node.memory_free < d.memory_bytes:
            continue
        if d.gpus == 0:
            return True
        free = Counter(
            (g.pool, g.product)
            for g in s.gpus
            if g.node == node.name
            and not g.held
            and g.pool in group_pools
            and gpu_type_matches(g.product, d.gpu_type)
        )
        if any(count >= d.gpus for count in free.values()):
            return True
    return False


# -- the properties, each checked on every example ----------------------------------------


def check_no_gpu_given_exclusively_twice_or_while_held(s: Scenario, b: Before, p: Plan) -> None:
    """Exclusive placements take distinct GPUs, none of them held before the plan."""
    taken = [u for pl in exclusive(p) for u in pl.gpus]
    assert len(taken) == len(set(taken))
    assert not set(taken) & b.held


def check_admitted_runs_place_exactly_their_replicas(s: Scenario, b: Before, p: Plan) -> None:
    """An admitted run has one placement per replica, in replica order, reserving what the
    replica asked for; shared placements only for start-immediately runs."""
    by_id = {c.run_id: c for c in s.queue}
    for run_id, placements in p.admitted:
        c = by_id[run_id]
        assert [pl.replica for pl in placements] == [d.replica for d in c.demands]
        for pl, d in zip(placements, c.demands, strict=True):
            assert (pl.cpu_millis, pl.memory_bytes) == (d.cpu_millis, d.memory_bytes)
            assert pl.shared == c.start_immediately


def check_replica_gpus_on_its_node_in_its_group_of_its_type(
    s: Scenario, b: Before, p: Plan
) -> None:
    """Every replica's GPUs: as many as it asked for, distinct, on its node, in a pool of its
    run's group, of one product matching its ``gpu_type``."""
    by_id = {c.run_id: c for c in s.queue}
    gpu = {g.uuid: g for g in s.gpus}
    group_of = {pool.name: pool.group for pool in s.pools}
    for run_id, placements in p.admitted:
        c = by_id[run_id]
        for pl, d in zip(placements, c.demands, strict=True):
            assert len(pl.gpus) == len(set(pl.gpus)) == d.gpus
            picked = [gpu[u] for u in pl.gpus]
            assert all(g.node == pl.node for g in picked)
            assert all(group_of[g.pool] == c.group for g in picked)
            assert all(gpu_type_matches(g.product, d.gpu_type) for g in picked)
            assert len({g.product for g in picked}) <= 1


def check_exclusive_runs_never_over_commit_a_node(s: Scenario, b: Before, p: Plan) -> None:
    """CPU and memory of exclusive placements on a node stay within what was free there (less
    what start-immediately runs over-committed, when an exclusive replica went there too)."""
    for node in s.nodes:
        mine = [pl for pl in exclusive(p) if pl.node == node.name]
        shared = [pl for _, pls in p.admitted for pl in pls if pl.shared and pl.node == node.name]
        cpu = sum(pl.cpu_millis for pl in mine)
        memory = sum(pl.memory_bytes for pl in mine)
        assert cpu <= b.cpu_free[node.name]
        assert memory <= b.memory_free[node.name]
        if mine:
            assert cpu + sum(pl.cpu_millis for pl in shared) <= b.cpu_free[node.name]
            assert memory + sum(pl.memory_bytes for pl in shared) <= b.memory_free[node.name]


def check_cluster_afterwards_is_what_was_free_less_the_plan(
    s: Scenario, b: Before, p: Plan, cluster: Cluster
) -> None:
    """No leak from blocked runs: after the plan, each node's free CPU/memory, the held GPUs,
    the share counts and the free count per group are those before, less exactly what the
    admitted runs took."""
    placements = [pl for _, pls in p.admitted for pl in pls]
    for node in s.nodes:
        on_node = [pl for pl in placements if pl.node == node.name]
        assert node.cpu_free == b.cpu_free[node.name] - sum(pl.cpu_millis for pl in on_node)
        assert node.memory_free == b.memory_free[node.name] - sum(pl.memory_bytes for pl in on_node)
    assert {g.uuid for g in s.gpus if g.held} == b.held | {
        u for pl in exclusive(p) for u in pl.gpus
    }
    shares = Counter(u for pl in placements if pl.shared for u in pl.gpus)
    assert {g.uuid: g.shared_users for g in s.gpus} == {
        u: n + shares[u] for u, n in b.shared_users.items()
    }
    free_per_group = Counter(cluster.pools[g.pool].group for g in s.gpus if not g.held)
    assert {k: v for k, v in cluster.group_free.items() if v} == dict(free_per_group)


def check_every_run_admitted_or_blocked_never_both(s: Scenario, b: Before, p: Plan) -> None:
    """Each queued run gets exactly one outcome, and ``overtaken`` only reports blocked heads
    that were passed, counting up from their earlier count to at most the limit."""
    admitted = [run_id for run_id, _ in p.admitted]
    assert len(admitted) == len(set(admitted))
    assert not set(admitted) & set(p.blocked)
    assert set(admitted) | set(p.blocked) == {c.run_id for c in s.queue}
    assert all(blocked.run_id == run_id for run_id, blocked in p.blocked.items())
    by_id = {c.run_id: c for c in s.queue}
    for head, count in p.overtaken.items():
        assert head in p.blocked
        assert by_id[head].overtaken < count <= s.backfill_limit


def check_a_run_that_fits_what_is_left_is_only_ever_held(s: Scenario, b: Before, p: Plan) -> None:
    """A blocked one-replica run that would fit the capacity left after the plan was blocked
    by bounded backfill, not for lack of GPUs, CPU or memory (capacity only shrinks during a
    plan, so had it been considered, it would have fitted)."""
    for c in s.queue:
        blocked = p.blocked.get(c.run_id)
        if blocked is None or len(c.demands) != 1:
            continue
        if fits_now(s, c, c.demands[0]):
            assert blocked.lack == "held", (c, blocked)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_plan_properties(s: Scenario) -> None:
    """Every property above holds for random clusters, queues and backfill limits 0-5."""
    cluster, before, p = run_plan(s)
    check_no_gpu_given_exclusively_twice_or_while_held(s, before, p)
    check_admitted_runs_place_exactly_their_replicas(s, before, p)
    check_replica_gpus_on_its_node_in_its_group_of_its_type(s, before, p)
    check_exclusive_runs_never_over_commit_a_node(s, before, p)
    check_cluster_afterwards_is_what_was_free_less_the_plan(s, before, p, cluster)
    check_every_run_admitted_or_blocked_never_both(s, before, p)
    check_a_run_that_fits_what_is_left_is_only_ever_held(s, before, p)


@settings(max_examples=120, deadline=None)
@given(scenarios(backfill_limit=st.just(1000)))
def test_with_a_large_backfill_limit_nothing_is_held(s: Scenario) -> None:
    """backfill_limit=1000: no run is ever held, so every one-replica run that fits what is
    left after the plan was admitted (and the other properties still hold)."""
    cluster, before, p = run_plan(s)
    assert all(blocked.lack != "held" for blocked in p.blocked.values())
    for c in s.queue:
        if c.run_id in p.blocked and len(c.demands) == 1:
            assert not fits_now(s, c, c.demands[0]), (c, p.blocked[c.run_id])
    check_no_gpu_given_exclusively_twice_or_while_held(s, before, p)
    check_cluster_afterwards_is_what_was_free_less_the_plan(s, before, p, cluster)
    check_every_run_admitted_or_blocked_never_both(s, before, p)
