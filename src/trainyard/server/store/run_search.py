"""The dashboard's run search: filters, text search, sorting and paging done by the database.

``runs.list_runs`` (the JSON API's) is newest-first only; the dashboard also sorts by other
columns and searches, so it has this read-only query over the same tables.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from trainyard.core.models import Run
from trainyard.server.store.runs import to_run
from trainyard.server.store.tables import RunRow, TaskRow

__all__ = ["SORT_KEYS", "search_runs"]

# Sort keys offered -> the column; every sort breaks ties by id.
_SORTS: dict[str, Any] = {
    "id": RunRow.id,
    "task": TaskRow.name,
    "status": RunRow.status,
    "updated": RunRow.updated_at,
}
SORT_KEYS = frozenset(_SORTS)


def search_runs(
    session: Session,
    project_id: int,
    *,
    statuses: Collection[str] = (),
    task: str = "",
    search: str = "",
    sort: str = "id",
    descending: bool = True,
    limit: int = 25,
    offset: int = 0,
    archived: bool = False,
) -> tuple[list[Run], int]:
    """One page of a project's runs and the total matching. ``search`` matches the task name
    (LIKE wildcards in it are literal) or, when it is a number, the run id or build id."""
    where: list[Any] = [RunRow.project_id == project_id, RunRow.archived == archived]
    if statuses:
        where.append(RunRow.status.in_(list(statuses)))
    if task:
        where.append(TaskRow.name == task)
    text = search.strip()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms: list[Any] = [TaskRow.name.ilike(f"%{escaped}%", escape="\\")]
        number = text.lstrip("#")
        if number.isdigit() and len(number) < 18:
            terms += [RunRow.id == int(number), RunRow.build_id == int(number)]
        where.append(or_(*terms))
    base = select(RunRow).join(TaskRow, RunRow.task_id == TaskRow.id).where(*where)
    total = session.execute(
        select(func.count()).select_from(base.with_only_columns(RunRow.id).subquery())
    ).scalar_one()
    column = _SORTS.get(sort, RunRow.id)
    order = [column.desc(), RunRow.id.desc()] if descending else [column, RunRow.id]
    rows = session.scalars(base.order_by(*order).limit(limit).offset(offset))
    return [to_run(r) for r in rows], int(total)
