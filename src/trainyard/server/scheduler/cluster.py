"""The cluster as the scheduler sees it, read from the database, and the submit-time check
that a run could ever be placed on it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import select

from trainyard.core.errors import UnsupportedError
from trainyard.core.models import TaskSpec
from trainyard.core.scheduling import gpu_type_matches, replica_demands
from trainyard.server.scheduler.placement import (
    Candidate,
    Cluster,
    GpuState,
    NodeState,
    PoolState,
    infeasible_reason,
)
from trainyard.server.store import Session
from trainyard.server.store import scheduling as store
from trainyard.server.store.tables import GpuAllocationRow, PoolRow, ProjectRow, RunRow

__all__ = [
    "check_schedulable",
    "demand_columns",
    "free_matching",
    "full_reason",
    "load_cluster",
    "queue_detail",
]


def load_cluster(
    session: Session,
    nodes: Collection[str] | None,
    *,
    gpus: bool = True,
    reservations: bool = True,
) -> tuple[Cluster, dict[str, int]]:
    """The cluster as it is now (nodes limited to ``nodes`` when given) and GPU ids by
    UUID. ``gpus=False`` leaves GPUs and pools out (for runs that ask for none: fewer
    queries on the submit → running path); ``reservations=False`` ignores what is held
    (for capacity checks)."""
    reserved = store.active_reservations(session) if reservations else {}
    node_states = []
    for n in store.list_nodes(session):
        if nodes is not None and n.name not in nodes:
            continue
        cpu, mem = reserved.get(n.name, (0, 0))
        node_states.append(
            NodeState(
                n.name, n.cpu_millis - cpu, n.memory_bytes - mem, n.cpu_millis, n.memory_bytes
            )
        )
    if not gpus:
        return Cluster(node_states, [], []), {}
    pools = [PoolState(p.name, p.group.name, p.gpu_type) for p in store.list_pools(session)]
    exclusive: set[int] = set()
    shared: dict[int, int] = {}
    for gpu_id, is_shared in session.execute(
        select(GpuAllocationRow.gpu_id, GpuAllocationRow.shared)
    ):
        if is_shared:
            shared[gpu_id] = shared.get(gpu_id, 0) + 1
        else:
            exclusive.add(gpu_id)
    gpu_states = []
    ids: dict[str, int] = {}
    for g in store.list_gpus(session):
        ids[g.uuid] = g.id
        if g.present:
            gpu_states.append(
                GpuState(
                    g.uuid,
                    g.node.name,
                    g.product,
                    g.pool.name,
                    g.index,
                    held=g.id in exclusive,
                    shared_users=shared.get(g.id, 0),
                )
            )
    return Cluster(node_states, pools, gpu_states), ids


def check_schedulable(session: Session, project: ProjectRow, spec: TaskSpec) -> None:
    """UnsupportedError when no placement of ``spec`` could ever exist on the cluster as it
    is (too many GPUs of a type for any node of the group's pools, or more CPU or memory than
    any node has), rather than queueing it forever."""
    demands = tuple(replica_demands(spec))
    wants_gpus = any(d.gpus for d in demands)
    cluster, _ = load_cluster(session, None, gpus=wants_gpus, reservations=False)
    reason = infeasible_reason(cluster, Candidate(0, project.group.name, demands))
    if reason is None:
        return
    hint = (
        "; give the group GPUs (`trainyard pool assign-gpus`), simulate some for a test "
        "(`trainyard node simulate-gpus --count N --type TYPE`), or lower the request"
        if any(d.gpus for d in demands)
        else ""
    )
    raise UnsupportedError(
        f"task '{spec.name}' cannot run in project '{project.name}': {reason}{hint}",
        fields={"project": project.name, "group": project.group.name, "reason": reason},
    )


def demand_columns(spec: TaskSpec) -> dict[str, Any]:
    """The run columns the scheduler reads instead of the spec."""
    demands = replica_demands(spec)
    return {
        "demand": [list(d) for d in demands],
        "gpus": sum(d.gpus for d in demands),
        "timeout_seconds": spec.timeout_seconds,
    }


def free_matching(session: Session, group_id: int, demand: list[Any]) -> int:
    gpu_type = next((d[4] for d in demand if d[3] and d[4]), None)
    held = {
        gpu_id
        for gpu_id, shared in session.execute(
            select(GpuAllocationRow.gpu_id, GpuAllocationRow.shared)
        )
        if not shared
    }
    pool_ids = set(session.scalars(select(PoolRow.id).where(PoolRow.group_id == group_id)))
    return sum(
        1
        for g in store.list_gpus(session)
        if g.pool_id in pool_ids
        and g.present
        and g.id not in held
        and gpu_type_matches(g.product, gpu_type)
    )


def full_reason(reason: str, ahead: int, free: Callable[[], int] | None) -> str:
    """A queued run's stored reason with what changes all the time: "(1 free, 3 runs
    ahead)" — GPUs of its type free in its group's pools (``free`` is only called for a
    reason about GPUs) and queued runs ahead of it in its group."""
    runs = f"{ahead} run{'s' if ahead != 1 else ''} ahead"
    if not reason:
        return f"waiting for the next scheduling pass ({runs})"
    if free is not None and " × " in reason:
        return f"{reason} ({free()} free, {runs})"
    return f"{reason} ({runs})"


def queue_detail(session: Session, row: RunRow) -> tuple[int, str]:
    """(1-based queue position, the full queue reason) of a queued run."""
    group_id = row.project.group_id
    in_group, total = store.count_ahead(session, row, group_id)
    demand = list(row.demand or [])
    return total + 1, full_reason(
        row.reason, in_group, lambda: free_matching(session, group_id, demand)
    )
