"""Scheduling use cases: nodes and their GPUs, groups, pools, the queue, and the scheduling
pass that admits queued runs (gang placement, see :mod:`trainyard.server.scheduler.placement`).

Invariants kept here (and checked by property-based tests):

- every GPU is in exactly one pool; the *default* pool holds every GPU not in another pool,
  so moving GPUs between pools never changes the total;
- a non-default pool holds GPUs of its one type only;
- the default group and the default pool always exist and cannot be deleted; the default
  pool always belongs to the default group;
- a GPU is held exclusively by at most one replica (the database refuses a second one with
  a partial unique index, whatever the servers believe).

A scheduling pass runs in one write transaction holding the scheduler row lock, so passes of
several servers sharing a PostgreSQL database never interleave: a queued run is admitted (and
its GPUs allocated) exactly once. Each server only places runs on the nodes its executor can
launch on (the local executor: this machine).
"""

from __future__ import annotations

import logging
import math
import re
import socket
import uuid as uuidlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

import psutil
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError
from trainyard.core.models import Placement, TaskSpec
from trainyard.core.quantity import format_cpu, format_memory
from trainyard.core.scheduling import (
    DEFAULT_GROUP,
    Gpu,
    GpuUse,
    Group,
    Node,
    Pool,
    QueueEntry,
    ReplicaDemand,
    gpu_type_matches,
    normalize_gpu_type,
)
from trainyard.core.settings import Settings
from trainyard.core.status import RunStatus
from trainyard.executors.nvml import DiscoveredGpu, discover_gpus
from trainyard.server.scheduler.cluster import (
    demand_columns,
    free_matching,
    full_reason,
    load_cluster,
)
from trainyard.server.scheduler.placement import Candidate, plan
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project, validate_name
from trainyard.server.services.runs import load_run, transition
from trainyard.server.store import Database, Session
from trainyard.server.store import events as event_store
from trainyard.server.store import scheduling as store
from trainyard.server.store.tables import (
    DEFAULT_GROUP_ID,
    DEFAULT_POOL_ID,
    GpuRow,
    GroupRow,
    NodeRow,
    PoolRow,
    ProjectRow,
    RunRow,
    utcnow,
)

__all__ = [
    "WAITING",
    "assign_gpus",
    "assign_pool_group",
    "create_group",
    "create_pool",
    "delete_group",
    "delete_pool",
    "get_node",
    "gpu_product_name",
    "heartbeat",
    "list_groups",
    "list_nodes",
    "list_pools",
    "list_queue",
    "pass_needed",
    "register_local_node",
    "register_node",
    "schedule_pass",
    "set_project_group",
    "simulate_gpus",
]

log = logging.getLogger(__name__)

WAITING = "waiting for resources"
_SIM_NAMESPACE = uuidlib.UUID("5b1f6c1e-7a0e-4d8e-9c53-7472616e7964")
_MAX_SIMULATED = 1024


_PRODUCT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+()-]{0,127}$")


def gpu_product_name(gpu_type: str) -> str:
    """A GPU type as trainyard writes it (spaces as dashes), or InvalidInputError. Product
    names are letters, digits and ``. _ + - ( )``, as NVML reports them
    ("Tesla V100-SXM2-32GB" -> "Tesla-V100-SXM2-32GB"), at most 128 characters."""
    product = "-".join(gpu_type.split())
    if not _PRODUCT.match(product):
        raise InvalidInputError(
            f"GPU type {gpu_type!r} is invalid: use the product name as `trainyard node ls` "
            "shows it (letters, digits and . _ + - ( ), at most 128 characters), e.g. "
            "Tesla-V100-SXM3-32GB",
            fields={"type": gpu_type},
        )
    return product


# -- nodes ---------------------------------------------------------------------------------


