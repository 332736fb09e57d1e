"""Scheduling's domain objects: nodes and their GPUs, pools, groups, placements and the queue.

A **Node** is a machine with CPUs, memory and GPUs (found with NVML, or *simulated* for tests
and demos). A **Pool** holds GPUs of exactly one type and is assigned to one **Group**; the
*default* pool holds every GPU not in another pool (of any type) and belongs to the *default*
group. A **Project** belongs to a group and its runs draw on that group's pools. A run is
admitted when every replica fits at once (gang placement); each admitted replica has a
**Placement**: its node, its GPUs and the CPU/memory reserved for it.

Sizes are exact integers as in :mod:`trainyard.core.models`: CPU in millicores, memory in
bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.models import Placement, ResourceSpec, TaskSpec

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_POOL",
    "Gpu",
    "GpuUse",
    "Group",
    "Node",
    "Placement",
    "Pool",
    "QueueEntry",
    "ReplicaDemand",
    "gpu_type_matches",
    "normalize_gpu_type",
    "replica_demands",
    "requested_gpus",
]

DEFAULT_GROUP = "default"
DEFAULT_POOL = "default"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


class GpuUse(_Model):
    """A replica holding a GPU. ``shared``: placed by a start-immediately run, which shares
    GPUs instead of waiting for free ones."""

    run_id: int
    run: str  # project/task#BUILD_ID
    replica: str
    shared: bool = False


class Gpu(_Model):
    uuid: str  # NVML's GPU-xxxxxxxx-...; simulated ones are GPU-sim-...
    index: int  # NVML index on its node
    product: str  # NVML name, e.g. "Tesla-V100-SXM3-32GB" (spaces become "-")
    memory_bytes: int = 0
    node: str
    pool: str
    simulated: bool = False
    # False when the GPU was not found at the node's last registration: not scheduled.
    present: bool = True
    used_by: list[GpuUse] = Field(default_factory=list)

    @property
    def free(self) -> bool:
        return self.present and not any(not u.shared for u in self.used_by)


class Node(_Model):
    name: str
    cpu_millis: int
    memory_bytes: int
    reserved_cpu_millis: int = 0
    reserved_memory_bytes: int = 0
    registered_at: datetime
    heartbeat_at: datetime
    gpus: list[Gpu] = Field(default_factory=list)


class Pool(_Model):
    name: str
    gpu_type: str | None  # None only for the default pool, which takes every type
    group: str
    default: bool = False
    gpus: list[str] = Field(default_factory=list)  # UUIDs
    total: int = 0  # present GPUs
    free: int = 0  # present GPUs no replica holds exclusively
    simulated: int = 0  # how many of ``total`` are simulated


class Group(_Model):
    name: str
    default: bool = False
    pools: list[str] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)


class QueueEntry(_Model):
    """A queued run as ``trainyard queue`` shows it."""

    position: int  # 1-based, in scheduling order across the whole queue
    run_id: int
    run: str  # project/task#BUILD_ID
    project: str
    group: str
    priority: int = 0
    start_immediately: bool = False
    submitted_by: str = ""
    queued_at: datetime
    waiting_seconds: float
    timeout_seconds: int | None = None
    gpus: int = 0  # GPUs the whole run asks for
    reason: str = ""  # why it is still queued


class ReplicaDemand(NamedTuple):
    """What one replica needs reserved to be placed (a tuple: the scheduler handles many)."""

    replica: str  # worker-0
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0
    gpu_type: str | None = None


def requested_gpus(resource: ResourceSpec) -> int:
    """GPUs per replica: the larger of request and limit (Kubernetes takes either)."""
    return max(resource.requests.gpu or 0, resource.limits.gpu or 0)


def replica_demands(spec: TaskSpec) -> list[ReplicaDemand]:
    """One demand per replica, in replica order (``worker-0``, ``worker-1``, …).

    CPU and memory are the *requests* (what Kubernetes reserves); a resource that sets only a
    limit reserves nothing for it, and the supervisor enforces the limit.
    """
    out: list[ReplicaDemand] = []
    for resource in spec.resources:
        for index in range(resource.replicas):
            out.append(
                ReplicaDemand(
                    f"{resource.name}-{index}",
                    resource.requests.cpu_millis or 0,
                    resource.requests.memory_bytes or 0,
                    requested_gpus(resource),
                    resource.gpu_product,
                )
            )
    return out


def normalize_gpu_type(name: str) -> str:
    """NVML product names hold spaces ("Tesla V100-SXM2-32GB"); trainyard writes them with
    dashes, and compares without case."""
    return "-".join(name.split()).lower()


def gpu_type_matches(product: str, wanted: str | None) -> bool:
    """``product`` is a GPU of type ``wanted``: equal, or ``wanted`` is a prefix of it cut at
    a dash (``Tesla-V100`` matches ``Tesla-V100-SXM3-32GB``). None matches every product."""
    if wanted is None:
        return True
    p, w = normalize_gpu_type(product), normalize_gpu_type(wanted)
    return p == w or p.startswith(w + "-")
