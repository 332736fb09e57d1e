"""What the dashboard asks for, as one object, and the service call that answers it; the GPU
lookup the run view uses to name the GPUs of a placement."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from trainyard.core.models import Run
from trainyard.core.scheduling import Gpu
from trainyard.core.status import RunStatus
from trainyard.server.services import scheduling as scheduling_service
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project
from trainyard.server.store.run_search import SORT_KEYS, search_runs

__all__ = ["SORTS", "RunQuery", "gpus_by_uuid", "query_runs"]

SORTS = SORT_KEYS


@dataclass(frozen=True)
class RunQuery:
    """What the dashboard asks for. ``search`` matches the task name or the run id."""

    project: str
    statuses: Collection[RunStatus] = ()
    task: str = ""
    search: str = ""
    sort: str = "id"
    descending: bool = True
    limit: int = 25
    offset: int = 0
    archived: bool = False


def query_runs(ctx: ServiceContext, query: RunQuery) -> tuple[list[Run], int]:
    """One page of the project's runs and the total matching (NotFoundError for an unknown
    project)."""
    with ctx.db.read() as session:
        project = load_project(session, query.project)
        return search_runs(
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


def gpus_by_uuid(ctx: ServiceContext) -> dict[str, Gpu]:
    """Every GPU of every node, by UUID: a run's placement names its GPUs by UUID only."""
    return {g.uuid: g for node in scheduling_service.list_nodes(ctx) for g in node.gpus}
