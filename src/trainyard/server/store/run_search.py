"""A project's runs searched by the database: filters, text search, sorting and paging, for
the dashboard (whole runs) and the JSON search API (lean rows with their params and metrics).

Sorting by a metric joins each run's summary row of that key (``metric_series``, one row per
run and key, kept up to date on write), so it never reads points; sorting by a param joins
``run_params``. A run without the key sorts last in both directions, ties go by run id.
Params are text: numbers sort by value before other text, which sorts byte-wise (``COLLATE
"C"`` on PostgreSQL, SQLite's default), so both databases give the same order.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from typing import cast as as_table

from sqlalchemy import (
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from trainyard.core.models import Run
from trainyard.core.run_search import COLUMN_SORTS, SYSTEM_PREFIX, SortKey, parse_sort
from trainyard.server.store.runs import to_run
from trainyard.server.store.tables import (
    MetricSeriesRow,
    ProjectRow,
    RunParamRow,
    RunRow,
    TaskRow,
)

__all__ = [
    "SORT_KEYS",
    "RunFilter",
    "SummaryPage",
    "count_runs",
    "has_key",
    "list_column_values",
    "list_project_keys",
    "search_run_summaries",
    "search_runs",
]

_COLUMNS: dict[str, Any] = {
    "id": RunRow.id,
    "task": TaskRow.name,
    "status": RunRow.status,
    "updated": RunRow.updated_at,
    "created": RunRow.created_at,
}
SORT_KEYS = frozenset(COLUMN_SORTS)
# Made once: an alias adapts every column it is asked for, at a cost paid per query.
_SORT_SERIES = aliased(MetricSeriesRow, name="sort_series")
_SORT_PARAM = aliased(RunParamRow, name="sort_param")
_KEY_RUNS = aliased(RunRow, name="key_runs")
_PARAMS = as_table(Table, RunParamRow.__table__)
_SERIES = as_table(Table, MetricSeriesRow.__table__)
_Stmt = TypeVar("_Stmt", bound="Select[*tuple[Any, ...]]")
_METRIC_STATS = {"last": "last_value", "min": "min_value", "max": "max_value"}
# A param that reads as a decimal number (PostgreSQL must never be asked to cast anything
# else: it would fail the query). At most 3 exponent digits, which NUMERIC always holds.
_PG_NUMBER = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$"


@dataclass(frozen=True)
class RunFilter:
    """Which runs of a project: ``statuses`` (any of them), ``task`` (exact name), ``search``
    (the task name contains it, or a run id or build number equals it), ``archived``: False
    for the live runs, True for the archived ones, None for both."""

    statuses: Collection[str] = ()
    task: str = ""
    search: str = ""
    archived: bool | None = False


def _conditions(f: RunFilter) -> list[Any]:
    where: list[Any] = []
    if f.archived is not None:
        where.append(RunRow.archived == f.archived)
    if f.statuses:
        where.append(RunRow.status.in_(list(f.statuses)))
    if f.task:
        where.append(TaskRow.name == f.task)
    text = f.search.strip()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms: list[Any] = [TaskRow.name.ilike(f"%{escaped}%", escape="\\")]
        number = text.lstrip("#")
        if number.isdigit() and len(number) < 18:
            terms += [RunRow.id == int(number), RunRow.build_id == int(number)]
        where.append(or_(*terms))
    return where


def _number(value: Any, dialect: str) -> Any:
    """The param text as a number, NULL when it is not one."""
    if dialect == "postgresql":
        return case((value.regexp_match(_PG_NUMBER), cast(value, Numeric)), else_=None)
    # SQLite has no regular expressions: only digits, '.', 'e', '+', '-' and one digit at least.
    plain = and_(value.op("NOT GLOB")("*[^0-9eE.+-]*"), value.op("GLOB")("*[0-9]*"))
    return case((plain, cast(value, Float)), else_=None)


def _sorted(stmt: _Stmt, sort: SortKey, descending: bool, dialect: str) -> tuple[_Stmt, Any]:
    """``stmt`` joined to what ``sort`` needs and ordered by it (missing values last, ties
    by run id); also the sort value column (None for run columns)."""

    def way(column: Any) -> Any:
        return column.desc() if descending else column.asc()

    tie = way(RunRow.id)
    if sort.kind == "metric":
        series = _SORT_SERIES
        stmt = stmt.outerjoin(series, and_(series.run_id == RunRow.id, series.key == sort.key))
        value = getattr(series, _METRIC_STATS[sort.stat])
        return stmt.order_by(value.is_(None), way(value), tie), value
    if sort.kind == "param":
        param = _SORT_PARAM
        stmt = stmt.outerjoin(param, and_(param.run_id == RunRow.id, param.key == sort.key))
        text = param.value.collate("C") if dialect == "postgresql" else param.value
        number = _number(param.value, dialect)
        order = (param.value.is_(None), number.is_(None), way(number), way(text), tie)
        return stmt.order_by(*order), param.value
    column = _COLUMNS.get(sort.key, RunRow.id)
    return stmt.order_by(way(column), tie), None


def _sort_key(sort: SortKey | str) -> SortKey:
    if isinstance(sort, SortKey):
        return sort
    return parse_sort(sort) if sort in SORT_KEYS else SortKey("column", "id")


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def search_runs(
    session: Session,
    project_id: int,
    *,
    statuses: Collection[str] = (),
    task: str = "",
    search: str = "",
    sort: SortKey | str = "id",
    descending: bool = True,
    limit: int = 25,
    offset: int = 0,
    archived: bool = False,
) -> tuple[list[Run], int]:
    """One page of a project's runs (whole, for the dashboard) and the total matching.
    ``search`` matches the task name (LIKE wildcards in it are literal) or, when it is a
    number, the run id or build id. An unknown column sort is by id."""
    f = RunFilter(statuses=statuses, task=task, search=search, archived=archived)
    where = [RunRow.project_id == project_id, *_conditions(f)]
    base = select(RunRow).join(TaskRow, RunRow.task_id == TaskRow.id).where(*where)
    total = session.execute(
        select(func.count()).select_from(base.with_only_columns(RunRow.id).subquery())
    ).scalar_one()
    ordered, _ = _sorted(base, _sort_key(sort), descending, _dialect(session))
    rows = session.scalars(ordered.limit(limit).offset(offset))
    return [to_run(r) for r in rows], int(total)


@dataclass(frozen=True)
class SummaryPage:
    """What :func:`search_run_summaries` read: ``rows`` (run columns and task name, in page
    order), the runs' params and metric summaries by run id, the total, and for a metric or
    param sort whether any run of the project has the key (None otherwise, or when the page
    is empty and the caller must ask :func:`has_key`). ``project_id`` is None when the page
    is empty (the caller then checks that the project exists)."""

    rows: Sequence[Any]
    params: dict[int, dict[str, str]]
    metrics: dict[int, dict[str, dict[str, Any]]]  # key -> {last, min, max, step}
    total: int
    key_known: bool | None
    project_id: int | None


def search_run_summaries(
    session: Session,
    project: str,
    f: RunFilter,
    sort: SortKey,
    *,
    descending: bool,
    limit: int,
    offset: int,
) -> SummaryPage:
    """A page of the project's runs as lean rows, with their params and metric summaries, in
    four small queries whatever the page size: the page's ids in order (a narrow sort: the
    id, the sort value and the total counted by a window function, the project joined by
    name), their run columns, their params, their metric summaries. Whether the sort key is
    known needs no query when a run of the page has it."""
    dialect = _dialect(session)
    narrow = (
        select(RunRow.id, RunRow.project_id, func.count().over().label("total"))
        .join(TaskRow, RunRow.task_id == TaskRow.id)
        .join(ProjectRow, RunRow.project_id == ProjectRow.id)
        .where(ProjectRow.name == project, *_conditions(f))
    )
    narrow, value = _sorted(narrow, sort, descending, dialect)
    if value is not None:
        narrow = narrow.add_columns(value.label("sort_value"))
    # Core execution: lean tuples, none of the ORM's loading machinery.
    connection = session.connection()
    page = connection.execute(narrow.limit(limit).offset(offset)).all()
    if not page:
        return SummaryPage([], {}, {}, 0, None, None)
    ids = [r.id for r in page]
    by_id = {
        r.id: r
        for r in connection.execute(
            select(
                RunRow.id,
                RunRow.build_id,
                RunRow.status,
                RunRow.submitted_by,
                RunRow.created_at,
                RunRow.updated_at,
                RunRow.started_at,
                RunRow.finished_at,
                RunRow.archived,
                TaskRow.name.label("task"),
            )
            .join(TaskRow, RunRow.task_id == TaskRow.id)
            .where(_one_of(RunRow.id, ids, dialect))
        ).all()
    }
    rows = [by_id[i] for i in ids if i in by_id]
    known: bool | None = None
    if sort.kind != "column":
        # Known when a run of this page has the key; otherwise ask the database (a page
        # past the runs that have it, or a key no run has logged).
        known = any(r.sort_value is not None for r in page) or has_key(
            session, page[0].project_id, sort
        )
    # Core columns and tuple unpacking: no ORM loading, no Row attribute lookups per value.
    params: dict[int, dict[str, str]] = {}
    for run_id, key, text in connection.execute(
        select(_PARAMS.c.run_id, _PARAMS.c.key, _PARAMS.c.value)
        .where(_one_of(_PARAMS.c.run_id, ids, dialect))
        .order_by(_PARAMS.c.run_id, _PARAMS.c.key)
    ).all():
        params.setdefault(run_id, {})[key] = text
    metrics: dict[int, dict[str, dict[str, Any]]] = {}
    for run_id, key, last, low, high, step in connection.execute(
        select(
            _SERIES.c.run_id,
            _SERIES.c.key,
            _SERIES.c.last_value,
            _SERIES.c.min_value,
            _SERIES.c.max_value,
            _SERIES.c.last_step,
        )
        .where(_one_of(_SERIES.c.run_id, ids, dialect), _SERIES.c.count > 0)
        .order_by(_SERIES.c.run_id, _SERIES.c.key)
    ).all():
        metrics.setdefault(run_id, {})[key] = {"last": last, "min": low, "max": high, "step": step}
    return SummaryPage(rows, params, metrics, int(page[0].total), known, page[0].project_id)


def _one_of(column: Any, ids: list[int], dialect: str) -> Any:
    """``column IN ids`` as one bound parameter (a PostgreSQL array, a JSON list read by
    SQLite's ``json_each``): thousands of ids in an expanding ``IN`` cost more to bind than
    the query takes to run."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=postgresql.ARRAY(Integer)))
    listed = func.json_each(bindparam("ids", json.dumps(ids), type_=String))
    return column.in_(select(listed.table_valued("value").c.value))


def _key_logged(sort: SortKey, project_id: Any) -> Any:
    """EXISTS: a run of the project logged the sort's metric or param. Uncorrelated (its own
    alias of ``runs``), so the database evaluates it once per query, not once per row."""
    runs = _KEY_RUNS
    project_runs = select(runs.id).where(runs.project_id == project_id)
    if sort.kind == "metric":
        return exists().where(
            MetricSeriesRow.key == sort.key, MetricSeriesRow.run_id.in_(project_runs)
        )
    return exists().where(RunParamRow.key == sort.key, RunParamRow.run_id.in_(project_runs))


def count_runs(session: Session, project_id: int, f: RunFilter) -> int:
    """How many runs of the project match ``f``."""
    stmt = (
        select(func.count())
        .select_from(RunRow)
        .join(TaskRow, RunRow.task_id == TaskRow.id)
        .where(RunRow.project_id == project_id, *_conditions(f))
    )
    return int(session.execute(stmt).scalar_one())


def has_key(session: Session, project_id: int, sort: SortKey) -> bool:
    """Whether any run of the project logged the metric or param of ``sort``."""
    if sort.kind == "column":
        return True
    return bool(session.execute(select(_key_logged(sort, literal(project_id)))).scalar())


def list_project_keys(
    session: Session, project_id: int, *, system: bool = False
) -> tuple[list[str], list[str]]:
    """The metric keys and the param keys logged by the project's runs, sorted; resource
    metrics (``system/…``) only with ``system``."""
    runs = select(RunRow.id).where(RunRow.project_id == project_id)
    metric_stmt = select(MetricSeriesRow.key).where(MetricSeriesRow.run_id.in_(runs)).distinct()
    if not system:
        metric_stmt = metric_stmt.where(~MetricSeriesRow.key.startswith(SYSTEM_PREFIX))
    metric_keys = sorted(session.scalars(metric_stmt))
    param_keys = sorted(
        session.scalars(select(RunParamRow.key).where(RunParamRow.run_id.in_(runs)).distinct())
    )
    return metric_keys, param_keys


def list_column_values(
    session: Session, run_ids: Iterable[int], columns: Sequence[SortKey]
) -> dict[int, dict[str, Any]]:
    """For each run, the value of each column it has (keyed by the column's text): a metric
    column's value is a row with ``last_value``, ``min_value``, ``max_value``, ``last_step``
    and ``count``; a param column's is the text. One query per kind of column asked for."""
    ids = list(run_ids)
    out: dict[int, dict[str, Any]] = {i: {} for i in ids}
    if not ids or not columns:
        return out
    metric_cols: dict[str, list[SortKey]] = {}
    param_cols: dict[str, list[SortKey]] = {}
    for col in columns:
        (metric_cols if col.kind == "metric" else param_cols).setdefault(col.key, []).append(col)
    if metric_cols:
        stmt = select(
            MetricSeriesRow.run_id,
            MetricSeriesRow.key,
            MetricSeriesRow.last_value,
            MetricSeriesRow.min_value,
            MetricSeriesRow.max_value,
            MetricSeriesRow.last_step,
            MetricSeriesRow.count,
        ).where(MetricSeriesRow.run_id.in_(ids), MetricSeriesRow.key.in_(list(metric_cols)))
        for row in session.execute(stmt):
            for col in metric_cols[row.key]:
                out[row.run_id][col.text] = row
    if param_cols:
        stmt2 = select(RunParamRow.run_id, RunParamRow.key, RunParamRow.value).where(
            RunParamRow.run_id.in_(ids), RunParamRow.key.in_(list(param_cols))
        )
        for run_id, key, value in session.execute(stmt2):
            for col in param_cols[key]:
                out[run_id][col.text] = value
    return out
