"""`trainyard project ls|create|show|set-group|leaderboard|runs` and `trainyard task ls`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from trainyard.cli.output import format_age, format_time, print_json, status_text
from trainyard.cli.state import CliState
from trainyard.core.errors import InvalidInputError
from trainyard.core.leaderboard import Leaderboard, LeaderboardGoal
from trainyard.core.run_search import (
    RunSearchPage,
    RunSummary,
    SortKey,
    format_number,
    parse_column,
    parse_sort,
)

__all__ = ["project_app", "task_app"]

project_app = typer.Typer(help="Projects: they group tasks and runs.", no_args_is_help=True)
task_app = typer.Typer(help="Tasks: templates stored in a project.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@project_app.command("ls")
def project_ls(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List projects."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        projects = client.projects.list()
    if as_json:
        print_json([p.model_dump(mode="json") for p in projects])
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "GROUP", "AGE", "SUMMARY"):
        table.add_column(column, no_wrap=column != "SUMMARY")
    for project in projects:
        first_line = project.summary.strip().splitlines()[0] if project.summary.strip() else ""
        table.add_row(
            Text(project.name),
            Text(project.group),
            format_age(project.created_at),
            Text(first_line),
        )
    state.out.print(table)


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits and '-'.")],
    summary: Annotated[str, typer.Option(help="Markdown summary.")] = "",
    group: Annotated[str, typer.Option(help="The group whose GPU pools its runs use.")] = "default",
    as_json: JsonOption = False,
) -> None:
    """Create a project."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        project = client.projects.create(name, summary, group)
    if as_json:
        print_json(project.model_dump(mode="json"))
        return
    in_group = "" if project.group == "default" else f" in group {project.group}"
    state.out.print(f"created project {project.name}{in_group}", markup=False)


@project_app.command("set-group")
def project_set_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="PROJECT", help="Project name.")],
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Group name.")],
    as_json: JsonOption = False,
) -> None:
    """Move a project to a group: its queued and future runs use that group's GPU pools."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        project = client.projects.set_group(name, group)
    if as_json:
        print_json(project.model_dump(mode="json"))
        return
    state.out.print(
        f"project {project.name} is in group {project.group}: its queued and future runs use "
        "that group's GPU pools",
        markup=False,
    )


@project_app.command("show")
def project_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    as_json: JsonOption = False,
) -> None:
    """Show a project: its summary and its tasks."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        project = client.projects.get(name)
        tasks = client.tasks.list(name)
    if as_json:
        print_json(
            {
                **project.model_dump(mode="json"),
                "tasks": [t.name for t in tasks],
            }
        )
        return
    state.out.print(Text(project.name, style="bold"))
    state.out.print(f"created  {format_time(project.created_at)}", markup=False)
    state.out.print(f"group    {project.group}", markup=False)
    state.out.print(f"tasks    {', '.join(t.name for t in tasks) or '-'}", markup=False)
    board = project.leaderboard
    ranked = f"{board.metric} ({board.goal.words})" if board else "-"
    state.out.print(f"leaderboard {ranked}", markup=False)
    if project.summary.strip():
        state.out.print()
        state.out.print(project.summary.strip(), markup=False)


_PARAMS_SHOWN = 4


def _board_table(board: Leaderboard) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("RANK", "USER", "RUN", "ID", str(board.metric).upper()):
        table.add_column(column, no_wrap=True)
    table.add_column("PARAMS", no_wrap=True, overflow="ellipsis", max_width=32)
    table.add_column("RUNS", no_wrap=True)
    table.add_column("FINISHED", no_wrap=True)
    for e in board.entries:
        params = sorted(e.params.items())
        shown = " ".join(f"{k}={v}" for k, v in params[:_PARAMS_SHOWN])
        if len(params) > _PARAMS_SHOWN:
            shown += f" (+{len(params) - _PARAMS_SHOWN})"
        table.add_row(
            str(e.rank),
            Text(e.user or "-"),
            Text(e.ref),
            str(e.run_id),
            format_number(e.value),
            Text(shown or "-"),
            str(e.runs),
            format_time(e.finished_at) if e.finished_at else status_text(e.status.value),
        )
    return table


def _print_board(state: CliState, board: Leaderboard) -> None:
    if board.metric is None or board.goal is None:
        state.err.print(
            f"project {board.project} has no leaderboard metric yet: set one with `trainyard "
            f"project leaderboard {board.project} --metric METRIC --higher-is-better` (or "
            "--lower-is-better)",
            markup=False,
        )
        return
    state.out.print(
        f"leaderboard of {board.project}: {board.metric}, {board.goal.words}; each user's best "
        "run by its last value",
        markup=False,
    )
    if not board.entries:
        state.err.print(f"no run of {board.project} has logged {board.metric} yet", markup=False)
        return
    state.out.print(_board_table(board))


