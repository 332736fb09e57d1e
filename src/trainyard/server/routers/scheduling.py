"""Scheduling: ``/nodes``, ``/pools``, ``/groups`` and ``/queue``."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from trainyard.core.metrics import NodeMetrics
from trainyard.core.scheduling import Group, Node, Pool
from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import (
    GroupCreateRequest,
    GroupsResponse,
    NodesResponse,
    PoolCreateRequest,
    PoolGpusRequest,
    PoolGroupRequest,
    PoolsResponse,
    QueueResponse,
    SimulateGpusRequest,
)
from trainyard.server.services import node_metrics
from trainyard.server.services import scheduling as service

router = APIRouter(tags=["scheduling"])


@router.get("/nodes", response_model=NodesResponse)
def list_nodes(ctx: Ctx) -> NodesResponse:
    """Nodes with their CPUs, memory, what is reserved, and their GPUs and who holds them."""
    return NodesResponse(items=service.list_nodes(ctx))


@router.get("/nodes/{node}", response_model=Node)
def get_node(ctx: Ctx, node: str) -> Node:
    return service.get_node(ctx, node)


@router.get("/nodes/{node}/metrics", response_model=NodeMetrics)
def get_node_metrics(
    ctx: Ctx,
    request: Request,
    node: str,
    window: int = Query(default=3600, description="seconds, 60 to 604800"),
    interval: str | None = Query(
        default=None,
        description="seconds per point, 1 to 3600; 'auto' (default): the smallest of 10, 30, "
        "60, 300, 900, 3600 that gives at most 360 points",
    ),
    until: float | None = Query(default=None, description="end of the window, epoch seconds"),
) -> NodeMetrics:
    """The node's CPU, memory and GPU samples over a window, averaged per interval."""
    sampler = getattr(request.app.state, "node_sampler", None)
    return node_metrics.get_node_metrics(
        ctx,
        node,
        window=window,
        interval=node_metrics.parse_interval(interval),
        until=until,
        gpu_error=sampler.gpu_error if sampler is not None else "",
    )


@router.put("/nodes/{node}/simulated-gpus", response_model=Node)
def simulate_gpus(ctx: Ctx, node: str, body: SimulateGpusRequest) -> Node:
    """Give the node exactly ``count`` simulated GPUs of ``type`` (for tests and demos)."""
    return service.simulate_gpus(ctx, node, body.count, body.type, body.memory_bytes)


@router.get("/pools", response_model=PoolsResponse)
def list_pools(ctx: Ctx) -> PoolsResponse:
    return PoolsResponse(items=service.list_pools(ctx))


@router.post("/pools", response_model=Pool, status_code=201)
def create_pool(ctx: Ctx, body: PoolCreateRequest) -> Pool:
    return service.create_pool(ctx, body.name, body.gpu_type, body.group)


@router.delete("/pools/{pool}", status_code=204)
def delete_pool(ctx: Ctx, pool: str) -> Response:
    """Delete the pool; its GPUs go back to the default pool."""
    service.delete_pool(ctx, pool)
    return Response(status_code=204)


@router.post("/pools/{pool}/gpus", response_model=Pool)
def assign_gpus(ctx: Ctx, pool: str, body: PoolGpusRequest) -> Pool:
    """Move GPUs into the pool (named, or ``count`` of its type from the default pool)."""
    return service.assign_gpus(ctx, pool, gpus=body.gpus, count=body.count, node=body.node)


@router.put("/pools/{pool}/group", response_model=Pool)
def assign_group(ctx: Ctx, pool: str, body: PoolGroupRequest) -> Pool:
    return service.assign_pool_group(ctx, pool, body.group)


@router.get("/groups", response_model=GroupsResponse)
def list_groups(ctx: Ctx) -> GroupsResponse:
    return GroupsResponse(items=service.list_groups(ctx))


@router.post("/groups", response_model=Group, status_code=201)
def create_group(ctx: Ctx, body: GroupCreateRequest) -> Group:
    return service.create_group(ctx, body.name)


@router.delete("/groups/{group}", status_code=204)
def delete_group(ctx: Ctx, group: str) -> Response:
    service.delete_group(ctx, group)
    return Response(status_code=204)


@router.get("/queue", response_model=QueueResponse)
def list_queue(ctx: Ctx, project: str | None = Query(default=None)) -> QueueResponse:
    """Queued runs in scheduling order, each with its position and why it waits."""
    return QueueResponse(items=service.list_queue(ctx, project=project))
