"""Gang placement (``trainyard.server.scheduler.placement``) on small, hand-built clusters.

Each test builds a :class:`Cluster` snapshot, plans a queue given in scheduling order and
checks which runs start, where, and the reason given for every run left queued.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainyard.core.models import Placement
from trainyard.core.scheduling import ReplicaDemand, gpu_type_matches
from trainyard.server.scheduler.placement import (
    Candidate,
    Cluster,
    GpuState,
    NodeState,
    Plan,
    PoolState,
    infeasible_reason,
    plan,
)

GiB = 2**30
A100 = "A100-SXM4-80GB"
V100 = "Tesla-V100-SXM3-32GB"
NO_LIMIT = 1000  # a backfill limit no test reaches


def node(name: str, cpus: int = 64, memory_gib: int = 512) -> NodeState:
    return NodeState(
        name,
        cpu_free=cpus * 1000,
        memory_free=memory_gib * GiB,
        cpu_total=cpus * 1000,
        memory_total=memory_gib * GiB,
    )


def gpus(
    node_name: str,
    count: int,
    *,
    product: str = A100,
    pool: str = "default",
    held: int = 0,
    first_index: int = 0,
) -> list[GpuState]:
    """``count`` GPUs on ``node_name``; the first ``held`` of them held exclusively."""
    return [
        GpuState(
            f"GPU-{node_name}-{i}",
            node_name,
            product,
            pool,
            index=i,
            held=i - first_index < held,
        )
        for i in range(first_index, first_index + count)
    ]


def cluster(
    nodes: Sequence[NodeState],
    gpu_list: Sequence[GpuState],
    pools: Sequence[PoolState] = (PoolState("default", "default"),),
) -> Cluster:
    return Cluster(nodes, pools, gpu_list)


def demand(
    replica: str = "worker-0",
    gpus: int = 1,
    *,
    cpus: float = 1,
    memory_gib: int = 1,
    gpu_type: str | None = None,
) -> ReplicaDemand:
    return ReplicaDemand(replica, int(cpus * 1000), memory_gib * GiB, gpus, gpu_type)


def run(
    run_id: int,
    *demands: ReplicaDemand,
    group: str = "default",
    start_immediately: bool = False,
    overtaken: int = 0,
) -> Candidate:
    return Candidate(
        run_id,
        group,
        tuple(demands) or (demand(),),
        start_immediately=start_immediately,
        overtaken=overtaken,
        ref=f"default/train#{run_id}",
    )


def replicas(
    n: int, gpus: int, *, cpus: float = 1, memory_gib: int = 1
) -> tuple[ReplicaDemand, ...]:
    return tuple(demand(f"worker-{i}", gpus, cpus=cpus, memory_gib=memory_gib) for i in range(n))


def admitted(p: Plan) -> dict[int, list[Placement]]:
    return dict(p.admitted)


def held_uuids(c: Cluster) -> set[str]:
    return {g.uuid for bucket in c.all.values() for g in bucket if g.held}


# -- gang ------------------------------------------------------------------------------------


def test_gang_is_all_or_nothing_and_leaves_the_cluster_unchanged() -> None:
    """Two replicas of 3 GPUs on nodes with 4 and 2 free GPUs: the first replica fits on the
    4-GPU node, the second fits nowhere, so the run is blocked and the 3 GPUs (and CPU and
    memory) taken for the first replica are given back."""
    c = cluster([node("n1"), node("n2")], gpus("n1", 4) + gpus("n2", 2))
    p = plan(c, [run(1, *replicas(2, 3))], backfill_limit=NO_LIMIT)

    assert p.admitted == []
    assert p.blocked[1].lack == "gpu"
    assert p.blocked[1].reason == f"waiting for 6 × {A100} in pool 'default'"
    assert held_uuids(c) == set()
    assert c.group_free == {"default": 6}
    assert [len(c.free[("default", n, A100)]) for n in ("n1", "n2")] == [4, 2]
    assert all(n.cpu_free == 64_000 and n.memory_free == 512 * GiB for n in c.nodes.values())


def test_a_blocked_gang_does_not_keep_gpus_from_later_runs() -> None:
    """After the 2 × 3-GPU run is blocked, a 4-GPU and a 2-GPU run behind it take every GPU."""
    c = cluster([node("n1"), node("n2")], gpus("n1", 4) + gpus("n2", 2))
    queue = [run(1, *replicas(2, 3)), run(2, demand(gpus=4)), run(3, demand(gpus=2))]
    p = plan(c, queue, backfill_limit=NO_LIMIT)

    got = admitted(p)
    assert set(got) == {2, 3}
    assert got[2][0].node == "n1" and len(got[2][0].gpus) == 4
    assert got[3][0].node == "n2" and len(got[3][0].gpus) == 2
    assert held_uuids(c) == {g for placements in got.values() for pl in placements for g in pl.gpus}
    assert set(p.blocked) == {1}


def test_every_replica_of_an_admitted_gang_is_placed_in_replica_order() -> None:
    """A 2 × 4-GPU run on two 4-GPU nodes: one replica per node, placements in replica order,
    each with its own CPU/memory reservation."""
    c = cluster([node("n1"), node("n2")], gpus("n1", 4) + gpus("n2", 4))
    p = plan(c, [run(1, *replicas(2, 4, cpus=2, memory_gib=8))], backfill_limit=NO_LIMIT)

    placements = admitted(p)[1]
    assert [pl.replica for pl in placements] == ["worker-0", "worker-1"]
    assert {pl.node for pl in placements} == {"n1", "n2"}
    assert all(pl.cpu_millis == 2000 and pl.memory_bytes == 8 * GiB for pl in placements)
    assert not any(pl.shared for pl in placements)
    assert c.nodes["n1"].cpu_free == c.nodes["n2"].cpu_free == 62_000


# -- one node, one product ---------------------------------------------------------------------


def test_a_replica_gets_gpus_of_one_product_on_one_node() -> None:
    """n1 has 2 V100 and 2 A100 free, n2 has 2 A100: 4 GPUs are free on n1 and 6 in all, but
    no node has 3 of one product, so a 3-GPU replica is blocked; a 2-GPU one gets a pair of the
    same product on the same node."""
    gpu_list = (
        gpus("n1", 2, product=V100)
        + gpus("n1", 2, product=A100, first_index=2)
        + gpus("n2", 2, product=A100)
    )
    c = cluster([node("n1"), node("n2")], gpu_list)
    by_uuid = {g.uuid: g for g in gpu_list}

    p = plan(c, [run(1, demand(gpus=3)), run(2, demand(gpus=2))], backfill_limit=NO_LIMIT)

    assert p.blocked[1].lack == "gpu"
    assert p.blocked[1].reason == "waiting for 3 × GPU in pool 'default'"
    (placement,) = admitted(p)[2]
    picked = [by_uuid[u] for u in placement.gpus]
    assert len(picked) == 2
    assert {g.node for g in picked} == {placement.node}
    assert len({g.product for g in picked}) == 1


def test_gpu_type_matches_by_prefix_cut_at_a_dash() -> None:
    """``Tesla-V100`` names the V100 family, not the A100, with case and spaces ignored."""
    assert gpu_type_matches(V100, "Tesla-V100")
    assert gpu_type_matches(V100, "tesla v100")
    assert gpu_type_matches(V100, V100)
    assert not gpu_type_matches(A100, "Tesla-V100")
    assert not gpu_type_matches(V100, "Tesla-V1")  # a prefix must end at a dash
    assert gpu_type_matches(A100, None)


def test_a_gpu_type_picks_only_matching_gpus() -> None:
    """With 4 A100 and 2 V100 free on one node, ``gpu_type: Tesla-V100`` gets the V100s; a
    second such run asking for 2 more is blocked, waiting for its type by name, although the 4
    A100 are free."""
    gpu_list = gpus("n1", 4, product=A100) + gpus("n1", 2, product=V100, first_index=4)
    c = cluster([node("n1")], gpu_list)
    products = {g.uuid: g.product for g in gpu_list}
    queue = [
        run(1, demand(gpus=2, gpu_type="Tesla-V100")),
        run(2, demand(gpus=2, gpu_type="Tesla-V100")),
    ]
    p = plan(c, queue, backfill_limit=NO_LIMIT)

    assert [products[u] for u in admitted(p)[1][0].gpus] == [V100, V100]
    assert p.blocked[2].lack == "gpu"
    assert p.blocked[2].reason == "waiting for 2 × Tesla-V100 in pool 'default'"
    assert c.group_free == {"default": 4}


# -- pools and groups --------------------------------------------------------------------------


def test_runs_draw_only_on_the_pools_of_their_group() -> None:
    """Pool "pa" (group a) has 2 GPUs on n1, pool "pb" (group b) 4 on n2. Group a's runs get
    pa's GPUs and wait for more there, even while pb's are free; group b's run gets pb's."""
    pools = [PoolState("pa", "a"), PoolState("pb", "b")]
    gpu_list = gpus("n1", 2, pool="pa") + gpus("n2", 4, pool="pb")
    c = cluster([node("n1"), node("n2")], gpu_list, pools)
    pool_of = {g.uuid: g.pool for g in gpu_list}
    queue = [
        run(1, demand(gpus=2), group="a"),
        run(2, demand(gpus=1), group="a"),
        run(3, demand(gpus=3), group="b"),
    ]
    p = plan(c, queue, backfill_limit=NO_LIMIT)

    got = admitted(p)
    assert {pool_of[u] for u in got[1][0].gpus} == {"pa"}
    assert p.blocked[2].lack == "gpu"
    assert p.blocked[2].reason == f"waiting for 1 × {A100} in pool 'pa'"
    assert {pool_of[u] for u in got[3][0].gpus} == {"pb"}
    assert c.group_free == {"a": 0, "b": 1}


def test_a_group_with_several_pools_is_named_in_the_reason() -> None:
    """Group a has pools "pa1" and "pa2", both busy: the reason lists both."""
    pools = [PoolState("pa2", "a"), PoolState("pa1", "a")]
    gpu_list = gpus("n1", 1, pool="pa1", held=1) + gpus("n2", 1, pool="pa2", held=1)
    c = cluster([node("n1"), node("n2")], gpu_list, pools)
    p = plan(c, [run(1, demand(gpus=1), group="a")], backfill_limit=NO_LIMIT)

    assert p.blocked[1].reason == f"waiting for 1 × {A100} in pools 'pa1', 'pa2'"


def test_a_group_without_pools_runs_only_cpu_only_runs() -> None:
    """Group c has no pool: its GPU run waits (the reason says the group has no pool) while
    its CPU-only run starts, even though the default pool's GPUs are free."""
    c = cluster([node("n1")], gpus("n1", 8))
    queue = [run(1, demand(gpus=1), group="c"), run(2, demand(gpus=0, cpus=4), group="c")]
    p = plan(c, queue, backfill_limit=NO_LIMIT)

    assert p.blocked[1].lack == "gpu"
    assert p.blocked[1].reason == "waiting for 1 × GPU in group 'c' (which has no pool)"
    (placement,) = admitted(p)[2]
    assert placement.gpus == [] and placement.cpu_millis == 4000
    assert c.group_free == {"default": 8}


