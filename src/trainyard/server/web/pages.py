"""The HTML pages: dashboard, run view, project page, and the fragments htmx polls.

Every page reads through the same services as the JSON API; actions (stop) go to the JSON
API from the browser. Jinja2 autoescapes everything; markdown is rendered with raw HTML off.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from trainyard.core.errors import NotFoundError
from trainyard.core.models import Event, Project, Replica, Run
from trainyard.core.quantity import format_cpu, format_memory
from trainyard.core.scheduling import Gpu, requested_gpus
from trainyard.core.status import ACTIVE_STATUSES, RunStatus
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import logs as log_service
from trainyard.server.services import projects as project_service
from trainyard.server.services import runs as run_service
from trainyard.server.services import tasks as task_service
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import DEFAULT_PROJECT
from trainyard.server.web.queries import RunQuery, gpus_by_uuid, query_runs

__all__ = ["STATIC_DIR", "placement_rows", "replica_history", "router", "system_layout"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
_DOWNLOAD_CHUNK = 1 << 20

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
# "commonmark" with html=False: raw HTML in a summary is shown as text, and markdown-it's
# link validation refuses javascript:/vbscript:/data: URLs.
_markdown = MarkdownIt("commonmark", {"html": False})

# Status -> (css class, icon, words). Icons match the seeds: tick, cross, moon, pause.
_RUN_LOOK: dict[str, tuple[str, str]] = {
    "complete": ("ok", "✓"),
    "error": ("bad", "✗"),
    "running": ("live", "☾"),
    "queued": ("wait", "‖"),
    "starting": ("wait", "‖"),
    "stopping": ("off", "■"),
    "stopped": ("off", "■"),
}
_REPLICA_LOOK: dict[str, tuple[str, str]] = {
    "succeeded": ("ok", "✓"),
    "failed": ("bad", "✗"),
    "running": ("live", "☾"),
    "pending": ("wait", "‖"),
    "stopped": ("off", "■"),
}


def _status_badge(status: str) -> Markup:
    css, icon = _RUN_LOOK.get(status, ("off", "?"))
    return Markup('<span class="badge {}"><span aria-hidden="true">{}</span> {}</span>').format(
        css, icon, status
    )


def _replica_icon(replica: Replica) -> Markup:
    css, icon = _REPLICA_LOOK.get(replica.status.value, ("off", "?"))
    title = f"{replica.name}: {replica.status.value}"
    return Markup('<span class="pip {}" title="{}" aria-label="{}">{}</span>').format(
        css, title, title, icon
    )


def _pending_icon(name: str) -> Markup:
    pip = '<span class="pip wait" title="{}: pending" aria-label="{}: pending">‖</span>'
    return Markup(pip).format(name, name)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _requests(run: Run) -> dict[str, str]:
    """CPU, GPU and memory the run asks for, summed over its replicas."""
    cpu = mem = gpu = 0
    for res in run.spec.resources:
        cpu += (res.requests.cpu_millis or 0) * res.replicas
        mem += (res.requests.memory_bytes or 0) * res.replicas
        gpu += (res.requests.gpu or res.limits.gpu or 0) * res.replicas
    return {
        "cpu": format_cpu(cpu) if cpu else "–",
        "gpu": str(gpu) if gpu else "–",
        "memory": format_memory(mem) if mem else "–",
    }


def _replica_pips(run: Run) -> list[Markup]:
    if run.replicas:
        return [_replica_icon(r) for r in run.replicas]
    # Not launched yet: one pending pip per replica the spec asks for.
    names = [f"{r.name}-{i}" for r in run.spec.resources for i in range(r.replicas)]
    return [_pending_icon(n) for n in names]


def _outcome(name: str, message: str) -> tuple[str, str]:
    """(css class, words) of a replica event that ends an instance."""
    if message.startswith(f"restarting {name} "):
        return "bad", "failed · restarted"
    if message.startswith(f"{name} succeeded"):
        return "ok", "succeeded"
    if message.startswith(f"{name} stopped"):
        return "off", "stopped"
    return "bad", "failed"


def replica_history(events: list[Event]) -> list[dict[str, Any]]:
    """Every replica instance ever started for a run, oldest first, from its replica events:
    "NAME started…" opens an instance; the next event of that replica (restarting, succeeded,
    stopped, failed) closes it with its outcome. An instance still open is running."""
    rows: list[dict[str, Any]] = []
    open_rows: dict[str, dict[str, Any]] = {}
    attempts: dict[str, int] = {}
    for e in events:
        if e.kind != "replica" or not e.replica:
            continue
        first = e.message.split("\n", 1)[0]
        if first.startswith(f"{e.replica} started"):
            attempts[e.replica] = attempts.get(e.replica, 0) + 1
            row: dict[str, Any] = {
                "replica": e.replica,
                "attempt": attempts[e.replica],
                "started": e.time,
                "finished": None,
                "css": "live",
                "outcome": "running",
                "detail": first,
            }
            rows.append(row)
            open_rows[e.replica] = row
            continue
        row = open_rows.pop(e.replica, {})
        if not row:  # ended without a start event (it could not be started at all)
            attempts[e.replica] = attempts.get(e.replica, 0) + 1
            row = {"replica": e.replica, "attempt": attempts[e.replica], "started": None}
            rows.append(row)
        css, words = _outcome(e.replica, first)
        row.update(finished=e.time, css=css, outcome=words, detail=first)
    return rows


def placement_rows(run: Run, gpus: dict[str, Gpu]) -> list[dict[str, Any]]:
    """The run's placement, one row per replica, its GPUs named ``index:product`` from
    ``gpus`` (by UUID); a GPU no node reports any more keeps its UUID."""
    rows: list[dict[str, Any]] = []
    for p in run.placements:
        chips: list[dict[str, Any]] = []
        for uuid in p.gpus:
            gpu = gpus.get(uuid)
            if gpu is None:
                chips.append({"label": uuid, "uuid": uuid, "known": False, "simulated": False})
                continue
            title = f"{gpu.node}:{gpu.index} · {uuid}" + (" · simulated" if gpu.simulated else "")
            chips.append(
                {
                    "label": f"{gpu.index}:{gpu.product}",
                    "uuid": uuid,
                    "known": True,
                    "simulated": gpu.simulated,
                    "title": title,
                }
            )
        rows.append(
            {
                "replica": p.replica,
                "node": p.node,
                "gpus": chips,
                "shared": p.shared,
                "cpu": format_cpu(p.cpu_millis) if p.cpu_millis else "–",
                "memory": format_memory(p.memory_bytes) if p.memory_bytes else "–",
            }
        )
    return rows


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def system_layout(run: Run, gpus: dict[str, Gpu]) -> dict[str, Any]:
    """What the Metrics tab's System section lays its charts out by (static/run_system.js):
    every replica in spec order with the GPUs it asks for and, once placed, its node and its
    GPUs in CUDA_VISIBLE_DEVICES order — the order of its ``system/<replica>/gpu/<i>/`` keys —
    (``gpus`` is None before placement); the run's start and end in epoch seconds."""
    placed = {p.replica: p for p in run.placements}
    replicas: list[dict[str, Any]] = []
    for resource in run.spec.resources:
        for index in range(resource.replicas):
            name = f"{resource.name}-{index}"
            placement = placed.get(name)
            entry: dict[str, Any] = {
                "name": name,
                "requested": requested_gpus(resource),
                "node": placement.node if placement else None,
                "gpus": None,
            }
            if placement is not None:
                entry["gpus"] = [
                    {
                        "uuid": uuid,
                        "index": gpus[uuid].index if uuid in gpus else None,
                        "product": gpus[uuid].product if uuid in gpus else "",
                        "simulated": gpus[uuid].simulated if uuid in gpus else False,
                        "node": placement.node,
                    }
                    for uuid in placement.gpus
                ]
            replicas.append(entry)
    return {
        "replicas": replicas,
        "started": _epoch(run.started_at),
        "finished": _epoch(run.finished_at),
    }


