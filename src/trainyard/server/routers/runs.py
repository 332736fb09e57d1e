"""``/runs`` and ``/projects/{project}/runs``: submit, search, list, get, stop, events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.errors import InvalidInputError
from trainyard.core.status import RunStatus
from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import (
    EventsResponse,
    RunCreateRequest,
    RunPageResponse,
    RunResponse,
    RunSearchResponse,
    run_json,
)
from trainyard.server.services import run_search as search_service
from trainyard.server.services import runs as service

router = APIRouter(tags=["runs"])


def _statuses(value: str | None) -> list[RunStatus] | None:
    if not value:
        return None
    out: list[RunStatus] = []
    for word in value.split(","):
        word = word.strip().lower()
        if not word:
            continue
        try:
            out.append(RunStatus(word))
        except ValueError:
            raise InvalidInputError(
                f"status: unknown status {word!r}; use a comma list of "
                + ", ".join(s.value for s in RunStatus),
                fields={"status": word},
            ) from None
    return out or None


def _archived(value: str) -> bool | None:
    word = value.strip().lower()
    if word in ("false", "0", "no", ""):
        return False
    if word in ("true", "1", "yes"):
        return True
    if word == "all":
        return None
    raise InvalidInputError(
        f"archived: unknown value {value!r}; use true, false or all",
        fields={"archived": value},
    )


@router.post("/projects/{project}/runs", response_model=RunResponse, status_code=201)
def submit_run(ctx: Ctx, project: str, body: RunCreateRequest) -> JSONResponse:
    run = service.submit_run(
        ctx,
        project,
        manifest=body.manifest,
        filename=body.filename,
        task=body.task,
        name=body.name,
        parameters=body.parameters,
        snapshot_id=body.snapshot_id,
        git=body.git,
        submitted_by=body.submitted_by,
        priority=body.priority,
        start_immediately=body.start_immediately,
    )
    return JSONResponse(run_json(run), status_code=201)


@router.get("/projects/{project}/runs", response_model=RunSearchResponse)
def search_runs(
    ctx: Ctx,
    project: str,
    sort: Annotated[
        str,
        Query(
            description="id, task, status, updated, created, metric:KEY (its last value), "
            "metric:KEY:min, metric:KEY:max or param:KEY; runs without the key come last"
        ),
    ] = "id",
    order: Annotated[str, Query(description="desc (default) or asc")] = "desc",
    status: Annotated[str | None, Query(description="comma list, e.g. complete,running")] = None,
    task: str = "",
    q: Annotated[str, Query(description="task name contains it, or a run id / build number")] = "",
    archived: Annotated[
        str, Query(description="false (default): live runs; true: archived ones; all: both")
    ] = "false",
    limit: Annotated[int, Query(description="1 to 5,000")] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """One page of the project's runs with their params and metric summaries (last, min,
    max, step), sorted by the database; ``total`` counts every match."""
    body = search_service.search_runs(
        ctx,
        project,
        sort=sort,
        order=order,
        statuses=[s.value for s in _statuses(status) or []],
        task=task,
        search=q,
        archived=_archived(archived),
        limit=limit,
        offset=offset,
    )
    return JSONResponse(body)


@router.get("/runs", response_model=RunPageResponse)
def list_runs(
    ctx: Ctx,
    project: str | None = None,
    task: str | None = None,
    status: Annotated[str | None, Query(description="comma list, e.g. running,queued")] = None,
    archived: Annotated[
        str, Query(description="false (default): live runs; true: archived ones; all: both")
    ] = "false",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    runs, total = service.list_runs(
        ctx,
        project=project,
        task=task,
        statuses=_statuses(status),
        archived=_archived(archived),
        limit=limit,
        offset=offset,
    )
    body: dict[str, Any] = {
        "items": [run_json(r) for r in runs],
        "total": total,
        "limit": limit,
        "offset": offset,
    }
    return JSONResponse(body)


@router.get("/runs/{run_id}", response_model=RunResponse)
def get_run(ctx: Ctx, run_id: int) -> JSONResponse:
    return JSONResponse(run_json(service.get_run(ctx, run_id)))


@router.get("/projects/{project}/tasks/{task}/runs/{build_id}", response_model=RunResponse)
def get_run_by_ref(ctx: Ctx, project: str, task: str, build_id: int) -> JSONResponse:
    return JSONResponse(run_json(service.get_run_by_ref(ctx, project, task, build_id)))


@router.post("/runs/{run_id}/stop", response_model=RunResponse)
def stop_run(ctx: Ctx, run_id: int) -> JSONResponse:
    return JSONResponse(run_json(service.stop_run(ctx, run_id)))


@router.get("/runs/{run_id}/events", response_model=EventsResponse)
def list_events(
    ctx: Ctx, run_id: int, after: Annotated[int | None, Query(ge=0)] = None
) -> EventsResponse:
    return EventsResponse(items=service.list_events(ctx, run_id, after))


@router.post("/runs/{run_id}/archive", response_model=RunResponse)
def archive_run(ctx: Ctx, run_id: int) -> JSONResponse:
    return JSONResponse(run_json(service.archive_run(ctx, run_id)))


@router.post("/runs/{run_id}/restore", response_model=RunResponse)
def restore_run(ctx: Ctx, run_id: int) -> JSONResponse:
    return JSONResponse(run_json(service.restore_run(ctx, run_id)))


@router.delete("/runs/{run_id}", response_model=RunResponse)
def delete_run(ctx: Ctx, run_id: int) -> JSONResponse:
    """The deleted run as it was, for the record."""
    return JSONResponse(run_json(service.delete_run(ctx, run_id)))


class ExternalRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="the task the run is logged under (DNS-1123 label)")
    submitted_by: str = ""
    description: str = ""


class FinishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: RunStatus = Field(description="complete, error or stopped")
    reason: str = ""


@router.post("/projects/{project}/external-runs", response_model=RunResponse, status_code=201)
def create_external_run(ctx: Ctx, project: str, body: ExternalRunRequest) -> JSONResponse:
    """A run trainyard does not launch, created running, for a tracking client to log to."""
    run = service.create_external_run(
        ctx, project, body.name, submitted_by=body.submitted_by, description=body.description
    )
    return JSONResponse(run_json(run), status_code=201)


@router.post("/runs/{run_id}/finish", response_model=RunResponse)
def finish_run(ctx: Ctx, run_id: int, body: FinishRequest) -> JSONResponse:
    """End a run created by a tracking client (idempotent once ended)."""
    return JSONResponse(
        run_json(service.finish_external_run(ctx, run_id, body.status, body.reason))
    )