# -- best fit ----------------------------------------------------------------------------------


def test_best_fit_keeps_the_whole_node_for_the_big_run() -> None:
    """n1 has 8 free GPUs, n2 has 2 of 8 free: a 1-GPU run goes to n2 (it leaves the fewest
    free), so the 8-GPU run behind it still gets n1."""
    c = cluster([node("n1"), node("n2")], gpus("n1", 8) + gpus("n2", 8, held=6))
    queue = [run(1, demand(gpus=1)), run(2, demand(gpus=8))]
    p = plan(c, queue, backfill_limit=NO_LIMIT)

    got = admitted(p)
    assert got[1][0].node == "n2"
    assert got[1][0].gpus == ["GPU-n2-6"]  # lowest free index first
    assert got[2][0].node == "n1"
    assert p.blocked == {}


def test_cpu_only_replicas_go_to_the_node_with_most_free_cpu() -> None:
    """A CPU-only replica picks the node with the most free CPU."""
    busy = node("n1")
    busy.cpu_free = 10_000
    c = cluster([busy, node("n2")], [])
    p = plan(c, [run(1, demand(gpus=0, cpus=4))], backfill_limit=NO_LIMIT)

    assert admitted(p)[1][0].node == "n2"


# -- CPU and memory --------------------------------------------------------------------------


