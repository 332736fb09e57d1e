"""`trainyard project ls|create|show|set-group` and `trainyard task ls`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from trainyard.cli.output import format_age, format_time, print_json
from trainyard.cli.state import CliState

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
    if project.summary.strip():
        state.out.print()
        state.out.print(project.summary.strip(), markup=False)


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