def _run_context(ctx: ServiceContext, run: Run, events: list[Event]) -> dict[str, Any]:
    """What the run view and its polled panel show (GPU names only once it is placed)."""
    gpus = gpus_by_uuid(ctx) if any(p.gpus for p in run.placements) else {}
    return {
        "run": run,
        "events": events,
        "history": replica_history(events),
        "placement": placement_rows(run, gpus),
        "system_layout": system_layout(run, gpus),
    }


def _markdown_html(text: str) -> Markup:
    return Markup(_markdown.render(text))  # raw HTML is escaped by the renderer (html=False)


templates.env.globals.update(
    status_badge=_status_badge,
    replica_pips=_replica_pips,
    replica_icon=_replica_icon,
    when=_when,
    requests=_requests,
    active=lambda run: run.status in ACTIVE_STATUSES,
    finished=lambda run: run.status not in ACTIVE_STATUSES,
    stoppable=lambda run: run.status in (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING),
)


def _page(
    request: Request,
    ctx: ServiceContext,
    name: str,
    context: dict[str, Any],
    *,
    project: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    projects: list[Project] = project_service.list_projects(ctx)
    full = {"projects": projects, "current_project": project or DEFAULT_PROJECT, **context}
    return templates.TemplateResponse(request, name, full, status_code=status_code)


def _not_found(request: Request, ctx: ServiceContext, exc: NotFoundError) -> HTMLResponse:
    return _page(request, ctx, "404.html", {"message": exc.message}, status_code=404)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse(f"/projects/{DEFAULT_PROJECT}/runs", status_code=307)


@router.get("/projects/{project}", response_class=HTMLResponse)
def project_page(request: Request, ctx: Ctx, project: str) -> HTMLResponse:
    try:
        info = project_service.get_project(ctx, project)
        tasks = task_service.list_tasks(ctx, project)
        runs, total = query_runs(ctx, RunQuery(project=project, limit=10))
    except NotFoundError as exc:
        return _not_found(request, ctx, exc)
    context = {
        "project": project,
        "info": info,
        "summary_html": _markdown_html(info.summary) if info.summary.strip() else None,
        "tasks": tasks,
        "runs": runs,
        "total": total,
    }
    return _page(request, ctx, "project.html", context, project=project)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, ctx: Ctx, run_id: int) -> HTMLResponse:
    try:
        run = run_service.get_run(ctx, run_id)
        events = run_service.list_events(ctx, run_id)
    except NotFoundError as exc:
        return _not_found(request, ctx, exc)
    return _page(request, ctx, "run.html", _run_context(ctx, run, events), project=run.project)