def register_node(
    db: Database,
    name: str,
    *,
    cpu_millis: int,
    memory_bytes: int,
    gpus: Collection[DiscoveredGpu],
) -> None:
    """Insert or refresh the node ``name`` with what was found on it. New GPUs join the
    default pool; known ones keep their pool; real GPUs no longer found are marked absent
    (kept: a run may still hold one) and come back when found again.

    Several servers of one machine may start at once and register the same node: the one
    that loses the race on a unique key (node name, GPU UUID) tries again and finds the rows.
    """
    for attempt in range(3):
        try:
            _register_node(db, name, cpu_millis, memory_bytes, gpus)
            return
        except IntegrityError:
            if attempt == 2:
                raise
            log.info("node %s: registered concurrently by another server; retrying", name)


def _register_node(
    db: Database,
    name: str,
    cpu_millis: int,
    memory_bytes: int,
    gpus: Collection[DiscoveredGpu],
) -> None:
    now = utcnow()
    with db.write() as session:
        node = store.get_node(session, name)
        if node is None:
            node = NodeRow(name=name, registered_at=now, cpu_millis=0, memory_bytes=0)
            session.add(node)
        node.cpu_millis = cpu_millis
        node.memory_bytes = memory_bytes
        node.heartbeat_at = now
        session.flush()
        existing = {g.uuid: g for g in store.list_gpus(session, node_id=node.id)}
        found = {g.uuid for g in gpus}
        # Indexes of real GPUs come from NVML; simulated ones follow them, so make room.
        for gpu in existing.values():
            if not gpu.simulated and gpu.uuid not in found:
                gpu.present = False
        for d in gpus:
            row = existing.get(d.uuid)
            clash = next(
                (g for g in existing.values() if g.index == d.index and g.uuid != d.uuid), None
            )
            if clash is not None:
                clash.index = _free_index(existing.values(), start=1000 + clash.index)
                session.flush()
            if row is None:
                row = GpuRow(
                    node_id=node.id,
                    uuid=d.uuid,
                    simulated=False,
                    pool_id=DEFAULT_POOL_ID,
                    index=d.index,
                    product=d.product,
                    memory_bytes=d.memory_bytes,
                )
                session.add(row)
                existing[d.uuid] = row
            row.index = d.index
            row.product = d.product
            row.memory_bytes = d.memory_bytes
            row.present = True
            session.flush()


def _free_index(gpus: Collection[GpuRow], start: int) -> int:
    used = {g.index for g in gpus}
    index = start
    while index in used:
        index += 1
    return index


def register_local_node(db: Database, settings: Settings) -> str:
    """Register this machine (``settings.node`` overrides what is discovered); its name."""
    name = settings.node.name or socket.gethostname() or "localhost"
    cpus = settings.node.cpus if settings.node.cpus is not None else (psutil.cpu_count() or 1)
    memory = settings.node.memory_bytes or psutil.virtual_memory().total
    gpus = discover_gpus() if settings.node.discover_gpus else []
    register_node(db, name, cpu_millis=round(cpus * 1000), memory_bytes=memory, gpus=gpus)
    return name


def heartbeat(db: Database, name: str) -> None:
    with db.write() as session:
        session.execute(update(NodeRow).where(NodeRow.name == name).values(heartbeat_at=utcnow()))


def _load_node(session: Session, name: str) -> NodeRow:
    node = store.get_node(session, name)
    if node is None:
        known = ", ".join(n.name for n in store.list_nodes(session)) or "none"
        raise NotFoundError(
            f"node '{name}' not found (known nodes: {known}); `trainyard node ls` lists them",
            fields={"node": name},
        )
    return node


