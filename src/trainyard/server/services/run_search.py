"""Searching a project's runs for the JSON API and the SDK: filters, a sort by a run column,
a metric or a param, and paging; each run with its params and metric summaries.

The result is built as plain JSON-ready dicts, not models: a page of 2,000 runs with their
params and metrics would cost more to validate as pydantic models than to query (the shape
is :class:`trainyard.core.run_search.RunSearchPage`, which clients parse).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from trainyard.core.errors import InvalidInputError
from trainyard.core.run_search import SortKey, UnknownKeyError, parse_sort
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project
from trainyard.server.store import Session
from trainyard.server.store import run_search as store

__all__ = ["MAX_LIMIT", "check_order", "known_keys_message", "search_runs"]

MAX_LIMIT = 5_000
_LISTED_KEYS = 30


def check_order(order: str) -> bool:
    """True for ``desc``, False for ``asc``; InvalidInputError otherwise."""
    word = order.strip().lower()
    if word not in ("asc", "desc"):
        raise InvalidInputError(
            f"order: {order!r} is not asc or desc", fields={"order": order[:20]}
        )
    return word == "desc"


def _iso(value: datetime | None) -> str | None:
    # As pydantic writes UTC datetimes (the rest of the API): "…T12:00:00.5Z".
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def known_keys_message(session: Session, project_id: int, project: str, sort: SortKey) -> str:
    """Why ``sort`` cannot be used, listing the keys of that kind the project has."""
    metric_keys, param_keys = store.list_project_keys(session, project_id, system=True)
    keys = metric_keys if sort.kind == "metric" else param_keys
    listed = ", ".join(keys[:_LISTED_KEYS]) + (" …" if len(keys) > _LISTED_KEYS else "")
    return (
        f"sort: no run of project '{project}' has logged the {sort.kind} {sort.key!r}; "
        f"its {sort.kind}s: {listed or 'none yet'}"
    )


def search_runs(
    ctx: ServiceContext,
    project: str,
    *,
    sort: str = "id",
    order: str = "desc",
    statuses: Collection[str] = (),
    task: str = "",
    search: str = "",
    archived: bool | None = False,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of the project's runs as the API sends it (``RunSearchPage``'s shape).

    InvalidInputError (400) for a malformed sort or order or a limit out of 1..5,000;
    UnknownKeyError (400) for a metric or param that no run of the project has logged,
    listing those it has; NotFoundError for the project.
    """
    key = parse_sort(sort)
    descending = check_order(order)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit: {limit} is out of range; ask for 1 to {MAX_LIMIT} runs a page",
            fields={"limit": limit},
        )
    if offset < 0:
        raise InvalidInputError(f"offset: {offset} is negative", fields={"offset": offset})
    f = store.RunFilter(statuses=statuses, task=task, search=search, archived=archived)
    with ctx.db.read() as session:
        page = store.search_run_summaries(
            session, project, f, key, descending=descending, limit=limit, offset=offset
        )
        total, known, project_id = page.total, page.key_known, page.project_id
        if project_id is None:  # an empty page: the project may not exist
            project_id = load_project(session, project).id
            known = store.has_key(session, project_id, key) if key.kind != "column" else None
            total = store.count_runs(session, project_id, f) if offset else 0
        if known is False:
            message = known_keys_message(session, project_id, project, key)
            raise UnknownKeyError(message, fields={"sort": key.text, "key": key.key})
    items = []
    for r in page.rows:
        items.append(
            {
                "id": r.id,
                "ref": f"{project}/{r.task}#{r.build_id}",
                "project": project,
                "task": r.task,
                "build_id": r.build_id,
                "status": r.status,
                "submitted_by": r.submitted_by or "",
                "created_at": _iso(r.created_at),
                "updated_at": _iso(r.updated_at),
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "archived": bool(r.archived),
                "params": page.params.get(r.id, {}),
                "metrics": page.metrics.get(r.id, {}),
            }
        )
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "sort": key.text,
        "order": "desc" if descending else "asc",
    }