def test_cpu_request_blocks_a_replica_and_names_it() -> None:
    """Each replica asks for 3 CPUs; the only node has 4 free: worker-0 fits, worker-1 does
    not, so the run waits for CPU and the reason names worker-1."""
    c = cluster([node("n1", cpus=4)], gpus("n1", 8))
    p = plan(c, [run(1, *replicas(2, 1, cpus=3))], backfill_limit=NO_LIMIT)

    assert p.blocked[1].lack == "cpu"
    assert p.blocked[1].reason == "waiting for CPU: replica worker-1 needs 3 free on one node"
    assert c.nodes["n1"].cpu_free == 4000
    assert held_uuids(c) == set()


def test_memory_request_blocks_a_replica_and_names_it() -> None:
    """A replica asking for 16 GiB on a node with 8 GiB free waits for memory, by name."""
    c = cluster([node("n1", memory_gib=8)], gpus("n1", 8))
    p = plan(c, [run(1, demand("trainer-0", gpus=1, memory_gib=16))], backfill_limit=NO_LIMIT)

    assert p.blocked[1].lack == "memory"
    assert p.blocked[1].reason == (
        "waiting for memory: replica trainer-0 needs 16Gi free on one node"
    )


def test_cpu_and_memory_of_admitted_runs_are_reserved() -> None:
    """Two runs of 40 CPUs on a 64-CPU node: the second waits for CPU, the node keeps 24."""
    c = cluster([node("n1")], gpus("n1", 8))
    queue = [run(1, demand(gpus=1, cpus=40)), run(2, demand(gpus=1, cpus=40))]
    p = plan(c, queue, backfill_limit=NO_LIMIT)

    assert set(admitted(p)) == {1}
    assert p.blocked[2].lack == "cpu"
    assert c.nodes["n1"].cpu_free == 24_000


