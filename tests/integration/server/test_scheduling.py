"""Scheduling on a real database (SQLite and PostgreSQL): nodes, simulated GPUs, pools and
groups, the queue, gang placement, timeout, start-immediately and the pool invariants."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import manifest
from sqlalchemy import func, select, update

from trainyard.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    UnsupportedError,
    UserError,
)
from trainyard.core.status import RunStatus
from trainyard.server.services import projects as projects_service
from trainyard.server.services import runs as runs_service
from trainyard.server.services import scheduling as service
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import ensure_default_project
from trainyard.server.store import Database
from trainyard.server.store.migrations import upgrade
from trainyard.server.store.tables import GpuAllocationRow, RunRow
from trainyard.server.store.tables import utcnow as now

V100 = "Tesla-V100-SXM3-32GB"
A100 = "A100-SXM4-80GB"


def gpu_task(name: str = "g", gpus: int = 1, replicas: int = 1, extra: str = "") -> str:
    return manifest(
        name,
        "sleep 60",
        replicas=replicas,
        extra=f"    resources:\n      requests:\n        gpu: {gpus}\n" + extra,
    )


def _pass(ctx: ServiceContext) -> list[int]:
    admitted = service.schedule_pass(ctx, "test", [ctx.node_name])
    for run_id in admitted:  # not launched: these tests look at scheduling only
        ctx.launching.discard(run_id)
    return admitted


def _status(ctx: ServiceContext, run_id: int) -> RunStatus:
    return runs_service.get_run(ctx, run_id).status


# -- nodes ---------------------------------------------------------------------------------


def test_node_is_registered_and_simulated_gpus_are_marked(ctx: ServiceContext) -> None:
    (node,) = service.list_nodes(ctx)
    assert (node.name, node.cpu_millis, node.gpus) == ("node-a", 8000, [])
    node = service.simulate_gpus(ctx, "node-a", 4, "Tesla V100-SXM3-32GB")
    assert [(g.index, g.product, g.simulated, g.pool) for g in node.gpus] == [
        (i, V100, True, "default") for i in range(4)
    ]
    assert len({g.uuid for g in node.gpus}) == 4
    # Simulating again keeps the same GPUs (UUIDs depend on node and index).
    again = service.simulate_gpus(ctx, "node-a", 2, V100)
    assert [g.uuid for g in again.gpus] == [g.uuid for g in node.gpus[:2]]
    assert service.simulate_gpus(ctx, "node-a", 0, V100).gpus == []


def test_registration_keeps_pools_and_marks_missing_gpus(ctx: ServiceContext) -> None:
    from trainyard.executors.nvml import DiscoveredGpu

    found = [DiscoveredGpu(i, f"GPU-real-{i}", "NVIDIA-H100-80GB-HBM3", 80 << 30) for i in range(2)]
    service.register_node(ctx.db, "node-a", cpu_millis=8000, memory_bytes=1 << 34, gpus=found)
    service.create_pool(ctx, "h100", "NVIDIA-H100-80GB-HBM3")
    service.assign_gpus(ctx, "h100", gpus=["node-a:1"])
    # Next start finds only GPU 0: GPU 1 stays (absent, in its pool) and is not scheduled.
    service.register_node(ctx.db, "node-a", cpu_millis=8000, memory_bytes=1 << 34, gpus=found[:1])
    gpus = {g.uuid: g for g in service.get_node(ctx, "node-a").gpus}
    assert gpus["GPU-real-1"].present is False and gpus["GPU-real-1"].pool == "h100"
    pools = {p.name: p for p in service.list_pools(ctx)}
    assert (pools["h100"].total, pools["default"].total) == (0, 1)
    # ...and comes back where it was.
    service.register_node(ctx.db, "node-a", cpu_millis=8000, memory_bytes=1 << 34, gpus=found)
    assert service.get_node(ctx, "node-a").gpus[1].present is True
    assert {p.name: p.total for p in service.list_pools(ctx)} == {"default": 1, "h100": 1}


def test_servers_starting_together_register_one_node(ctx: ServiceContext) -> None:
    """Four servers of one machine starting at once: one node, its GPUs once, no error."""
    from trainyard.executors.nvml import DiscoveredGpu

    found = [DiscoveredGpu(i, f"GPU-together-{i}", "A100-SXM4-80GB", 80 << 30) for i in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            service.register_node(
                ctx.db, "node-b", cpu_millis=4000, memory_bytes=1 << 33, gpus=found
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    nodes = {n.name: n for n in service.list_nodes(ctx)}
    assert sorted(nodes) == ["node-a", "node-b"]
    assert [g.uuid for g in nodes["node-b"].gpus] == ["GPU-together-0", "GPU-together-1"]


def test_node_errors(ctx: ServiceContext) -> None:
    with pytest.raises(NotFoundError, match=r"node 'nope' not found \(known nodes: node-a\)"):
        service.simulate_gpus(ctx, "nope", 1, V100)
    with pytest.raises(InvalidInputError, match="between 0 and 1024"):
        service.simulate_gpus(ctx, "node-a", 5000, V100)
    with pytest.raises(InvalidInputError, match="GPU type"):
        service.simulate_gpus(ctx, "node-a", 1, "\x00bad")


def test_simulated_gpus_in_use_cannot_be_removed(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 2, V100)
    run = runs_service.submit_run(ctx, "default", manifest=gpu_task(gpus=2))
    assert _pass(ctx) == [run.id]
    with pytest.raises(ConflictError, match=r"held by default/g#1; stop those runs first"):
        service.simulate_gpus(ctx, "node-a", 1, V100)
    with pytest.raises(ConflictError):
        service.simulate_gpus(ctx, "node-a", 2, A100)  # changing their type too
    assert len(service.get_node(ctx, "node-a").gpus) == 2


# -- groups and pools ---------------------------------------------------------------------


def test_defaults_exist_and_cannot_be_deleted(ctx: ServiceContext) -> None:
    assert [(g.name, g.default, g.pools) for g in service.list_groups(ctx)] == [
        ("default", True, ["default"])
    ]
    assert [(p.name, p.default, p.group, p.gpu_type) for p in service.list_pools(ctx)] == [
        ("default", True, "default", None)
    ]
    with pytest.raises(ConflictError, match="default group cannot be deleted"):
        service.delete_group(ctx, "default")
    with pytest.raises(ConflictError, match="default pool cannot be deleted"):
        service.delete_pool(ctx, "default")
    service.create_group(ctx, "vision")
    with pytest.raises(ConflictError, match="default pool always belongs to the default group"):
        service.assign_pool_group(ctx, "default", "vision")


def test_pools_move_gpus_and_keep_the_total(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 4, V100)
    service.create_group(ctx, "vision")
    pool = service.create_pool(ctx, "v100", "Tesla-V100", group="vision")
    assert (pool.total, pool.group, pool.gpu_type) == (0, "vision", "Tesla-V100")
    assert service.assign_gpus(ctx, "v100", count=3).total == 3
    totals = {p.name: p.total for p in service.list_pools(ctx)}
    assert totals == {"default": 1, "v100": 3}
    # Back to the default pool by name; then deleting the pool returns the rest.
    service.assign_gpus(ctx, "default", gpus=["node-a:0"])
    assert {p.name: p.total for p in service.list_pools(ctx)} == {"default": 2, "v100": 2}
    service.delete_pool(ctx, "v100")
    assert {p.name: p.total for p in service.list_pools(ctx)} == {"default": 4}


def test_pool_and_group_errors(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 2, V100)
    service.create_pool(ctx, "a100", A100)
    with pytest.raises(InvalidInputError, match=r"node-a:0 is a Tesla-V100-SXM3-32GB; pool"):
        service.assign_gpus(ctx, "a100", gpus=["node-a:0"])
    with pytest.raises(ConflictError, match="fewer than the 1 asked"):
        service.assign_gpus(ctx, "a100", count=1)
    with pytest.raises(InvalidInputError, match="not both and not neither"):
        service.assign_gpus(ctx, "a100", gpus=["node-a:0"], count=1)
    with pytest.raises(NotFoundError, match="GPU 'node-a:9' not found"):
        service.assign_gpus(ctx, "default", gpus=["node-a:9"])
    with pytest.raises(NotFoundError, match="pool 'nope' not found"):
        service.assign_gpus(ctx, "nope", count=1)
    with pytest.raises(NotFoundError, match="trainyard group create nope"):
        service.create_pool(ctx, "p2", V100, group="nope")
    with pytest.raises(ConflictError, match="already exists"):
        service.create_pool(ctx, "a100", A100)
    with pytest.raises(InvalidInputError, match="pool name 'Bad_Name' is invalid"):
        service.create_pool(ctx, "Bad_Name", A100)
    service.create_group(ctx, "nlp")
    projects_service.create_project(ctx, "bert", group="nlp")
    service.assign_pool_group(ctx, "a100", "nlp")
    with pytest.raises(ConflictError, match=r"still has projects bert and pools a100"):
        service.delete_group(ctx, "nlp")
    service.set_project_group(ctx, "bert", "default")
    service.delete_pool(ctx, "a100")
    service.delete_group(ctx, "nlp")
    assert [g.name for g in service.list_groups(ctx)] == ["default"]


def test_runs_draw_on_their_groups_pools(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 3, V100)
    service.create_group(ctx, "vision")
    service.create_pool(ctx, "vision-gpus", V100, group="vision")
    service.assign_gpus(ctx, "vision-gpus", count=2)
    projects_service.create_project(ctx, "cv", group="vision")
    # The vision project sees 2 GPUs; the default project only the 1 left in the default pool.
    vision = runs_service.submit_run(ctx, "cv", manifest=gpu_task(gpus=2))
    with pytest.raises(UnsupportedError, match=r"no node has more than 1 in pool 'default'"):
        runs_service.submit_run(ctx, "default", manifest=gpu_task(gpus=2))
    default = runs_service.submit_run(ctx, "default", manifest=gpu_task(gpus=1))
    assert sorted(_pass(ctx)) == [vision.id, default.id]
    pools = {p.name: p for p in service.list_pools(ctx)}
    assert (pools["vision-gpus"].free, pools["default"].free) == (0, 0)
    placed = runs_service.get_run(ctx, vision.id).placements[0].gpus
    assert set(placed) == set(pools["vision-gpus"].gpus)


# -- the queue ------------------------------------------------------------------------------


def test_gang_placement_and_queue_reason(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 4, V100)
    first = runs_service.submit_run(ctx, "default", manifest=gpu_task("a", gpus=3))
    assert _pass(ctx) == [first.id]
    # Two replicas of 1 GPU: one would fit, both do not -> nothing is placed.
    pair = runs_service.submit_run(ctx, "default", manifest=gpu_task("b", gpus=1, replicas=2))
    behind = runs_service.submit_run(ctx, "default", manifest=gpu_task("c", gpus=4))
    assert _pass(ctx) == []
    run = runs_service.get_run(ctx, pair.id)
    assert run.status is RunStatus.QUEUED and run.placements == []
    assert run.reason == f"waiting for 2 × {V100} in pool 'default' (1 free, 0 runs ahead)"
    assert run.queue_position == 1
    assert runs_service.get_run(ctx, behind.id).reason.endswith("(1 free, 1 run ahead)")
    queue = service.list_queue(ctx)
    assert [(q.position, q.run_id, q.gpus) for q in queue] == [(1, pair.id, 2), (2, behind.id, 4)]
    assert "waiting for 2 × " in queue[0].reason
    # The waiting reason is an event, once.
    waiting = [e for e in runs_service.list_events(ctx, pair.id) if e.reason == service.WAITING]
    assert len(waiting) == 1
    _pass(ctx)
    assert (
        len([e for e in runs_service.list_events(ctx, pair.id) if e.reason == service.WAITING]) == 1
    )
    # The first run ends: its GPUs go back, and the pair is placed on two distinct GPUs.
    runs_service.stop_run(ctx, first.id)
    _finish(ctx, first.id)
    assert _pass(ctx) == [pair.id]
    gpus = [p.gpus for p in runs_service.get_run(ctx, pair.id).placements]
    assert [len(g) for g in gpus] == [1, 1] and gpus[0] != gpus[1]


def _finish(ctx: ServiceContext, run_id: int) -> None:
    """End a run the way the reconciler would (it was never launched)."""
    with ctx.db.write() as session:
        row = runs_service.load_run(session, run_id, lock=True)
        if RunStatus(row.status) is RunStatus.STARTING:
            runs_service.transition(session, row, RunStatus.STOPPING, "stop requested")
        runs_service.transition(session, row, RunStatus.STOPPED, "stopped")


def test_priority_then_fifo(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 1, V100)
    holder = runs_service.submit_run(ctx, "default", manifest=gpu_task("hold"))
    assert _pass(ctx) == [holder.id]
    low = runs_service.submit_run(ctx, "default", manifest=gpu_task("low"))
    high = runs_service.submit_run(ctx, "default", manifest=gpu_task("high"), priority=10)
    mid = runs_service.submit_run(ctx, "default", manifest=gpu_task("mid"), priority=10)
    assert [q.run_id for q in service.list_queue(ctx)] == [high.id, mid.id, low.id]
    _finish(ctx, holder.id)
    assert _pass(ctx) == [high.id]
    with pytest.raises(InvalidInputError, match="priority 5000 is out of range"):
        runs_service.submit_run(ctx, "default", manifest=gpu_task(), priority=5000)


def test_bounded_backfill(ctx: ServiceContext) -> None:
    """A big run that cannot fit lets at most ``backfill_limit`` smaller ones pass it."""
    ctx.settings.scheduler.backfill_limit = 2
    service.simulate_gpus(ctx, "node-a", 4, V100)
    holder = runs_service.submit_run(ctx, "default", manifest=gpu_task("hold", gpus=1))
    assert _pass(ctx) == [holder.id]
    big = runs_service.submit_run(ctx, "default", manifest=gpu_task("big", gpus=4))
    small = [
        runs_service.submit_run(ctx, "default", manifest=gpu_task(f"s{i}", gpus=1)).id
        for i in range(3)
    ]
    cpu_only = runs_service.submit_run(ctx, "default", manifest=manifest("cpu", "sleep 60"))
    assert _pass(ctx) == [small[0], small[1], cpu_only.id]
    held = runs_service.get_run(ctx, small[2])
    assert held.reason.startswith(
        "held behind default/big#1, which runs behind it have overtaken 2 times"
    )
    for run_id in (holder.id, small[0], small[1]):
        _finish(ctx, run_id)
    assert _pass(ctx) == [big.id]


def test_timeout_ends_a_queued_run(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 1, V100)
    holder = runs_service.submit_run(ctx, "default", manifest=gpu_task("hold"))
    assert _pass(ctx) == [holder.id]
    waiting = runs_service.submit_run(ctx, "default", manifest="timeout: 300\n" + gpu_task("wait"))
    _pass(ctx)
    assert _status(ctx, waiting.id) is RunStatus.QUEUED
    with ctx.db.write() as session:  # as if it had been submitted 301 s ago
        session.execute(
            update(RunRow)
            .where(RunRow.id == waiting.id)
            .values(created_at=now() - timedelta(seconds=301))
        )
    _pass(ctx)
    run = runs_service.get_run(ctx, waiting.id)
    assert run.status is RunStatus.ERROR
    assert run.reason == f"no resources within 300 s (waiting for 1 × {V100} in pool 'default')"
    assert run.placements == []


def test_start_immediately_shares_gpus(ctx: ServiceContext) -> None:
    service.simulate_gpus(ctx, "node-a", 2, V100)
    holder = runs_service.submit_run(ctx, "default", manifest=gpu_task("hold", gpus=2))
    assert _pass(ctx) == [holder.id]
    queued = runs_service.submit_run(ctx, "default", manifest=gpu_task("q"))
    now_run = runs_service.submit_run(
        ctx, "default", manifest=gpu_task("now"), start_immediately=True
    )
    assert _pass(ctx) == [now_run.id]
    run = runs_service.get_run(ctx, now_run.id)
    assert run.start_immediately and run.placements[0].shared
    assert "shared: started immediately" in run.reason
    node = service.get_node(ctx, "node-a")
    users = [[(u.run, u.shared) for u in g.used_by] for g in node.gpus]
    assert sorted(map(len, users)) == [1, 2]
    assert ("default/now#1", True) in users[0] + users[1]
    # Shared use does not make the GPU less available to the queue: still 0 free.
    assert _status(ctx, queued.id) is RunStatus.QUEUED
    assert {p.name: p.free for p in service.list_pools(ctx)} == {"default": 0}
    # Still refused when the GPUs do not exist at all.
    with pytest.raises(UnsupportedError, match="no node has more than 2"):
        runs_service.submit_run(ctx, "default", manifest=gpu_task(gpus=3), start_immediately=True)


def test_cpu_and_memory_requests_are_reserved(ctx: ServiceContext) -> None:
    extra = "    resources:\n      requests:\n        cpu: 3\n        memory: 1Gi\n"
    runs = [
        runs_service.submit_run(ctx, "default", manifest=manifest(f"c{i}", "sleep 9", extra=extra))
        for i in range(3)
    ]
    assert _pass(ctx) == [runs[0].id, runs[1].id]  # 8 CPUs: two runs of 3 fit
    (node,) = service.list_nodes(ctx)
    assert (node.reserved_cpu_millis, node.reserved_memory_bytes) == (6000, 2 << 30)
    assert runs_service.get_run(ctx, runs[2].id).reason.startswith(
        "waiting for CPU: replica worker-0 needs 3 free on one node"
    )
    with pytest.raises(UnsupportedError, match="requests 64 CPU"):
        runs_service.submit_run(
            ctx, "default", manifest=manifest("huge", "x", extra=extra.replace("cpu: 3", "cpu: 64"))
        )
    _finish(ctx, runs[0].id)
    assert _pass(ctx) == [runs[2].id]


def test_database_refuses_a_second_exclusive_holder(ctx: ServiceContext) -> None:
    """Whatever a server believes, two exclusive allocations of one GPU cannot coexist."""
    from sqlalchemy.exc import IntegrityError

    service.simulate_gpus(ctx, "node-a", 1, V100)
    a = runs_service.submit_run(ctx, "default", manifest=gpu_task("a"))
    b = runs_service.submit_run(ctx, "default", manifest=gpu_task("b"))
    assert _pass(ctx) == [a.id]
    with ctx.db.write() as session:
        gpu_id = session.execute(select(GpuAllocationRow.gpu_id)).scalar_one()
    with pytest.raises(IntegrityError), ctx.db.write() as session:
        session.add(GpuAllocationRow(gpu_id=gpu_id, run_id=b.id, replica="worker-0", shared=False))
        session.flush()
    with ctx.db.read() as session:
        assert session.execute(select(func.count(GpuAllocationRow.id))).scalar_one() == 1


def test_concurrent_passes_never_double_allocate(ctx: ServiceContext) -> None:
    """Four threads running passes over 30 queued runs for 3 GPUs: 3 admitted, once each."""
    service.simulate_gpus(ctx, "node-a", 3, V100)
    ids = [
        runs_service.submit_run(ctx, "default", manifest=gpu_task(f"r{i}")).id for i in range(30)
    ]
    admitted: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                admitted.extend(_pass(ctx))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(admitted) == ids[:3]
    starting = [i for i in ids if _status(ctx, i) is RunStatus.STARTING]
    assert starting == ids[:3]


# -- invariants under random moves ----------------------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("simulate"),
            st.sampled_from(["n1", "n2"]),
            st.integers(0, 4),
            st.sampled_from([V100, A100]),
        ),
        st.tuples(
            st.just("pool"),
            st.sampled_from(["p1", "p2", "p3"]),
            st.sampled_from([V100, A100]),
            st.sampled_from(["default", "g1"]),
        ),
        st.tuples(
            st.just("move"),
            st.sampled_from(["default", "p1", "p2", "p3"]),
            st.integers(1, 3),
            st.just(""),
        ),
        st.tuples(
            st.just("move-named"),
            st.sampled_from(["default", "p1", "p2", "p3"]),
            st.sampled_from(["n1:0", "n1:1", "n2:0", "n2:3"]),
            st.just(""),
        ),
        st.tuples(
            st.just("delete-pool"),
            st.sampled_from(["default", "p1", "p2", "p3"]),
            st.just(0),
            st.just(""),
        ),
        st.tuples(
            st.just("assign-group"),
            st.sampled_from(["default", "p1", "p2", "p3"]),
            st.sampled_from(["default", "g1"]),
            st.just(""),
        ),
    ),
    max_size=25,
)


def _check_invariants(ctx: ServiceContext) -> None:
    nodes = service.list_nodes(ctx)
    pools = service.list_pools(ctx)
    cluster = sorted(g.uuid for n in nodes for g in n.gpus)
    in_pools = sorted(u for p in pools for u in p.gpus)
    assert in_pools == cluster  # every GPU in exactly one pool
    assert sum(p.total for p in pools) == sum(1 for n in nodes for g in n.gpus if g.present)
    by_uuid = {g.uuid: g for n in nodes for g in n.gpus}
    for p in pools:
        if p.default:
            assert (p.name, p.group) == ("default", "default")
        else:
            assert all(by_uuid[u].product.lower().startswith(p.gpu_type.lower()) for u in p.gpus)
    assert any(p.default for p in pools)
    assert any(g.default for g in service.list_groups(ctx))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_pool_invariants_under_random_moves(
    tmp_path: Path, make_settings: Any, ops: list[Any]
) -> None:
    from trainyard.executors.local import LocalExecutor

    home = tmp_path / f"h{abs(hash(tuple(ops)))}"
    db = Database(f"sqlite:///{home}.db")
    try:
        upgrade(db)
        ensure_default_project(db)
        for node in ("n1", "n2"):
            service.register_node(db, node, cpu_millis=1000, memory_bytes=1 << 30, gpus=[])
        ctx = ServiceContext(
            settings=make_settings(home),
            db=db,
            executor=LocalExecutor(home / "runs"),
            server_url="http://127.0.0.1:9",
            node_name="n1",
        )
        service.create_group(ctx, "g1")
        for op, a, b, c in ops:
            try:
                if op == "simulate":
                    service.simulate_gpus(ctx, a, b, c)
                elif op == "pool":
                    service.create_pool(ctx, a, b, group=c)
                elif op == "move":
                    service.assign_gpus(ctx, a, count=b)
                elif op == "move-named":
                    service.assign_gpus(ctx, a, gpus=[b])
                elif op == "delete-pool":
                    service.delete_pool(ctx, a)
                else:
                    service.assign_pool_group(ctx, a, b)
            except UserError:
                pass  # refused moves must leave everything as it was
            _check_invariants(ctx)
    finally:
        db.dispose()