def simulate_gpus(
    ctx: ServiceContext,
    node_name: str,
    count: int,
    gpu_type: str,
    memory_bytes: int = 32 * 1024**3,
) -> Node:
    """Give ``node_name`` exactly ``count`` simulated GPUs of ``gpu_type`` (0 removes them).

    Simulated GPUs are scheduled like real ones (pools, gang placement, CUDA_VISIBLE_DEVICES
    holds their made-up UUIDs) and shown as simulated everywhere. Their UUIDs depend only on
    the node and index, so simulating again keeps pool assignments. ConflictError when a GPU
    that would go away or change type is held by a run.
    """
    if not 0 <= count <= _MAX_SIMULATED:
        raise InvalidInputError(
            f"count {count} is out of range: simulate between 0 and {_MAX_SIMULATED} GPUs",
            fields={"count": count},
        )
    product = gpu_product_name(gpu_type)
    if memory_bytes < 0:
        raise InvalidInputError("memory must not be negative", fields={"memory": memory_bytes})
    with ctx.db.write() as session:
        node = _load_node(session, node_name)
        gpus = store.list_gpus(session, node_id=node.id)
        real = [g for g in gpus if not g.simulated]
        simulated = sorted((g for g in gpus if g.simulated), key=lambda g: g.index)
        held = store.allocations_by_gpu(session)
        base = max((g.index for g in real), default=-1) + 1
        wanted: dict[str, int] = {}
        for i in range(count):
            uid = "GPU-sim-" + str(uuidlib.uuid5(_SIM_NAMESPACE, f"{node.name}/{i}"))
            wanted[uid] = base + i
        for g in simulated:
            goes = g.uuid not in wanted or normalize_gpu_type(g.product) != normalize_gpu_type(
                product
            )
            if goes and g.id in held:
                users = ", ".join(sorted({ref for _, ref, _, _ in held[g.id]}))
                raise ConflictError(
                    f"simulated GPU {g.index} of node '{node.name}' is held by {users}; stop "
                    "those runs first, then change the simulated GPUs",
                    fields={"node": node.name, "gpu": g.uuid, "runs": users},
                )
        by_uuid = {g.uuid: g for g in simulated}
        for g in simulated:
            if g.uuid not in wanted:
                session.delete(g)
        session.flush()
        for uid, index in wanted.items():
            row = by_uuid.get(uid)
            if row is None:
                row = GpuRow(
                    node_id=node.id, uuid=uid, simulated=True, pool_id=DEFAULT_POOL_ID, index=index
                )
                session.add(row)
            if normalize_gpu_type(row.product or "") != normalize_gpu_type(product):
                row.pool_id = DEFAULT_POOL_ID  # its old pool held another type
            row.index = index
            row.product = product
            row.memory_bytes = memory_bytes
            row.present = True
        session.flush()
    ctx.wake_launcher()
    return get_node(ctx, node_name)


def _gpu(row: GpuRow, held: dict[int, list[tuple[int, str, str, bool]]]) -> Gpu:
    return Gpu(
        uuid=row.uuid,
        index=row.index,
        product=row.product,
        memory_bytes=row.memory_bytes,
        node=row.node.name,
        pool=row.pool.name,
        simulated=row.simulated,
        present=row.present,
        used_by=[
            GpuUse(run_id=run_id, run=ref, replica=replica, shared=shared)
            for run_id, ref, replica, shared in held.get(row.id, [])
        ],
    )


def _nodes(session: Session) -> list[Node]:
    held = store.allocations_by_gpu(session)
    reserved = store.active_reservations(session)
    gpus = store.list_gpus(session)
    out = []
    for node in store.list_nodes(session):
        cpu, mem = reserved.get(node.name, (0, 0))
        out.append(
            Node(
                name=node.name,
                cpu_millis=node.cpu_millis,
                memory_bytes=node.memory_bytes,
                reserved_cpu_millis=cpu,
                reserved_memory_bytes=mem,
                registered_at=node.registered_at,
                heartbeat_at=node.heartbeat_at,
                gpus=[_gpu(g, held) for g in gpus if g.node_id == node.id],
            )
        )
    return out


def list_nodes(ctx: ServiceContext) -> list[Node]:
    with ctx.db.read() as session:
        return _nodes(session)


def get_node(ctx: ServiceContext, name: str) -> Node:
    with ctx.db.read() as session:
        _load_node(session, name)
        return next(n for n in _nodes(session) if n.name == name)


# -- groups ---------------------------------------------------------------------------------


def _load_group(session: Session, name: str) -> GroupRow:
    row = store.get_group(session, name)
    if row is None:
        raise NotFoundError(
            f"group '{name}' not found — create it with `trainyard group create {name}`",
            fields={"group": name},
        )
    return row


def _groups(session: Session) -> list[Group]:
    pools = store.list_pools(session)
    projects = list(session.scalars(select(ProjectRow).order_by(ProjectRow.name)))
    return [
        Group(
            name=g.name,
            default=g.is_default,
            pools=[p.name for p in pools if p.group_id == g.id],
            projects=[p.name for p in projects if p.group_id == g.id],
        )
        for g in store.list_groups(session)
    ]