# -- reasons -----------------------------------------------------------------------------------


def test_reason_names_the_product_when_the_group_has_one() -> None:
    """Every GPU of the group is a Tesla-V100-SXM3-32GB and all are busy: the reason counts
    the run's GPUs (over all replicas) and names the product."""
    c = cluster([node("n1")], gpus("n1", 4, product=V100, held=3))
    p = plan(c, [run(1, *replicas(2, 1))], backfill_limit=NO_LIMIT)

    assert p.blocked[1].lack == "gpu"
    assert p.blocked[1].reason == "waiting for 2 × Tesla-V100-SXM3-32GB in pool 'default'"


# -- bounded backfill --------------------------------------------------------------------------


def backfill_queue(head_overtaken: int = 0) -> list[Candidate]:
    """An 8-GPU head, three 1-GPU runs and a CPU-only run, in that order."""
    return [
        run(1, demand(gpus=8), overtaken=head_overtaken),
        run(2, demand(gpus=1)),
        run(3, demand(gpus=1)),
        run(4, demand(gpus=1)),
        run(5, demand(gpus=0, cpus=2)),
    ]


def busy_node() -> Cluster:
    """One node with 8 GPUs, one held: the 8-GPU head cannot start, 1-GPU runs can."""
    return cluster([node("n1")], gpus("n1", 8, held=1))


def test_backfill_is_bounded_by_the_limit() -> None:
    """With backfill_limit=2, two 1-GPU runs overtake the blocked 8-GPU head, the third is
    held behind it (the reason names the head), and the head's new count is reported."""
    p = plan(busy_node(), backfill_queue(), backfill_limit=2)

    assert set(admitted(p)) == {2, 3, 5}
    assert p.blocked[1].lack == "gpu"
    assert p.blocked[4].lack == "held"
    assert p.blocked[4].reason == (
        "held behind default/train#1, which runs behind it have overtaken 2 times "
        "(bounded backfill)"
    )
    assert p.overtaken == {1: 2}


def test_backfill_limit_of_one_says_once() -> None:
    """The hold reason says "once" when a single run overtook the head."""
    p = plan(busy_node(), backfill_queue(), backfill_limit=1)

    assert set(admitted(p)) == {2, 5}
    assert p.blocked[3].reason == (
        "held behind default/train#1, which runs behind it have overtaken once (bounded backfill)"
    )
    assert p.blocked[4].lack == "held"
    assert p.overtaken == {1: 1}


def test_a_cpu_only_run_is_never_held_behind_a_head_waiting_for_gpus() -> None:
    """Run 5 needs no GPU, so it does not compete with the head and starts even after the
    limit is reached; it does not count as overtaking either."""
    p = plan(busy_node(), backfill_queue(), backfill_limit=0)

    assert 5 in admitted(p)
    assert p.overtaken == {}


