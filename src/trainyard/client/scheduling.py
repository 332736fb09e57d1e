"""Scheduling: ``/nodes``, ``/pools``, ``/groups`` and ``/queue``.

See :mod:`trainyard.core.scheduling` for the objects: a node's GPUs are in exactly one pool
each, a pool belongs to one group, and a project's runs draw on its group's pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from trainyard.client.http import Transport
from trainyard.core.metrics import NodeMetrics
from trainyard.core.scheduling import Group, Node, Pool, QueueEntry

__all__ = ["GroupsAPI", "NodesAPI", "PoolsAPI", "QueueAPI"]

# The server's default for simulated GPUs: a V100 with 32 GiB.
DEFAULT_GPU_TYPE = "Tesla-V100-SXM3-32GB"
DEFAULT_GPU_MEMORY = 32 * 1024**3


def _name(value: str) -> str:
    return quote(value, safe="")


class NodesAPI:
    """Nodes: the machines runs are placed on, with their CPUs, memory and GPUs."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Node]:
        """Every node, with what is reserved on it and who holds each of its GPUs."""
        return [Node.model_validate(item) for item in self._t.get("/nodes")["items"]]

    def get(self, name: str) -> Node:
        """The node ``name``; raises NotFoundError (naming the known nodes) if there is none."""
        return Node.model_validate(self._t.get(f"/nodes/{_name(name)}"))

    def simulate_gpus(
        self,
        node: str,
        count: int,
        gpu_type: str = DEFAULT_GPU_TYPE,
        memory_bytes: int = DEFAULT_GPU_MEMORY,
    ) -> Node:
        """Give ``node`` exactly ``count`` simulated GPUs of ``gpu_type`` (0 removes them).

        Raises NotFoundError for the node, InvalidInputError for a bad count or type,
        ConflictError when a GPU that would go away (or change type) is held by a run.
        """
        body = {"count": count, "type": gpu_type, "memory_bytes": memory_bytes}
        return Node.model_validate(self._t.put(f"/nodes/{_name(node)}/simulated-gpus", json=body))

    def metrics(
        self,
        node: str,
        *,
        window: int = 3600,
        interval: int | None = None,
        until: float | None = None,
    ) -> NodeMetrics:
        """The node's resource samples (CPU, memory, each GPU) over the last ``window``
        seconds (60 to 604,800) before ``until`` (default now), averaged per ``interval``
        seconds (default: the server's choice, at most 360 points). NotFoundError names the
        known nodes; InvalidInputError for a window or interval out of range."""
        data = self._t.get(
            f"/nodes/{_name(node)}/metrics",
            params={"window": window, "interval": interval, "until": until},
        )
        return NodeMetrics.model_validate(data)


class PoolsAPI:
    """GPU pools: each holds GPUs of one type and belongs to one group; the ``default`` pool
    holds every GPU not in another pool."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Pool]:
        return [Pool.model_validate(item) for item in self._t.get("/pools")["items"]]

    def create(self, name: str, gpu_type: str, group: str = "default") -> Pool:
        """Create an empty pool for GPUs of ``gpu_type`` in ``group``. ConflictError if it
        exists, NotFoundError for the group, InvalidInputError for a bad name or type."""
        body = {"name": name, "gpu_type": gpu_type, "group": group}
        return Pool.model_validate(self._t.post("/pools", json=body))

    def delete(self, name: str) -> None:
        """Delete the pool; its GPUs go back to the default pool (which cannot be deleted)."""
        self._t.request("DELETE", f"/pools/{_name(name)}")

    def assign_gpus(
        self,
        name: str,
        gpus: Sequence[str] = (),
        *,
        count: int | None = None,
        node: str | None = None,
    ) -> Pool:
        """Move GPUs into the pool: ``gpus`` (UUIDs or ``NODE:INDEX``), or ``count`` GPUs of
        its type from the default pool (on ``node`` only, if given). Exactly one of the two.
        The cluster's total never changes: a GPU is always in exactly one pool."""
        body: dict[str, Any] = {"gpus": list(gpus), "count": count, "node": node}
        return Pool.model_validate(self._t.post(f"/pools/{_name(name)}/gpus", json=body))

    def assign_group(self, name: str, group: str) -> Pool:
        """Assign the pool to ``group`` (the default pool always stays in the default group)."""
        return Pool.model_validate(
            self._t.put(f"/pools/{_name(name)}/group", json={"group": group})
        )


class GroupsAPI:
    """Groups: a project's runs draw on the pools of its group; ``default`` always exists."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Group]:
        return [Group.model_validate(item) for item in self._t.get("/groups")["items"]]

    def create(self, name: str) -> Group:
        """Create a group. ConflictError if it exists, InvalidInputError for a bad name."""
        return Group.model_validate(self._t.post("/groups", json={"name": name}))

    def delete(self, name: str) -> None:
        """Delete an empty group (no pools, no projects); the default group cannot be."""
        self._t.request("DELETE", f"/groups/{_name(name)}")


class QueueAPI:
    """The queue: runs waiting for resources, in scheduling order."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self, project: str | None = None) -> list[QueueEntry]:
        """Queued runs (of ``project`` only, if given), each with its position and reason."""
        data = self._t.get("/queue", params={"project": project})
        return [QueueEntry.model_validate(item) for item in data["items"]]