def list_groups(ctx: ServiceContext) -> list[Group]:
    with ctx.db.read() as session:
        return _groups(session)


def create_group(ctx: ServiceContext, name: str) -> Group:
    validate_name("group", name)
    with ctx.db.write() as session:
        if store.get_group(session, name) is not None:
            raise ConflictError(f"group '{name}' already exists", fields={"group": name})
        session.add(GroupRow(name=name, is_default=False, created_at=utcnow()))
        session.flush()
        return next(g for g in _groups(session) if g.name == name)


def delete_group(ctx: ServiceContext, name: str) -> None:
    with ctx.db.write() as session:
        row = _load_group(session, name)
        if row.is_default:
            raise ConflictError(
                "the default group cannot be deleted: it uses the default pool, which holds "
                "every GPU not in another pool",
                fields={"group": name},
            )
        group = next(g for g in _groups(session) if g.name == name)
        if group.pools or group.projects:
            what = []
            if group.projects:
                what.append("projects " + ", ".join(group.projects))
            if group.pools:
                what.append("pools " + ", ".join(group.pools))
            raise ConflictError(
                f"group '{name}' still has {' and '.join(what)}; move them to another group "
                "(`trainyard project set-group`, `trainyard pool assign-group`) first",
                fields={"group": name, "projects": group.projects, "pools": group.pools},
            )
        session.delete(row)


def set_project_group(ctx: ServiceContext, project: str, group: str) -> None:
    """Move ``project`` to ``group``: its queued and future runs draw on that group's pools
    (running ones keep what they hold)."""
    with ctx.db.write() as session:
        row = load_project(session, project)
        row.group_id = _load_group(session, group).id
    ctx.wake_launcher()


# -- pools ----------------------------------------------------------------------------------


def _load_pool(session: Session, name: str) -> PoolRow:
    row = store.get_pool(session, name)
    if row is None:
        known = ", ".join(p.name for p in store.list_pools(session))
        raise NotFoundError(
            f"pool '{name}' not found (pools: {known}); create it with "
            f"`trainyard pool create {name} --type GPU_TYPE`",
            fields={"pool": name},
        )
    return row


def _pools(session: Session) -> list[Pool]:
    held = store.allocations_by_gpu(session)
    gpus = store.list_gpus(session)
    out = []
    for p in store.list_pools(session):
        mine = [g for g in gpus if g.pool_id == p.id]
        present = [g for g in mine if g.present]
        out.append(
            Pool(
                name=p.name,
                gpu_type=p.gpu_type,
                group=p.group.name,
                default=p.is_default,
                gpus=[g.uuid for g in mine],
                total=len(present),
                free=sum(1 for g in present if not any(not use[3] for use in held.get(g.id, []))),
                simulated=sum(1 for g in present if g.simulated),
            )
        )
    return out


def list_pools(ctx: ServiceContext) -> list[Pool]:
    with ctx.db.read() as session:
        return _pools(session)


def create_pool(ctx: ServiceContext, name: str, gpu_type: str, group: str = DEFAULT_GROUP) -> Pool:
    validate_name("pool", name)
    product = gpu_product_name(gpu_type)
    with ctx.db.write() as session:
        if store.get_pool(session, name) is not None:
            raise ConflictError(f"pool '{name}' already exists", fields={"pool": name})
        group_row = _load_group(session, group)
        session.add(
            PoolRow(
                name=name,
                gpu_type=product,
                group_id=group_row.id,
                is_default=False,
                created_at=utcnow(),
            )
        )
        session.flush()
        return next(p for p in _pools(session) if p.name == name)


def delete_pool(ctx: ServiceContext, name: str) -> None:
    """Delete a pool; its GPUs go back to the default pool."""
    with ctx.db.write() as session:
        row = _load_pool(session, name)
        if row.is_default:
            raise ConflictError(
                "the default pool cannot be deleted: it holds every GPU not in another pool",
                fields={"pool": name},
            )
        session.execute(
            update(GpuRow).where(GpuRow.pool_id == row.id).values(pool_id=DEFAULT_POOL_ID)
        )
        session.delete(row)
    ctx.wake_launcher()