def test_backfill_limit_zero_is_strict_order_for_competing_runs() -> None:
    """backfill_limit=0: no 1-GPU run passes the blocked head, each is held behind it."""
    p = plan(busy_node(), backfill_queue(), backfill_limit=0)

    assert set(admitted(p)) == {5}
    assert p.blocked[1].lack == "gpu"
    assert [p.blocked[i].lack for i in (2, 3, 4)] == ["held"] * 3
    assert p.blocked[2].reason == (
        "held behind default/train#1, strict queue order: the backfill limit is 0"
    )


def test_a_head_already_overtaken_up_to_the_limit_holds_from_the_start() -> None:
    """The head was overtaken twice in earlier passes; with backfill_limit=2 nothing that
    competes with it starts now, and its count is not raised."""
    p = plan(busy_node(), backfill_queue(head_overtaken=2), backfill_limit=2)

    assert set(admitted(p)) == {5}
    assert [p.blocked[i].lack for i in (2, 3, 4)] == ["held"] * 3
    assert "overtaken 2 times" in p.blocked[2].reason
    assert p.overtaken == {}


def test_a_head_counts_on_from_its_earlier_overtaken() -> None:
    """The head was overtaken once before; with backfill_limit=2 one more run passes it."""
    p = plan(busy_node(), backfill_queue(head_overtaken=1), backfill_limit=2)

    assert set(admitted(p)) == {2, 5}
    assert p.overtaken == {1: 2}
    assert [p.blocked[i].lack for i in (3, 4)] == ["held"] * 2


def test_a_head_waiting_for_cpu_holds_cpu_only_runs_too() -> None:
    """A head that lacks CPU competes with every run behind it, GPU or not."""
    c = cluster([NodeState("n1", 4000, 512 << 30, cpu_total=8000)], gpus("n1", 8))
    queue = [run(1, demand(gpus=1, cpus=6)), run(2, demand(gpus=0, cpus=1))]
    p = plan(c, queue, backfill_limit=0)

    assert p.blocked[1].lack == "cpu"
    assert p.blocked[2].lack == "held"


def test_heads_are_per_group() -> None:
    """A head blocked in group a does not hold the runs of group b."""
    pools = [PoolState("pa", "a"), PoolState("pb", "b")]
    c = cluster(
        [node("n1")],
        gpus("n1", 4, pool="pa", held=1) + gpus("n1", 4, pool="pb", first_index=4),
        pools,
    )
    queue = [
        run(1, demand(gpus=4), group="a"),
        run(2, demand(gpus=1), group="b"),
        run(3, demand(gpus=1), group="a"),
    ]
    p = plan(c, queue, backfill_limit=0)

    assert set(admitted(p)) == {2}
    assert p.blocked[3].lack == "held"


def test_the_first_blocked_run_is_the_head_even_when_it_is_small() -> None:
    """Only the first blocked run of a group is its head: a later blocked run does not hold
    anything, and runs that are themselves held never become heads."""
    c = cluster([node("n1")], gpus("n1", 4, held=2))
    queue = [
        run(1, demand(gpus=3)),  # 2 free of 4: blocked, the head
        run(2, demand(gpus=4)),  # blocked, counts as competing but is not a head
        run(3, demand(gpus=1)),
        run(4, demand(gpus=1)),
    ]
    p = plan(c, queue, backfill_limit=2)

    assert p.blocked[1].lack == "gpu"
    assert p.blocked[2].lack == "gpu"
    assert set(admitted(p)) == {3, 4}
    assert p.overtaken == {1: 2}


def test_a_run_that_can_never_fit_is_not_a_head() -> None:
    """GPUs removed after it was queued: it cannot fit even on an empty cluster, so it waits
    without holding its group (it would hold it forever)."""
    c = cluster([node("n1")], gpus("n1", 2))
    queue = [run(1, demand(gpus=4)), run(2, demand(gpus=1)), run(3, demand(gpus=1))]
    p = plan(c, queue, backfill_limit=0)

    assert p.blocked[1].lack == "gpu"
    assert set(admitted(p)) == {2, 3}
    assert p.overtaken == {}


# -- start immediately -----------------------------------------------------------------------