@project_app.command("leaderboard")
def project_leaderboard(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="PROJECT", help="Project name.")],
    metric: Annotated[
        str | None,
        typer.Option(help="Set the metric that ranks runs (with a goal flag).", metavar="KEY"),
    ] = None,
    higher: Annotated[
        bool, typer.Option("--higher-is-better", help="With --metric: higher values win.")
    ] = False,
    lower: Annotated[
        bool, typer.Option("--lower-is-better", help="With --metric: lower values win.")
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the leaderboard metric.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a project's leaderboard: each user's best run by the evaluation metric. With
    --metric and --higher-is-better or --lower-is-better, set that metric first (until users
    and roles exist anyone can; then only the project's owner)."""
    state: CliState = ctx.ensure_object(CliState)
    if higher and lower:
        raise typer.BadParameter("give one of --higher-is-better and --lower-is-better")
    if (higher or lower) and metric is None:
        raise typer.BadParameter("--higher-is-better/--lower-is-better go with --metric KEY")
    if metric is not None and not (higher or lower):
        raise typer.BadParameter(
            "say which way is better: add --higher-is-better (e.g. accuracy) or "
            "--lower-is-better (e.g. a loss)",
            param_hint="--metric",
        )
    if clear and metric is not None:
        raise typer.BadParameter("give --metric or --clear, not both")
    with state.client() as client:
        if clear:
            client.projects.clear_leaderboard(name)
            if not as_json:
                state.out.print(f"project {name} has no leaderboard metric now", markup=False)
                return
        elif metric is not None:
            goal = LeaderboardGoal.MAX if higher else LeaderboardGoal.MIN
            client.projects.set_leaderboard(name, metric, goal)
        board = client.projects.leaderboard(name)
    if as_json:
        print_json(board.model_dump(mode="json"))
        return
    _print_board(state, board)


def _sort_option(value: str) -> str:
    try:
        return parse_sort(value).text
    except InvalidInputError as exc:
        raise typer.BadParameter(exc.message) from exc


def _column_options(values: list[str] | None) -> list[str]:
    try:
        return [parse_column(v).text for v in values or []]
    except InvalidInputError as exc:
        raise typer.BadParameter(exc.message) from exc


def _column_value(run: RunSummary, col: SortKey) -> str:
    if col.kind == "param":
        return run.params.get(col.key, "-")
    metric = run.metrics.get(col.key)
    if metric is None:
        return "-"
    return format_number({"last": metric.last, "min": metric.min, "max": metric.max}[col.stat])


def _runs_table(page: RunSearchPage, columns: list[SortKey]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("RUN", "ID", "STATUS", "USER"):
        table.add_column(column, no_wrap=True)
    for col in columns:
        table.add_column(col.label.upper(), no_wrap=True, justify="right")
    table.add_column("CREATED", no_wrap=True)
    for run in page.items:
        table.add_row(
            Text(run.ref),
            str(run.id),
            status_text(run.status.value),
            Text(run.submitted_by or "-"),
            *(Text(_column_value(run, c)) for c in columns),
            format_age(run.created_at),
        )
    return table


@project_app.command("runs")
def project_runs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="PROJECT", help="Project name.")],
    sort: Annotated[
        str,
        typer.Option(
            help="id, task, status, updated, created, metric:KEY (last value; metric:KEY:min, "
            ":max) or param:KEY; runs without the key come last.",
            callback=_sort_option,
        ),
    ] = "id",
    ascending: Annotated[
        bool, typer.Option("--asc", help="Smallest first (default: largest first).")
    ] = False,
    status: Annotated[
        str | None, typer.Option(help="Comma list of statuses.", metavar="STATUSES")
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--col",
            help="Show this metric:KEY or param:KEY as a column (repeatable); the sort key is "
            "shown by default.",
            callback=_column_options,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000, help="At most this many runs.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List a project's runs sorted by the server, by a metric or a param too, e.g.
    `trainyard project runs vision --sort metric:val/acc --col param:lr`."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        page = client.runs.search(
            name, sort=sort, order="asc" if ascending else "desc", status=status, limit=limit
        )
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    columns = [parse_column(c) for c in column or []]
    key = parse_sort(sort)
    if key.kind != "column" and key not in columns:
        columns.insert(0, key)
    if not page.items:
        state.err.print(f"no runs in project {name}", markup=False)
        return
    state.out.print(_runs_table(page, columns))
    if page.total > len(page.items):
        state.err.print(f"showing {len(page.items)} of {page.total} runs (use --limit)")


@task_app.command("ls")
def task_ls(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="Project whose tasks to list.")] = "default",
    as_json: JsonOption = False,
) -> None:
    """List the tasks of a project."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        tasks = client.tasks.list(project)
    if as_json:
        print_json([t.model_dump(mode="json") for t in tasks])
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TASK", "FORMAT", "RESOURCES", "REPLICAS", "RUNS", "UPDATED"):
        table.add_column(column, no_wrap=True)
    for task in tasks:
        table.add_row(
            Text(task.name),
            task.format.value,
            Text(", ".join(r.name for r in task.spec.resources)),
            str(task.spec.replica_count),
            str(task.runs_count),
            format_age(task.updated_at),
        )
    state.out.print(table)
