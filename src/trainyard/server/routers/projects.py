"""``/projects``: list, create, get, set the summary, move to another group; the
leaderboard (set its metric, clear it, read the board)."""

from __future__ import annotations

from fastapi import APIRouter

from trainyard.core.leaderboard import Leaderboard
from trainyard.core.models import Project
from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import (
    LeaderboardRequest,
    ProjectCreateRequest,
    ProjectGroupRequest,
    ProjectsResponse,
    ProjectSummaryRequest,
)
from trainyard.server.services import leaderboard as leaderboard_service
from trainyard.server.services import projects as service
from trainyard.server.services import scheduling

router = APIRouter(tags=["projects"])


@router.get("/projects", response_model=ProjectsResponse)
def list_projects(ctx: Ctx) -> ProjectsResponse:
    return ProjectsResponse(items=service.list_projects(ctx))


@router.post("/projects", response_model=Project, status_code=201)
def create_project(ctx: Ctx, body: ProjectCreateRequest) -> Project:
    return service.create_project(ctx, body.name, body.summary, group=body.group)


@router.get("/projects/{project}", response_model=Project)
def get_project(ctx: Ctx, project: str) -> Project:
    return service.get_project(ctx, project)


@router.put("/projects/{project}/summary", response_model=Project)
def set_summary(ctx: Ctx, project: str, body: ProjectSummaryRequest) -> Project:
    return service.set_project_summary(ctx, project, body.summary)


@router.put("/projects/{project}/group", response_model=Project)
def set_group(ctx: Ctx, project: str, body: ProjectGroupRequest) -> Project:
    """Move the project to another group: its queued and future runs use that group's pools."""
    scheduling.set_project_group(ctx, project, body.group)
    return service.get_project(ctx, project)


@router.get("/projects/{project}/leaderboard", response_model=Leaderboard)
def get_leaderboard(ctx: Ctx, project: str) -> Leaderboard:
    """Each user's best run by the project's evaluation metric (its last value), best first;
    no entries while no metric is set."""
    return leaderboard_service.get_leaderboard(ctx, project)


@router.put("/projects/{project}/leaderboard", response_model=Project)
def set_leaderboard(ctx: Ctx, project: str, body: LeaderboardRequest) -> Project:
    """Set the leaderboard's metric and goal (``min``: lower is better; ``max``: higher)."""
    return leaderboard_service.set_leaderboard(ctx, project, body.metric, body.goal)


@router.delete("/projects/{project}/leaderboard", response_model=Project)
def clear_leaderboard(ctx: Ctx, project: str) -> Project:
    """Remove the leaderboard's metric (idempotent)."""
    return leaderboard_service.clear_leaderboard(ctx, project)