def test_start_immediately_shares_held_gpus() -> None:
    """Every GPU is held: a start-immediately run still starts, on a shared GPU, and the GPU
    stays held by its owner (only its share count grows)."""
    c = cluster([node("n1")], gpus("n1", 2, held=2))
    p = plan(c, [run(1, demand(gpus=1), start_immediately=True)], backfill_limit=0)

    (placement,) = admitted(p)[1]
    assert placement.shared
    assert placement.gpus == ["GPU-n1-0"]
    (gpu,) = [g for g in c.all[("default", "n1", A100)] if g.uuid == "GPU-n1-0"]
    assert gpu.held and gpu.shared_users == 1


def test_start_immediately_prefers_free_gpus_then_the_least_shared() -> None:
    """Free GPUs come first (even one already shared); among held ones, the least shared."""
    gpu_list = gpus("n1", 3, held=2)
    gpu_list[2].shared_users = 1  # free but shared
    c = cluster([node("n1")], gpu_list)
    p = plan(c, [run(1, demand(gpus=1), start_immediately=True)], backfill_limit=0)
    assert admitted(p)[1][0].gpus == ["GPU-n1-2"]

    gpu_list = gpus("n1", 3, held=3)
    gpu_list[0].shared_users = 2
    gpu_list[1].shared_users = 1
    c = cluster([node("n1")], gpu_list)
    p = plan(c, [run(1, demand(gpus=1), start_immediately=True)], backfill_limit=0)
    assert admitted(p)[1][0].gpus == ["GPU-n1-2"]


def test_start_immediately_replicas_spread_over_the_least_shared() -> None:
    """Two shared replicas of one run on a 2-GPU node each get their own GPU."""
    c = cluster([node("n1")], gpus("n1", 2, held=2))
    p = plan(c, [run(1, *replicas(2, 1), start_immediately=True)], backfill_limit=0)

    placements = admitted(p)[1]
    assert sorted(g for pl in placements for g in pl.gpus) == ["GPU-n1-0", "GPU-n1-1"]
    assert all(pl.shared for pl in placements)


def test_start_immediately_may_over_commit_cpu_and_memory() -> None:
    """CPU and memory of a start-immediately run are reserved but may exceed what is free."""
    c = cluster([node("n1", cpus=4, memory_gib=8)], gpus("n1", 1))
    p = plan(
        c,
        [run(1, demand(gpus=1, cpus=8, memory_gib=16), start_immediately=True)],
        backfill_limit=0,
    )

    assert 1 in admitted(p)
    assert c.nodes["n1"].cpu_free == -4000
    assert c.nodes["n1"].memory_free == -8 * GiB


def test_start_immediately_is_never_held_behind_a_head() -> None:
    """A start-immediately run behind a blocked head starts even with backfill_limit=0, and
    does not count as overtaking it."""
    c = busy_node()
    queue = [run(1, demand(gpus=8)), run(2, demand(gpus=1), start_immediately=True)]
    p = plan(c, queue, backfill_limit=0)

    assert 2 in admitted(p)
    assert p.blocked[1].lack == "gpu"
    assert p.overtaken == {}


def test_start_immediately_is_blocked_only_without_enough_gpus_of_its_type() -> None:
    """No node has 3 GPUs in the group, or any V100: blocked with the infeasibility reason."""
    c = cluster([node("n1"), node("n2")], gpus("n1", 2) + gpus("n2", 2))
    queue = [
        run(1, demand(gpus=3), start_immediately=True),
        run(2, demand(gpus=1, gpu_type="Tesla-V100"), start_immediately=True),
    ]
    p = plan(c, queue, backfill_limit=0)

    assert p.admitted == []
    assert p.blocked[1].lack == "gpu"
    assert p.blocked[1].reason == (
        "replica worker-0 requests 3 × GPU on one node, but no node has more than 2 in pool "
        "'default' of group 'default'"
    )
    assert p.blocked[2].reason.startswith(
        "replica worker-0 requests 1 × Tesla-V100 on one node, but no node has any"
    )


def test_a_blocked_start_immediately_gang_reserves_nothing() -> None:
    """Replica worker-0 (1 GPU) could be shared, worker-1 (4 GPUs) cannot be placed: the run is
    blocked and neither the share nor worker-0's CPU and memory stay reserved."""
    c = cluster([node("n1")], gpus("n1", 2))
    queue = [run(1, demand("worker-0", 1, cpus=8), demand("worker-1", 4), start_immediately=True)]
    p = plan(c, queue, backfill_limit=0)

    assert p.blocked[1].lack == "gpu"
    assert c.nodes["n1"].cpu_free == 64_000
    assert c.nodes["n1"].memory_free == 512 * GiB
    assert all(g.shared_users == 0 for g in c.all[("default", "n1", A100)])


