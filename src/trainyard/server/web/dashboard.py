"""The experiments dashboard: the runs of a project with filters, sorting (by run columns, a
metric or a param, done by the database), paging, metric and param columns, and the check
boxes that pick runs to compare; and the table alone, which the page polls every 2 s.

Both routes take the same query parameters (:class:`DashboardArgs`), so the table the page
polls is always the one it shows: ``table_url`` carries every parameter, the columns too.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.models import Project
from trainyard.core.run_search import SortKey, format_number, parse_column, parse_sort
from trainyard.core.status import RunStatus
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import tasks as task_service
from trainyard.server.services.compare import MAX_COMPARE, MIN_COMPARE
from trainyard.server.services.context import ServiceContext
from trainyard.server.web.queries import ProjectKeys, RunQuery, project_keys, query_table

__all__ = ["MAX_COLUMNS", "DashboardArgs", "default_columns", "router"]

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
MAX_COLUMNS = 12
DEFAULT_COLUMNS = 3  # metric columns shown when the URL picks none and no leaderboard is set
_PARAM_SHOWN = 40  # characters of a param value in a cell (the whole value in its title)


class DashboardArgs:
    """The dashboard's query parameters; unknown statuses, sorts and columns are ignored.
    ``cols`` absent means the default columns; ``cols=`` (empty) means none."""

    def __init__(
        self,
        status: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
        task: str = "",
        q: str = "",
        sort: str = "id",
        order: str = "desc",
        page: int = 1,
        archived: bool = False,
        cols: Annotated[list[str] | None, Query()] = None,
    ) -> None:
        self.statuses = [RunStatus(s) for s in status if s in RunStatus.__members__.values()]
        self.task = task
        self.q = q
        try:
            self.sort = parse_sort(sort)
        except InvalidInputError:
            self.sort = SortKey("column", "id")
        self.descending = order != "asc"
        self.page = max(1, page)
        self.archived = archived
        self.cols = None if cols is None else _parse_columns(cols)


Args = Annotated[DashboardArgs, Depends()]


def _parse_columns(texts: list[str]) -> list[SortKey]:
    out: list[SortKey] = []
    for text in texts:
        if not text.strip():
            continue
        try:
            col = parse_column(text)
        except InvalidInputError:
            continue
        if col not in out:
            out.append(col)
    return out[:MAX_COLUMNS]


def default_columns(project: Project, metric_keys: list[str]) -> list[SortKey]:
    """The leaderboard's metric when the project has one, else its first metric keys
    alphabetically."""
    if project.leaderboard is not None:
        return [SortKey("metric", project.leaderboard.metric, "last")]
    return [SortKey("metric", k, "last") for k in metric_keys[:DEFAULT_COLUMNS]]


def _cell(values: dict[str, Any], col: SortKey) -> dict[str, str]:
    """What a metric or param cell shows (``text``) and its tooltip (``title``)."""
    value = values.get(col.text)
    if value is None:
        return {"text": "", "title": f"no {col.kind} {col.key}"}
    if col.kind == "param":
        text = str(value)
        shown = text if len(text) <= _PARAM_SHOWN else text[: _PARAM_SHOWN - 1] + "…"
        return {"text": shown, "title": text}
    number = {"last": value.last_value, "min": value.min_value, "max": value.max_value}
    title = (
        f"{col.key}: last {value.last_value!r} at step {value.last_step} · min "
        f"{value.min_value!r} · max {value.max_value!r} · {value.count} points"
    )
    return {"text": format_number(number[col.stat]), "title": title}


def _picker(keys: ProjectKeys, columns: list[SortKey]) -> list[dict[str, Any]]:
    """The Columns menu: every metric (its last value) and param the project logged, plus
    any column the URL names that is not among them (so it can be unticked)."""
    chosen = {c.text for c in columns}
    groups: dict[str, list[SortKey]] = {
        "metric": [SortKey("metric", k, "last") for k in keys.metrics],
        "param": [SortKey("param", k) for k in keys.params],
    }
    for col in columns:
        if col not in groups[col.kind]:
            groups[col.kind].append(col)
    titles = {
        "metric": ("Metrics", "No metric logged yet."),
        "param": ("Params", "No param logged yet."),
    }
    return [
        {
            "title": titles[kind][0],
            "empty": titles[kind][1],
            "items": [
                {"text": c.text, "label": c.label, "checked": c.text in chosen} for c in cols
            ],
        }
        for kind, cols in groups.items()
    ]


def dashboard_context(
    ctx: ServiceContext, project: str, args: DashboardArgs, keys: ProjectKeys | None
) -> dict[str, Any]:
    """Everything the dashboard and its table need. ``keys`` (the picker's) may be None for
    the table alone when the URL names its columns."""
    explicit = args.cols is not None
    if args.cols is not None:
        columns = args.cols
    else:
        keys = keys or project_keys(ctx, project)
        columns = default_columns(keys.project, keys.metrics)
    table = query_table(
        ctx,
        RunQuery(
            project=project,
            statuses=args.statuses,
            task=args.task,
            search=args.q,
            sort=args.sort,
            descending=args.descending,
            limit=PAGE_SIZE,
            offset=(args.page - 1) * PAGE_SIZE,
            archived=args.archived,
            columns=columns,
        ),
    )
    params: list[tuple[str, str]] = [("status", s.value) for s in args.statuses]
    params += [(k, v) for k, v in (("task", args.task), ("q", args.q)) if v]
    if args.archived:
        params.append(("archived", "1"))
    sort, descending, page = args.sort.text, args.descending, args.page
    order = "desc" if descending else "asc"
    default_cols_link = "?" + urlencode([*params, ("sort", sort), ("order", order)])
    params += [("cols", c.text) for c in columns] or [("cols", "")]

    def link(**change: Any) -> str:
        values = {"sort": sort, "order": order, "page": page, **change}
        return "?" + urlencode(params + [(k, str(v)) for k, v in values.items()])

    def sort_link(key: str) -> str:
        flip = "asc" if key == sort and descending else "desc"
        return link(sort=key, order=flip, page=1)

    def cell(run_id: int, col: SortKey) -> dict[str, str]:
        return _cell(table.values.get(run_id, {}), col)

    total = table.total
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return {
        "project": project,
        "runs": table.runs,
        "total": total,
        "page": page,
        "pages": pages,
        "first_link": link(page=1),
        "prev_link": link(page=min(page - 1, pages)) if page > 1 else None,
        "next_link": link(page=page + 1) if page < pages else None,
        "sort": sort,
        "descending": descending,
        "sort_link": sort_link,
        "selected_statuses": {s.value for s in args.statuses},
        "all_statuses": [s.value for s in RunStatus],
        "task": args.task,
        "q": args.q,
        "archived": args.archived,
        "columns": columns,
        "cols_explicit": explicit,
        "default_cols_link": default_cols_link,
        "default_count": DEFAULT_COLUMNS,
        "cell": cell,
        "picker": _picker(keys, columns) if keys else [],
        "leaderboard": keys.project.leaderboard if keys else None,
        "compare_min": MIN_COMPARE,
        "compare_max": MAX_COMPARE,
        "table_url": f"/projects/{project}/runs/table{link()}",
    }


@router.get("/projects/{project}/runs", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Ctx, project: str, args: Args) -> HTMLResponse:
    from trainyard.server.web.pages import _not_found, _page

    try:
        keys = project_keys(ctx, project)
        context = dashboard_context(ctx, project, args, keys)
        context["tasks"] = [t.name for t in task_service.list_tasks(ctx, project)]
    except NotFoundError as exc:
        return _not_found(request, ctx, exc)
    return _page(request, ctx, "dashboard.html", context, project=project)


@router.get("/projects/{project}/runs/table", response_class=HTMLResponse)
def dashboard_table(request: Request, ctx: Ctx, project: str, args: Args) -> HTMLResponse:
    """The table alone, which the dashboard polls every 2 s."""
    from trainyard.server.web.pages import templates

    try:
        context = dashboard_context(ctx, project, args, None)
    except NotFoundError as exc:
        return HTMLResponse(f"<p>{Markup.escape(exc.message)}</p>", status_code=404)
    return templates.TemplateResponse(request, "_runs_table.html", context)
