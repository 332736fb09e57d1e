"""Gang placement: which queued runs start now, and where. Pure: no I/O, no clock.

:func:`plan` takes a snapshot of the cluster (:class:`Cluster`: nodes with free CPU and
memory, GPUs with their pool and whether a replica holds them) and the queue in scheduling
order (priority, highest first, then submission order), and returns the runs to admit with a
:class:`~trainyard.core.models.Placement` per replica, and for every run left queued the
reason why.

Rules (``docs/scheduling.md`` explains them to users):

- **Gang**: a run is admitted only when every one of its replicas fits at once. Each replica
  fits on one node: its CPU and memory requests within the node's free amounts, and its GPUs
  all free, of one product (``gpuProduct`` when the manifest names one), on that node, in a
  pool of the run's group. Among the nodes that fit, the one leaving the fewest free GPUs in
  the chosen bucket wins (best fit keeps whole nodes free for big runs).
- **Start immediately** (DKube): such runs are placed first and ignore what is in use: their
  GPUs are *shared* (free ones first, then the least shared), and CPU/memory may be
  over-committed. They still need enough GPUs of the right type to exist in the group.
- **Bounded backfill**: a run that does not fit does not block the runs behind it; the first
  such run of each group (its *head*) counts how many later runs of the group that compete
  for what it lacks (GPUs, or CPU/memory) were admitted before it. Once that count reaches
  ``backfill_limit``, nothing that competes with it is admitted until it has started, so a
  big run waits for at most ``backfill_limit`` smaller ones. Runs that do not compete (a
  CPU-only run behind a head waiting for GPUs) are never held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from trainyard.core.models import Placement
from trainyard.core.quantity import format_cpu, format_memory
from trainyard.core.scheduling import ReplicaDemand, gpu_type_matches

__all__ = [
    "Blocked",
    "Candidate",
    "Cluster",
    "GpuState",
    "NodeState",
    "Plan",
    "PoolState",
    "infeasible_reason",
    "plan",
]

Lack = Literal["gpu", "cpu", "memory", "held"]


@dataclass
class NodeState:
    name: str
    cpu_free: int  # millicores
    memory_free: int  # bytes
    cpu_total: int = 0  # raised to the free amount when smaller (e.g. left unset)
    memory_total: int = 0

    def __post_init__(self) -> None:
        self.cpu_total = max(self.cpu_total, self.cpu_free)
        self.memory_total = max(self.memory_total, self.memory_free)


@dataclass
class GpuState:
    uuid: str
    node: str
    product: str
    pool: str
    index: int = 0
    held: bool = False  # a replica holds it exclusively
    shared_users: int = 0  # start-immediately replicas using it


@dataclass
class PoolState:
    name: str
    group: str
    gpu_type: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A queued run as the planner sees it. ``demands`` in replica order."""

    run_id: int
    group: str
    demands: tuple[ReplicaDemand, ...]
    priority: int = 0
    start_immediately: bool = False
    overtaken: int = 0  # how often later runs were admitted while this one was the head
    ref: str = ""

    @property
    def gpus(self) -> int:
        return sum(d.gpus for d in self.demands)


@dataclass
class Blocked:
    run_id: int
    lack: Lack
    reason: str  # the stable part: "waiting for 2 × Tesla-V100 in pool 'default'"


@dataclass
class Plan:
    admitted: list[tuple[int, list[Placement]]] = field(default_factory=list)
    blocked: dict[int, Blocked] = field(default_factory=dict)
    # New overtaken counts of group heads that later runs passed in this plan.
    overtaken: dict[int, int] = field(default_factory=dict)


_Bucket = tuple[str, str, str]  # (pool, node, product)