def test_exclusive_runs_still_get_gpus_shared_by_start_immediately_runs() -> None:
    """Sharing does not hold a GPU: an exclusive run behind may still take it."""
    c = cluster([node("n1")], gpus("n1", 1))
    queue = [run(1, demand(gpus=1), start_immediately=True), run(2, demand(gpus=1))]
    p = plan(c, queue, backfill_limit=0)

    got = admitted(p)
    assert got[1][0].gpus == got[2][0].gpus == ["GPU-n1-0"]
    assert got[1][0].shared and not got[2][0].shared


# -- infeasible --------------------------------------------------------------------------------


def test_infeasible_when_no_node_has_that_many_gpus() -> None:
    """9 GPUs for one replica, on nodes of 8: never possible (even with all GPUs free)."""
    c = cluster([node("n1"), node("n2")], gpus("n1", 8) + gpus("n2", 8))
    assert infeasible_reason(c, run(1, demand(gpus=9))) == (
        "replica worker-0 requests 9 × GPU on one node, but no node has more than 8 in pool "
        "'default' of group 'default'"
    )


def test_infeasible_when_no_node_has_that_much_cpu_or_memory() -> None:
    """A replica asking for more CPU or memory than the largest node has."""
    c = cluster([node("n1", cpus=64, memory_gib=512), node("n2", cpus=32, memory_gib=1024)], [])
    expected = (
        "replica worker-1 requests {cpu} CPU and {mem} memory, but no node has that much (the "
        "largest has 64 CPU, 1Ti); lower the requests"
    )
    too_much_cpu = run(1, demand("worker-0", 0), demand("worker-1", 0, cpus=65))
    too_much_memory = run(2, demand("worker-0", 0), demand("worker-1", 0, memory_gib=2048))
    # 64 CPUs and 1 TiB exist, but on different nodes:
    on_no_single_node = run(3, demand("worker-1", 0, cpus=64, memory_gib=1024))

    assert infeasible_reason(c, too_much_cpu) == expected.format(cpu="65", mem="1Gi")
    assert infeasible_reason(c, too_much_memory) == expected.format(cpu="1", mem="2Ti")
    assert infeasible_reason(c, on_no_single_node) == expected.format(cpu="64", mem="1Ti")


def test_infeasible_when_the_type_or_group_has_no_gpus() -> None:
    """A GPU type no node has, and a group without pools."""
    c = cluster([node("n1")], gpus("n1", 8))
    reason = infeasible_reason(c, run(1, demand(gpus=1, gpu_type="Tesla-V100")))
    assert reason is not None
    assert "requests 1 × Tesla-V100 on one node, but no node has any" in reason
    assert infeasible_reason(c, run(2, demand(gpus=1), group="c")) is not None


def test_feasible_runs_have_no_infeasible_reason() -> None:
    """Totals count, not what is free: a run that fits an empty cluster is feasible even while
    every GPU is held and the CPU is taken."""
    full = node("n1")
    full.cpu_free = 0
    c = cluster([full], gpus("n1", 8, held=8))
    assert infeasible_reason(c, run(1, demand(gpus=8, cpus=64, memory_gib=512))) is None
    assert infeasible_reason(c, run(2, *replicas(3, 0, cpus=64))) is None
    assert infeasible_reason(c, run(3, demand(gpus=2, gpu_type="a100"))) is None


def test_a_gpu_replica_short_of_cpu_where_its_gpus_are_says_cpu() -> None:
    """The GPUs are free on n1, whose CPU is taken; n2 has CPU but no GPU. The run waits for
    CPU (not for GPUs), and as a head short of CPU it holds CPU-only runs behind it too."""
    busy = NodeState("n1", 500, 512 * GiB, cpu_total=64_000)
    c = cluster([busy, node("n2")], gpus("n1", 4))
    queue = [run(1, demand(gpus=2, cpus=4)), run(2, demand(gpus=0, cpus=1))]
    p = plan(c, queue, backfill_limit=0)

    assert p.blocked[1].lack == "cpu"
    assert p.blocked[1].reason == "waiting for CPU: replica worker-0 needs 4 free on one node"
    assert p.blocked[2].lack == "held"
