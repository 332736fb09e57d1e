"""``/projects/{project}/tasks``: list, create from a manifest, get."""

from __future__ import annotations

from fastapi import APIRouter

from trainyard.core.models import Task
from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import TaskCreateRequest, TasksResponse
from trainyard.server.services import tasks as service

router = APIRouter(tags=["tasks"])


@router.get("/projects/{project}/tasks", response_model=TasksResponse)
def list_tasks(ctx: Ctx, project: str) -> TasksResponse:
    return TasksResponse(items=service.list_tasks(ctx, project))


@router.post("/projects/{project}/tasks", response_model=Task, status_code=201)
def create_task(ctx: Ctx, project: str, body: TaskCreateRequest) -> Task:
    return service.create_task(
        ctx,
        project,
        body.manifest,
        filename=body.filename,
        replace=body.replace,
        name=body.name,
    )


@router.get("/projects/{project}/tasks/{task}", response_model=Task)
def get_task(ctx: Ctx, project: str, task: str) -> Task:
    return service.get_task(ctx, project, task)
