"""Request and response payloads of the REST API (``/api/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from trainyard.core.models import Event, GitInfo, Project, Run, Task
from trainyard.core.run_search import RunSearchPage
from trainyard.core.scheduling import Group, Node, Pool, QueueEntry

__all__ = [
    "EventsResponse",
    "GroupCreateRequest",
    "GroupsResponse",
    "HealthResponse",
    "LeaderboardRequest",
    "LogLineResponse",
    "LogPageResponse",
    "NodesResponse",
    "PoolCreateRequest",
    "PoolGpusRequest",
    "PoolGroupRequest",
    "PoolsResponse",
    "ProjectCreateRequest",
    "ProjectGroupRequest",
    "ProjectSummaryRequest",
    "ProjectsResponse",
    "QueueResponse",
    "RunCreateRequest",
    "RunPageResponse",
    "RunResponse",
    "RunSearchResponse",
    "SimulateGpusRequest",
    "SnapshotResponse",
    "TaskCreateRequest",
    "TasksResponse",
    "run_json",
]


class _Request(BaseModel):
    # Unknown fields are errors: a typo must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class ProjectCreateRequest(_Request):
    name: str = Field(description="DNS-1123 label: [a-z0-9-], at most 63 characters")
    summary: str = Field(default="", description="markdown")
    group: str = Field(default="default", description="the group whose GPU pools its runs use")


class ProjectGroupRequest(_Request):
    group: str = Field(description="name of an existing group")


class GroupCreateRequest(_Request):
    name: str = Field(description="DNS-1123 label")


class PoolCreateRequest(_Request):
    name: str = Field(description="DNS-1123 label")
    gpu_type: str = Field(
        description="the one GPU product the pool holds, e.g. Tesla-V100-SXM3-32GB"
    )
    group: str = Field(default="default", description="the group the pool is assigned to")


class PoolGpusRequest(_Request):
    gpus: list[str] = Field(
        default_factory=list, description="GPUs to move into the pool: UUIDs or NODE:INDEX"
    )
    count: int | None = Field(
        default=None, description="or: this many GPUs of the pool's type from the default pool"
    )
    node: str | None = Field(default=None, description="with count: take them from this node")


class PoolGroupRequest(_Request):
    group: str


class SimulateGpusRequest(_Request):
    count: int = Field(
        ge=0, le=1024, description="how many simulated GPUs the node has (0 removes them)"
    )
    type: str = Field(default="Tesla-V100-SXM3-32GB", description="their product name")
    memory_bytes: int = Field(default=32 * 1024**3, ge=0)


class NodesResponse(BaseModel):
    items: list[Node]


class PoolsResponse(BaseModel):
    items: list[Pool]


class GroupsResponse(BaseModel):
    items: list[Group]


class QueueResponse(BaseModel):
    items: list[QueueEntry]


class ProjectSummaryRequest(_Request):
    summary: str = Field(description="markdown")


class LeaderboardRequest(_Request):
    metric: str = Field(description="the metric key that ranks runs, e.g. val/acc")
    goal: str = Field(description="min: lower is better (a loss); max: higher is better")


class TaskCreateRequest(_Request):
    manifest: str = Field(description="the manifest's YAML text")
    filename: str = Field(default="task.yaml", description="used in error messages")
    replace: bool = Field(default=False, description="update the task if it exists")
    name: str | None = Field(
        default=None, description="task name; overrides the manifest's (AIchor has none)"
    )


class RunCreateRequest(_Request):
    manifest: str | None = Field(default=None, description="YAML text; or give `task`")
    filename: str = "task.yaml"
    task: str | None = Field(default=None, description="name of a stored task; or `manifest`")
    name: str | None = Field(
        default=None, description="task name; overrides the manifest's (AIchor has none)"
    )
    parameters: dict[str, Any] = Field(default_factory=dict)
    snapshot_id: str | None = Field(default=None, description="id from POST /snapshots")
    git: GitInfo | None = None
    submitted_by: str = Field(
        default="",
        description="who submitted the run (the CLI sends the OS user); not authenticated",
    )
    priority: int = Field(
        default=0, description="queue order: higher first, then submission order (-1000..1000)"
    )
    start_immediately: bool = Field(
        default=False,
        description="skip the queue: launch now, sharing GPUs with the runs already using them",
    )


class HealthResponse(BaseModel):
    status: str
    version: str
    executor: str


class ProjectsResponse(BaseModel):
    items: list[Project]


class TasksResponse(BaseModel):
    items: list[Task]


# A Run plus its "ref". Built field by field rather than by subclassing Run, whose `ref`
# property a field of the same name would shadow.
RunResponse: type[BaseModel] = create_model(
    "RunResponse",
    ref=(str, Field(description="project/task#BUILD_ID")),
    **{name: (info.annotation, info) for name, info in Run.model_fields.items()},  # type: ignore[call-overload]
)


class RunPageResponse(BaseModel):
    items: list[RunResponse]  # type: ignore[valid-type]
    total: int
    limit: int
    offset: int


# A page of ``GET /projects/{project}/runs``: runs with their params and metric summaries.
RunSearchResponse = RunSearchPage


class EventsResponse(BaseModel):
    items: list[Event]


class SnapshotResponse(BaseModel):
    id: str
    size: int


class LogLineResponse(BaseModel):
    time: datetime | None
    replica: str
    text: str


class LogPageResponse(BaseModel):
    lines: list[LogLineResponse]
    cursor: str
    replicas: list[str]
    complete: bool
    before_cursor: str  # pass as ``before`` for the lines before this page's first one
    start: bool  # this page reaches the start of every selected log


def run_json(run: Run) -> dict[str, Any]:
    """A run as the API sends it: the model plus its ``ref``."""
    data = run.model_dump(mode="json")
    data["ref"] = run.ref
    return data
