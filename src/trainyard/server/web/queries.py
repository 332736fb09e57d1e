"""What the dashboard asks for, as one object, and the service calls that answer it (the
runs of a page with the values of its metric and param columns; the keys the column picker
offers); the GPU lookup the run view uses to name the GPUs of a placement."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainyard.core.models import Project, Run
from trainyard.core.run_search import SortKey
from trainyard.core.scheduling import Gpu
from trainyard.core.status import RunStatus
from trainyard.server.services import scheduling as scheduling_service
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project
from trainyard.server.store.projects import to_project
from trainyard.server.store.run_search import (
    SORT_KEYS,
    list_column_values,
    list_project_keys,
    search_runs,
)

__all__ = [
    "SORTS",
    "ProjectKeys",
    "RunQuery",
    "RunTable",
    "gpus_by_uuid",
    "project_keys",
    "query_runs",
    "query_table",
]

SORTS = SORT_KEYS


@dataclass(frozen=True)
class RunQuery:
    """What the dashboard asks for. ``search`` matches the task name or the run id;
    ``columns`` are the metric and param columns whose values the table shows."""

    project: str
    statuses: Collection[RunStatus] = ()
    task: str = ""
    search: str = ""
    sort: SortKey | str = "id"
    descending: bool = True
    limit: int = 25
    offset: int = 0
    archived: bool = False
    columns: Sequence[SortKey] = ()


@dataclass
class RunTable:
    """A page of runs, the total matching, and each run's column values (by run id, then
    column text: a metric summary row or a param's text)."""

    runs: list[Run]
    total: int
    values: dict[int, dict[str, Any]] = field(default_factory=dict)


def query_table(ctx: ServiceContext, query: RunQuery) -> RunTable:
    """One page of the project's runs with their column values (NotFoundError for an
    unknown project), in one read transaction."""
    with ctx.db.read() as session:
        project = load_project(session, query.project)
        runs, total = search_runs(
            session,
            project.id,
            statuses=[s.value for s in query.statuses],
            task=query.task,
            search=query.search,
            sort=query.sort,
            descending=query.descending,
            limit=query.limit,
            offset=query.offset,
            archived=query.archived,
        )
        values = list_column_values(session, [r.id for r in runs], query.columns)
    return RunTable(runs, total, values)


def query_runs(ctx: ServiceContext, query: RunQuery) -> tuple[list[Run], int]:
    """One page of the project's runs and the total matching (NotFoundError for an unknown
    project)."""
    table = query_table(ctx, query)
    return table.runs, table.total


@dataclass(frozen=True)
class ProjectKeys:
    """The project and the metric keys (resource metrics left out) and param keys its runs
    logged, sorted."""

    project: Project
    metrics: list[str]
    params: list[str]


def project_keys(ctx: ServiceContext, project: str) -> ProjectKeys:
    """NotFoundError for an unknown project."""
    with ctx.db.read() as session:
        row = load_project(session, project)
        metrics, params = list_project_keys(session, row.id)
        return ProjectKeys(to_project(row), metrics, params)


def gpus_by_uuid(ctx: ServiceContext) -> dict[str, Gpu]:
    """Every GPU of every node, by UUID: a run's placement names its GPUs by UUID only."""
    return {g.uuid: g for node in scheduling_service.list_nodes(ctx) for g in node.gpus}