class Cluster:
    """Mutable free-capacity view the planner draws on. Build it once per pass."""

    def __init__(
        self,
        nodes: Iterable[NodeState],
        pools: Iterable[PoolState],
        gpus: Iterable[GpuState],
    ) -> None:
        self.nodes: dict[str, NodeState] = {n.name: n for n in nodes}
        self.pools: dict[str, PoolState] = {p.name: p for p in pools}
        self.group_pools: dict[str, list[str]] = {}
        for pool in sorted(self.pools.values(), key=lambda p: p.name):
            self.group_pools.setdefault(pool.group, []).append(pool.name)
        # Free GPUs per (pool, node, product), lowest index first; all GPUs per bucket too
        # (start-immediately shares them).
        self.free: dict[_Bucket, list[GpuState]] = {}
        self.all: dict[_Bucket, list[GpuState]] = {}
        self.group_free: dict[str, int] = {}
        for gpu in sorted(gpus, key=lambda g: (g.node, g.index, g.uuid)):
            if gpu.node not in self.nodes or gpu.pool not in self.pools:
                continue  # a node this server cannot launch on, or an unknown pool
            key = (gpu.pool, gpu.node, gpu.product)
            self.all.setdefault(key, []).append(gpu)
            if not gpu.held:
                self.free.setdefault(key, []).append(gpu)
                group = self.pools[gpu.pool].group
                self.group_free[group] = self.group_free.get(group, 0) + 1

    # -- queries ---------------------------------------------------------------------------

    def buckets(self, group: str, node: str, gpu_type: str | None, *, free: bool) -> list[_Bucket]:
        source = self.free if free else self.all
        out = []
        for pool in self.group_pools.get(group, ()):
            for key, gpus in source.items():
                if (
                    key[0] == pool
                    and key[1] == node
                    and gpus
                    and gpu_type_matches(key[2], gpu_type)
                ):
                    out.append(key)
        return out

    def pools_text(self, group: str) -> str:
        names = self.group_pools.get(group, [])
        if not names:
            return f"group '{group}' (which has no pool)"
        if len(names) == 1:
            return f"pool '{names[0]}'"
        return "pools " + ", ".join(f"'{n}'" for n in names)

    def gpu_label(self, group: str, gpu_type: str | None) -> str:
        if gpu_type:
            return gpu_type
        pools = set(self.group_pools.get(group, ()))
        types = {key[2] for key in self.all if key[0] in pools}
        return types.pop() if len(types) == 1 else "GPU"

    # -- taking and giving back ------------------------------------------------------------

    def _take(self, key: _Bucket, count: int) -> list[GpuState]:
        bucket = self.free[key]
        taken = bucket[:count]
        del bucket[:count]
        group = self.pools[key[0]].group
        self.group_free[group] -= count
        for gpu in taken:
            gpu.held = True
        return taken

    def _give_back(self, key: _Bucket, gpus: list[GpuState]) -> None:
        for gpu in gpus:
            gpu.held = False
        bucket = self.free.setdefault(key, [])
        bucket.extend(gpus)
        bucket.sort(key=lambda g: (g.index, g.uuid))
        group = self.pools[key[0]].group
        self.group_free[group] = self.group_free.get(group, 0) + len(gpus)


def _fit_replica(
    cluster: Cluster, group: str, d: ReplicaDemand
) -> tuple[str, _Bucket | None] | Lack:
    """The best node (and GPU bucket) for one replica, or what is missing: "gpu" when no node
    has its GPUs free; otherwise what the nodes that do have them lack ("cpu" or "memory"),
    so the reason names the real shortage."""
    best: tuple[tuple[int, int, str], str, _Bucket | None] | None = None
    short_of: set[Lack] = set()
    for node in cluster.nodes.values():
        bucket: _Bucket | None = None
        left = 0
        if d.gpus:
            fits = [
                (len(cluster.free[key]) - d.gpus, key)
                for key in cluster.buckets(group, node.name, d.gpu_type, free=True)
                if len(cluster.free[key]) >= d.gpus
            ]
            if not fits:
                continue  # this node cannot give the GPUs, whatever its CPU and memory
            left, bucket = min(fits)
        if node.cpu_free < d.cpu_millis:
            short_of.add("cpu")
            continue
        if node.memory_free < d.memory_bytes:
            short_of.add("memory")
            continue
        # GPU replicas: best fit (fewest GPUs left in the bucket). CPU-only replicas: the
        # node with the most free CPU, so GPU nodes keep room.
        score = (left, -node.cpu_free, node.name)
        if best is None or score < best[0]:
            best = (score, node.name, bucket)
    if best is None:
        if not short_of:
            return "gpu" if d.gpus else "cpu"
        return "cpu" if "cpu" in short_of else "memory"
    return best[1], best[2]