def assign_gpus(
    ctx: ServiceContext,
    pool: str,
    *,
    gpus: Collection[str] = (),
    count: int | None = None,
    node: str | None = None,
) -> Pool:
    """Move GPUs into ``pool``: the ones named (UUID, or ``NODE:INDEX``), or ``count`` GPUs of
    the pool's type taken from the default pool (free ones first; ``node`` limits where).
    Moving GPUs into the default pool takes them out of their pool. The cluster's total never
    changes: a GPU is always in exactly one pool. Runs holding a moved GPU keep it."""
    if (count is None) == (not gpus):
        raise InvalidInputError(
            "give either GPUs (UUIDs or NODE:INDEX) or a count, not both and not neither",
            fields={"gpus": list(gpus), "count": count},
        )
    if count is not None and count <= 0:
        raise InvalidInputError(f"count must be positive, not {count}", fields={"count": count})
    with ctx.db.write() as session:
        target = _load_pool(session, pool)
        all_gpus = store.list_gpus(session)
        if count is not None:
            if target.is_default:
                raise InvalidInputError(
                    "to move GPUs back to the default pool, name them (UUID or NODE:INDEX) "
                    "or delete their pool",
                    fields={"pool": pool},
                )
            held = store.allocations_by_gpu(session)
            candidates = [
                g
                for g in all_gpus
                if g.pool_id == DEFAULT_POOL_ID
                and g.present
                and (node is None or g.node.name == node)
                and gpu_type_matches(g.product, target.gpu_type)
            ]
            candidates.sort(key=lambda g: (g.id in held, g.node.name, g.index))
            if len(candidates) < count:
                where = f" on node '{node}'" if node else ""
                raise ConflictError(
                    f"the default pool has {len(candidates)} {target.gpu_type} GPU(s){where}, "
                    f"fewer than the {count} asked for pool '{pool}'",
                    fields={"pool": pool, "available": len(candidates), "count": count},
                )
            chosen = candidates[:count]
        else:
            chosen = [_find_gpu(all_gpus, ref) for ref in gpus]
            for g in chosen:
                if not target.is_default and not gpu_type_matches(g.product, target.gpu_type):
                    raise InvalidInputError(
                        f"GPU {g.node.name}:{g.index} is a {g.product}; pool '{pool}' holds "
                        f"{target.gpu_type} only",
                        fields={"gpu": g.uuid, "pool": pool, "type": target.gpu_type},
                    )
        for g in chosen:
            g.pool_id = target.id
        session.flush()
        result = next(p for p in _pools(session) if p.name == pool)
    ctx.wake_launcher()
    return result


def _find_gpu(gpus: list[GpuRow], ref: str) -> GpuRow:
    for g in gpus:
        if g.uuid == ref or f"{g.node.name}:{g.index}" == ref:
            return g
    raise NotFoundError(
        f"GPU '{ref}' not found: name a GPU by its UUID or as NODE:INDEX "
        "(`trainyard node ls` lists them)",
        fields={"gpu": ref},
    )


def assign_pool_group(ctx: ServiceContext, pool: str, group: str) -> Pool:
    with ctx.db.write() as session:
        row = _load_pool(session, pool)
        group_row = _load_group(session, group)
        if row.is_default and group_row.id != DEFAULT_GROUP_ID:
            raise ConflictError(
                "the default pool always belongs to the default group; create a pool for "
                f"group '{group}' and move GPUs into it instead",
                fields={"pool": pool, "group": group},
            )
        row.group = group_row
        session.flush()
        result = next(p for p in _pools(session) if p.name == pool)
    ctx.wake_launcher()
    return result


# -- submit-time checks -----------------------------------------------------------------


# -- the scheduling pass --------------------------------------------------------------------


def _candidate(row: store.QueuedRow) -> Candidate:
    return Candidate(
        run_id=row.id,
        group=row.group,
        demands=tuple(ReplicaDemand(*d) for d in row.demand),
        priority=row.priority,
        start_immediately=row.start_immediately,
        overtaken=row.overtaken,
        ref=row.ref,
    )