@router.get("/runs/{run_id}/panel", response_class=HTMLResponse)
def run_panel(request: Request, ctx: Ctx, run_id: int) -> HTMLResponse:
    """Replicas and events of a run (polled while it is active), with its status out of band."""
    try:
        run = run_service.get_run(ctx, run_id)
        events = run_service.list_events(ctx, run_id)
    except NotFoundError as exc:
        return HTMLResponse(f"<p>{Markup.escape(exc.message)}</p>", status_code=404)
    # 286 tells htmx to stop polling: a finished run changes no more.
    return templates.TemplateResponse(
        request,
        "_run_panel.html",
        {**_run_context(ctx, run, events), "oob": True},
        status_code=200 if run.status in ACTIVE_STATUSES else 286,
    )


def _log_text(ctx: ServiceContext, run_id: int, replicas: list[str] | None) -> Iterator[bytes]:
    cursor: str | None = None
    while True:
        page = log_service.read_logs(
            ctx, run_id, replicas=replicas, cursor=cursor, max_bytes=_DOWNLOAD_CHUNK
        )
        if not page.lines:
            return
        out = []
        for r in page.lines:
            stamp = r.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if r.time else "-"
            out.append(f"{stamp} {r.replica} {r.text}\n")
        yield "".join(out).encode("utf-8", errors="replace")
        cursor = page.encoded_cursor


@router.get("/runs/{run_id}/logs.txt")
def download_logs(
    ctx: Ctx,
    run_id: int,
    replica: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
) -> Response:
    """The run's log as a text file (UTC time, replica, line), read a page at a time."""
    run = run_service.get_run(ctx, run_id)  # NotFoundError -> the API's JSON 404
    log_service.check_log_request(ctx, run_id, replicas=replica or None, cursor=None)
    name = f"{run.project}-{run.task}-{run.build_id}.log"
    return StreamingResponse(
        _log_text(ctx, run_id, replica or None),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# After the routes above: these modules import this one's helpers when a page is served.
from trainyard.server.web.compare import router as _compare_router  # noqa: E402
from trainyard.server.web.dashboard import router as _dashboard_router  # noqa: E402
from trainyard.server.web.leaderboard import router as _leaderboard_router  # noqa: E402
from trainyard.server.web.operator import router as _operator_router  # noqa: E402
from trainyard.server.web.tasks import router as _tasks_router  # noqa: E402

router.include_router(_dashboard_router)
router.include_router(_compare_router)
router.include_router(_leaderboard_router)
router.include_router(_tasks_router)
router.include_router(_operator_router)