def _reason(cluster: Cluster, c: Candidate, lack: Lack, d: ReplicaDemand | None) -> str:
    if lack == "gpu":
        gpu_type = next((x.gpu_type for x in c.demands if x.gpus and x.gpu_type), None)
        return f"waiting for {c.gpus} × {cluster.gpu_label(c.group, gpu_type)} in " + (
            cluster.pools_text(c.group)
        )
    assert d is not None
    if lack == "cpu":
        cpu = format_cpu(d.cpu_millis)
        return f"waiting for CPU: replica {d.replica} needs {cpu} free on one node"
    return (
        f"waiting for memory: replica {d.replica} needs {format_memory(d.memory_bytes)} free "
        "on one node"
    )


def _try_fit(cluster: Cluster, c: Candidate) -> list[Placement] | Blocked:
    """Place every replica of ``c`` or none (the cluster is left as it was)."""
    if c.gpus > cluster.group_free.get(c.group, 0):
        return Blocked(c.run_id, "gpu", _reason(cluster, c, "gpu", None))
    order = sorted(c.demands, key=lambda d: (-d.gpus, -d.cpu_millis, -d.memory_bytes))
    undo: list[tuple[NodeState, ReplicaDemand, _Bucket | None, list[GpuState]]] = []
    placed: dict[str, Placement] = {}
    for d in order:
        found = _fit_replica(cluster, c.group, d)
        if isinstance(found, str):
            for node, dd, key, gpus in reversed(undo):
                node.cpu_free += dd.cpu_millis
                node.memory_free += dd.memory_bytes
                if key is not None:
                    cluster._give_back(key, gpus)
            return Blocked(c.run_id, found, _reason(cluster, c, found, d))
        node_name, key = found
        node = cluster.nodes[node_name]
        node.cpu_free -= d.cpu_millis
        node.memory_free -= d.memory_bytes
        gpus = cluster._take(key, d.gpus) if key is not None else []
        undo.append((node, d, key, gpus))
        placed[d.replica] = Placement(
            replica=d.replica,
            node=node_name,
            cpu_millis=d.cpu_millis,
            memory_bytes=d.memory_bytes,
            gpus=[g.uuid for g in gpus],
        )
    return [placed[d.replica] for d in c.demands]


def _place_shared(cluster: Cluster, c: Candidate) -> list[Placement] | Blocked:
    """Start immediately: GPUs shared (free first, then least shared); CPU and memory may be
    over-committed. Blocked only when the group has no node with enough GPUs of the type."""
    placements: list[Placement] = []
    shared: list[GpuState] = []  # every GPU this run's replicas were given, to undo
    for d in c.demands:
        choice: tuple[tuple[int, int, str], str, list[GpuState]] | None = None
        for node in cluster.nodes.values():
            if d.gpus == 0:
                score = (0, -node.cpu_free, node.name)
                if choice is None or score < choice[0]:
                    choice = (score, node.name, [])
                continue
            for key in cluster.buckets(c.group, node.name, d.gpu_type, free=False):
                gpus = sorted(cluster.all[key], key=lambda g: (g.held, g.shared_users, g.index))
                if len(gpus) < d.gpus:
                    continue
                picked = gpus[: d.gpus]
                # Free GPUs first (fewest busy ones), then the least shared.
                busy = sum(1 for g in picked if g.held or g.shared_users)
                load = sum(int(g.held) + g.shared_users for g in picked)
                score = (busy * 100_000 + load, -node.cpu_free, node.name)
                if choice is None or score < choice[0]:
                    choice = (score, node.name, picked)
        if choice is None:
            # All or nothing: give back what the replicas before this one took.
            for placement in placements:
                placed_on = cluster.nodes[placement.node]
                placed_on.cpu_free += placement.cpu_millis
                placed_on.memory_free += placement.memory_bytes
            for gpu in shared:
                gpu.shared_users -= 1
            reason = infeasible_reason(cluster, c) or _reason(cluster, c, "gpu", d)
            return Blocked(c.run_id, "gpu", reason)
        _, node_name, picked = choice
        node = cluster.nodes[node_name]
        node.cpu_free -= d.cpu_millis
        node.memory_free -= d.memory_bytes
        for gpu in picked:
            gpu.shared_users += 1
        shared.extend(picked)
        placements.append(
            Placement(
                replica=d.replica,
                node=node_name,
                cpu_millis=d.cpu_millis,
                memory_bytes=d.memory_bytes,
                gpus=[g.uuid for g in picked],
                shared=True,
            )
        )
    return placements