def _placed_text(placements: list[Placement]) -> str:
    nodes = sorted({p.node for p in placements})
    gpus = sum(len(p.gpus) for p in placements)
    text = "placed on " + ", ".join(nodes)
    if gpus:
        text += f" with {gpus} GPU" + ("s" if gpus > 1 else "")
        if any(p.shared for p in placements):
            text += " (shared: started immediately)"
    return text


def _placement_lines(placements: list[Placement], index: dict[str, str]) -> str:
    lines = []
    for p in placements:
        parts = [f"{p.replica} → {p.node}"]
        if p.gpus:
            parts.append("GPU " + ", ".join(index.get(u, u) for u in p.gpus))
        parts.append(f"cpu {format_cpu(p.cpu_millis)}, memory {format_memory(p.memory_bytes)}")
        lines.append(": ".join(parts[:2]) + (f" ({parts[2]})" if len(parts) > 2 else ""))
    return "\n".join(lines)


def _time_out(session: Session, row: store.QueuedRow, now: datetime) -> bool:
    if row.timeout_seconds is None:
        return False
    waited = (now - row.created_at).total_seconds()
    if waited < row.timeout_seconds:
        return False
    run = load_run(session, row.id, lock=True, light=True)
    if RunStatus(run.status) is not RunStatus.QUEUED:
        return True
    detail = f" ({row.reason})" if row.reason else ""
    transition(
        session, run, RunStatus.ERROR, f"no resources within {row.timeout_seconds} s{detail}"
    )
    return True


def pass_needed(ctx: ServiceContext, last: tuple[Any, ...] | None) -> tuple[bool, tuple[Any, ...]]:
    """Whether a scheduling pass could decide anything new since the one that saw ``last``
    (the :func:`~trainyard.server.store.scheduling.fingerprint` it left), and the current
    fingerprint. True as well when a queued run's timeout has passed. Costs a few aggregate
    queries, so a server polling an unchanged queue of thousands of runs stays idle."""
    with ctx.db.read() as session:
        current = store.fingerprint(session)
        if current != last:
            return True, current
        now = utcnow()
        due = any(
            (now - queued_at).total_seconds() >= timeout
            for queued_at, timeout in store.queue_deadlines(session)
        )
        return due, current


def schedule_pass(
    ctx: ServiceContext,
    by: str,
    nodes: Collection[str],
    *,
    limit: int | None = None,
    check_empty: bool = True,
) -> list[int]:
    """Admit what fits of the queue onto ``nodes`` (those this server launches on): runs go
    ``queued -> starting`` with their placements and GPU allocations, in one transaction.
    Returns the admitted run ids, already added to ``ctx.launching``; the caller launches
    them. Also ends runs whose queue ``timeout`` has passed, and records why the others wait.
    ``limit`` admits at most that many (the rest stay queued for the next pass).
    ``check_empty``: look for a queued run in a read transaction first, so an empty queue
    costs no write transaction (the launcher skips it right after a submission).
    """
    if check_empty:
        with ctx.db.read() as session:
            if (
                session.execute(
                    select(RunRow.id).where(RunRow.status == RunStatus.QUEUED.value).limit(1)
                ).first()
                is None
            ):
                return []
    admitted: list[int] = []
    try:
        with ctx.db.write() as session:
            store.lock_scheduler(session, by)
            now = utcnow()
            queued = [q for q in store.list_queued(session) if not _time_out(session, q, now)]
            if not queued:
                return []
            _fill_missing_demand(session, queued)
            cluster, gpu_ids = load_cluster(
                session, nodes, gpus=any(q.gpus or q.start_immediately for q in queued)
            )
            decided = plan(
                cluster,
                [_candidate(q) for q in queued],
                backfill_limit=ctx.settings.scheduler.backfill_limit,
            )
            gpu_index = (
                {g.uuid: f"{g.node.name}:{g.index}" for g in store.list_gpus(session)}
                if any(p.gpus for _, placements in decided.admitted for p in placements)
                else {}
            )
            for run_id, placements in decided.admitted:
                if limit is not None and len(admitted) >= limit:
                    break
                row = load_run(session, run_id, lock=True, light=True)
                if RunStatus(row.status) is not RunStatus.QUEUED:
                    continue
                store.insert_placements(session, run_id, placements)
                store.insert_allocations(session, run_id, placements, gpu_ids)
                row.claimed_by = by  # written with the status change below
                row.claimed_at = now
                transition(
                    session,
                    row,
                    RunStatus.STARTING,
                    f"launching on {ctx.executor.name}: {_placed_text(placements)}",
                    message=_placement_lines(placements, gpu_index),
                )
                ctx.launching.add(run_id)
                admitted.append(run_id)
            session.flush()
            if decided.overtaken:
                # ORM bulk UPDATE by primary key: one executemany, however many rows.
                session.execute(
                    update(RunRow),
                    [{"id": i, "overtaken": n} for i, n in decided.overtaken.items()],
                )
            by_id = {q.id: q for q in queued}
            changed = [
                (run_id, blocked.reason)
                for run_id, blocked in decided.blocked.items()
                if by_id[run_id].reason != blocked.reason
            ]
            if changed:
                session.execute(update(RunRow), [{"id": i, "reason": r} for i, r in changed])
                event_store.insert_events(
                    session, [(i, "info", WAITING, reason) for i, reason in changed], time=now
                )
    except IntegrityError:
        # Another holder of one of these GPUs: nothing of this pass was written.
        log.warning("scheduling pass conflicted on a GPU allocation; retrying", exc_info=True)
        for run_id in admitted:
            ctx.launching.discard(run_id)
        return []
    except BaseException:
        for run_id in admitted:
            ctx.launching.discard(run_id)
        raise
    return admitted


