"""The Operator area: nodes with their GPUs, pools, groups and the queue, read-only.

``/operator`` is the page (tabs: Nodes, Pools, Groups, Queue); ``/operator/live`` answers the
same panes as out-of-band fragments, which the page polls every 2 s (htmx swaps each pane's
contents in place, so the open tab and the scroll position stay). Pools and groups are
changed with the CLI or the JSON API, not here. ``/operator/nodes/{name}`` is one node's page:
its card and its CPU, memory and GPU charts (drawn by static/node.js from
``/api/v1/nodes/{name}/metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from trainyard.core.errors import NotFoundError
from trainyard.core.scheduling import Gpu, Group, Node, Pool, QueueEntry
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import scheduling as scheduling_service
from trainyard.server.services.context import ServiceContext

__all__ = ["ago", "cores", "duration", "node_view", "operator_view", "router", "size"]

router = APIRouter(include_in_schema=False)

# A node heartbeats every 30 s; one not seen for longer than this is shown as stale.
STALE_SECONDS = 90


def size(nbytes: int) -> str:
    """Bytes for people: ``23.5 GiB``, ``192 MiB`` (one decimal under 100, none above)."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
            return f"{text.removesuffix('.0')} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def cores(millis: int) -> str:
    """Millicores as cores: ``2``, ``0.3``, ``1.25``."""
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``; ``—`` for None."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 // 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 // 3600 else "")


def ago(when: datetime, now: datetime) -> float:
    """Seconds from ``when`` to ``now`` (a naive time is UTC, as the store writes it)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())


def _percent(part: int, whole: int) -> int:
    return min(100, round(100 * part / whole)) if whole > 0 else 0


@dataclass(frozen=True)
class GpuTile:
    gpu: Gpu
    state: str  # free, busy, shared (only start-immediately holders), absent
    memory: str


@dataclass(frozen=True)
class NodeCard:
    node: Node
    seen: str  # "3 s"
    stale: bool
    cpu_percent: int
    memory_percent: int
    cpu: str  # "0.3 of 2"
    memory: str  # "192 MiB of 23.5 GiB"
    tiles: list[GpuTile]
    gpus_free: int
    gpus_present: int
    gpus_simulated: int


def _tile(gpu: Gpu) -> GpuTile:
    if not gpu.present:
        state = "absent"
    elif any(not u.shared for u in gpu.used_by):
        state = "busy"
    elif gpu.used_by:
        state = "shared"
    else:
        state = "free"
    return GpuTile(gpu=gpu, state=state, memory=size(gpu.memory_bytes) if gpu.memory_bytes else "")


def _card(node: Node, now: datetime) -> NodeCard:
    seen = ago(node.heartbeat_at, now)
    tiles = [_tile(g) for g in sorted(node.gpus, key=lambda g: g.index)]
    return NodeCard(
        node=node,
        seen=duration(seen),
        stale=seen > STALE_SECONDS,
        cpu_percent=_percent(node.reserved_cpu_millis, node.cpu_millis),
        memory_percent=_percent(node.reserved_memory_bytes, node.memory_bytes),
        cpu=f"{cores(node.reserved_cpu_millis)} of {cores(node.cpu_millis)}",
        memory=f"{size(node.reserved_memory_bytes)} of {size(node.memory_bytes)}",
        tiles=tiles,
        gpus_free=sum(1 for t in tiles if t.state in ("free", "shared")),
        gpus_present=sum(1 for t in tiles if t.state != "absent"),
        gpus_simulated=sum(1 for t in tiles if t.gpu.simulated),
    )


def operator_view(
    nodes: list[Node],
    pools: list[Pool],
    groups: list[Group],
    queue: list[QueueEntry],
    now: datetime,
) -> dict[str, Any]:
    """What the four panes show, from what the scheduling services answer."""
    cards = [_card(n, now) for n in sorted(nodes, key=lambda n: n.name)]
    return {
        "cards": cards,
        "pools": pools,
        "groups": groups,
        "queue": queue,
        "totals": {
            "nodes": len(cards),
            "gpus": sum(c.gpus_present for c in cards),
            "free": sum(c.gpus_free for c in cards),
            "simulated": sum(c.gpus_simulated for c in cards),
            "queued": len(queue),
        },
        "duration": duration,
    }


def node_view(node: Node, now: datetime) -> dict[str, Any]:
    """What the node page shows above its charts: the node's card (as on the Operator page),
    its size in words, and its memory and its GPUs' memory in MiB (the tops of the memory
    charts)."""
    return {
        "card": _card(node, now),
        "total_cores": cores(node.cpu_millis),
        "total_memory": size(node.memory_bytes),
        "memory_mb": node.memory_bytes / 2**20,
        "gpu_memory_mb": {
            str(g.index): g.memory_bytes / 2**20 for g in node.gpus if g.memory_bytes
        },
    }


def _operator_context(ctx: ServiceContext) -> dict[str, Any]:
    return operator_view(
        scheduling_service.list_nodes(ctx),
        scheduling_service.list_pools(ctx),
        scheduling_service.list_groups(ctx),
        scheduling_service.list_queue(ctx),
        datetime.now(UTC),
    )


@router.get("/operator", response_class=HTMLResponse)
def operator_page(request: Request, ctx: Ctx) -> HTMLResponse:
    # pages.py includes this router at its end, so it is imported here, when a page is served.
    from trainyard.server.web.pages import _page

    context = {**_operator_context(ctx), "nav": "operator"}
    return _page(request, ctx, "operator.html", context)


@router.get("/operator/live", response_class=HTMLResponse)
def operator_live(request: Request, ctx: Ctx) -> HTMLResponse:
    """The panes and the counts as out-of-band fragments (polled every 2 s)."""
    from trainyard.server.web.pages import templates

    context = {**_operator_context(ctx), "oob": True}
    return templates.TemplateResponse(request, "_operator_live.html", context)


@router.get("/operator/nodes/{name}", response_class=HTMLResponse)
def node_page(request: Request, ctx: Ctx, name: str) -> HTMLResponse:
    """One node: its card, then its CPU, memory and per-GPU charts over a chosen window."""
    from trainyard.server.web.pages import _page

    try:
        node = scheduling_service.get_node(ctx, name)
    except NotFoundError as exc:
        context: dict[str, Any] = {"missing": exc.message, "name": name, "nav": "operator"}
        return _page(request, ctx, "operator_node.html", context, status_code=404)
    context = {**node_view(node, datetime.now(UTC)), "nav": "operator", "duration": duration}
    return _page(request, ctx, "operator_node.html", context)


@router.get("/operator/nodes/{name}/card", response_class=HTMLResponse)
def node_card(request: Request, ctx: Ctx, name: str) -> HTMLResponse:
    """The node page's card alone (holders, free GPUs, last seen), which it polls every 5 s."""
    from trainyard.server.web.pages import templates

    try:
        node = scheduling_service.get_node(ctx, name)
    except NotFoundError as exc:
        return HTMLResponse(f"<p>{Markup.escape(exc.message)}</p>", status_code=404)
    context = {**node_view(node, datetime.now(UTC)), "duration": duration}
    return templates.TemplateResponse(request, "_operator_node_card.html", context)