def _competes(c: Candidate, head_lack: Lack) -> bool:
    if head_lack == "gpu":
        return c.gpus > 0
    return True


def plan(cluster: Cluster, queue: Sequence[Candidate], *, backfill_limit: int) -> Plan:
    """Decide which of ``queue`` (in scheduling order) start now. Mutates ``cluster``."""
    result = Plan()
    for c in queue:
        if c.start_immediately:
            shared = _place_shared(cluster, c)
            if isinstance(shared, Blocked):
                result.blocked[c.run_id] = shared
            else:
                result.admitted.append((c.run_id, shared))
    heads: dict[str, tuple[Candidate, Lack, int]] = {}
    for c in queue:
        if c.start_immediately:
            continue
        head = heads.get(c.group)
        if head is not None and head[2] >= backfill_limit and _competes(c, head[1]):
            ahead = head[0].ref or f"run {head[0].run_id}"
            if backfill_limit == 0:
                why = "strict queue order: the backfill limit is 0"
            else:
                times = "once" if head[2] == 1 else f"{head[2]} times"
                why = f"which runs behind it have overtaken {times} (bounded backfill)"
            result.blocked[c.run_id] = Blocked(c.run_id, "held", f"held behind {ahead}, {why}")
            continue
        fitted = _try_fit(cluster, c)
        if isinstance(fitted, Blocked):
            result.blocked[c.run_id] = fitted
            # A run that could not fit even on an empty cluster (GPUs removed or pools moved
            # since it was submitted) must not hold its group: it waits without being head.
            if head is None and infeasible_reason(cluster, c) is None:
                heads[c.group] = (c, fitted.lack, c.overtaken)
            continue
        result.admitted.append((c.run_id, fitted))
        if head is not None and _competes(c, head[1]):
            heads[c.group] = (head[0], head[1], head[2] + 1)
            result.overtaken[head[0].run_id] = head[2] + 1
    return result


def infeasible_reason(cluster: Cluster, c: Candidate) -> str | None:
    """Why ``c`` could never be placed on this cluster even if it were empty; None if it
    could. Looks at totals (every GPU, CPU and memory of each node), not at what is free."""
    for d in c.demands:
        nodes = [
            n
            for n in cluster.nodes.values()
            if n.cpu_total >= d.cpu_millis and n.memory_total >= d.memory_bytes
        ]
        if not nodes:
            biggest_cpu = max((n.cpu_total for n in cluster.nodes.values()), default=0)
            biggest_mem = max((n.memory_total for n in cluster.nodes.values()), default=0)
            return (
                f"replica {d.replica} requests {format_cpu(d.cpu_millis)} CPU and "
                f"{format_memory(d.memory_bytes)} memory, but no node has that much (the "
                f"largest has {format_cpu(biggest_cpu)} CPU, {format_memory(biggest_mem)}); "
                "lower the requests"
            )
        if d.gpus == 0:
            continue
        most = 0
        for n in nodes:
            for key in cluster.buckets(c.group, n.name, d.gpu_type, free=False):
                most = max(most, len(cluster.all[key]))
        if most < d.gpus:
            kind = d.gpu_type or "GPU"
            where = cluster.pools_text(c.group)
            if cluster.group_pools.get(c.group):
                where += f" of group '{c.group}'"
            have = "no node has any" if most == 0 else f"no node has more than {most}"
            return (
                f"replica {d.replica} requests {d.gpus} × {kind} on one node, but {have} in {where}"
            )
    return None