def _fill_missing_demand(session: Session, queued: list[store.QueuedRow]) -> None:
    """Runs queued before migration 0003 have no demand columns: compute them once."""
    for i, q in enumerate(queued):
        if q.demand or not q.id:
            continue
        row = session.get(RunRow, q.id)
        if row is None:
            continue
        columns = demand_columns(TaskSpec.model_validate(row.spec))
        if not columns["demand"]:
            continue
        row.demand = columns["demand"]
        row.gpus = columns["gpus"]
        queued[i] = store.QueuedRow(**{**q.__dict__, "demand": columns["demand"]})
    session.flush()


# -- reading the queue ----------------------------------------------------------------------


def list_queue(ctx: ServiceContext, *, project: str | None = None) -> list[QueueEntry]:
    """The queue in scheduling order (start-immediately runs first, as the scheduler takes
    them), with each run's position and why it waits."""
    now = utcnow()
    with ctx.db.read() as session:
        if project is not None:
            load_project(session, project)  # NotFoundError naming how to create it
        queued = store.list_queued(session)
        ordered = [q for q in queued if q.start_immediately] + [
            q for q in queued if not q.start_immediately
        ]
        ahead_in_group: dict[str, int] = {}
        free_by_type: dict[tuple[int, str | None], int] = {}
        out = []
        for position, q in enumerate(ordered, start=1):
            n = ahead_in_group.get(q.group, 0)
            ahead_in_group[q.group] = n + 1
            if project is not None and q.project != project:
                continue
            gpu_type = next((d[4] for d in q.demand if d[3] and d[4]), None)
            key = (q.group_id, gpu_type)

            def free(key: tuple[int, str | None] = key, demand: list[Any] = q.demand) -> int:
                if key not in free_by_type:
                    free_by_type[key] = free_matching(session, key[0], demand)
                return free_by_type[key]

            reason = full_reason(q.reason, n, free)
            out.append(
                QueueEntry(
                    position=position,
                    run_id=q.id,
                    run=q.ref,
                    project=q.project,
                    group=q.group,
                    priority=q.priority,
                    start_immediately=q.start_immediately,
                    submitted_by=q.submitted_by,
                    queued_at=q.created_at,
                    waiting_seconds=max(0.0, math.floor((now - q.created_at).total_seconds())),
                    timeout_seconds=q.timeout_seconds,
                    gpus=q.gpus,
                    reason=reason,
                )
            )
        return out
