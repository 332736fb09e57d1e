"""`trainyard ps`, `logs`, `describe` and `stop`: looking at runs and stopping them."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from trainyard.cli.follow import follow_logs, print_log_pages
from trainyard.cli.output import (
    LinePrinter,
    event_what,
    format_age,
    format_duration,
    format_time,
    gpu_names,
    print_json,
    replica_names,
    replicas_summary,
    requested_gpus,
    run_json,
    status_text,
)
from trainyard.cli.state import CliState
from trainyard.client import parse_run_ref
from trainyard.core.errors import InvalidInputError, UserError
from trainyard.core.models import Event, Run
from trainyard.core.quantity import format_cpu, format_memory
from trainyard.core.scheduling import Gpu
from trainyard.core.status import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus

__all__ = ["describe_command", "logs_command", "ps_command", "stop_command"]


def _check_ref(value: str) -> str:
    """Refuse a malformed run reference as a usage error (exit 2) before calling the server."""
    try:
        parse_run_ref(value)
    except InvalidInputError as exc:
        raise typer.BadParameter(exc.message) from exc
    return value


RunArg = Annotated[
    str,
    typer.Argument(metavar="RUN", help="Run id (42) or project/task#N.", callback=_check_ref),
]


def _ordered_statuses(text: str) -> str:
    names = [s.strip() for s in text.split(",") if s.strip()]
    valid = {s.value for s in RunStatus}
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise typer.BadParameter(
            f"unknown status {', '.join(repr(b) for b in bad) or repr(text)}: use a comma list "
            f"of {', '.join(s.value for s in RunStatus)}",
            param_hint="--status",
        )
    return ",".join(names)


def ps_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only runs of this project.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Comma list of statuses, e.g. running,queued.", metavar="STATUSES"),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Finished runs too (default: active only).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many runs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """List runs, newest first: active ones unless --all or --status says otherwise."""
    state: CliState = ctx.ensure_object(CliState)
    if status is not None:
        wanted: str | None = _ordered_statuses(status)
    elif all_:
        wanted = None
    else:
        wanted = ",".join(s.value for s in RunStatus if s in ACTIVE_STATUSES)
    with state.client() as client:
        page = client.runs.list(project=project, status=wanted, limit=limit)
    if as_json:
        print_json(
            {
                "items": [run_json(r) for r in page.items],
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
            }
        )
        return
    if not page.items:
        hint = "" if all_ or status else " (finished runs are shown with --all)"
        state.err.print(f"no runs{hint}", markup=False)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("RUN", "ID", "TASK", "STATUS", "USER", "REPLICAS", "GPUS", "AGE"):
        table.add_column(column, no_wrap=True)
    for run in page.items:
        gpus = requested_gpus(run)
        table.add_row(
            Text(run.ref),
            str(run.id),
            Text(run.task),
            status_text(run.status),
            Text(run.submitted_by or "-"),
            replicas_summary(run),
            str(gpus) if gpus else "-",
            format_age(run.created_at),
        )
    state.out.print(table)
    if page.total > len(page.items):
        state.err.print(f"showing {len(page.items)} of {page.total} runs (use --limit)")


def logs_command(
    ctx: typer.Context,
    run_ref: RunArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    replica: Annotated[
        list[str] | None,
        typer.Option("--replica", "-r", metavar="NAME", help="Only this replica (repeatable)."),
    ] = None,
    tail: Annotated[
        int | None, typer.Option(min=0, help="Only the last N lines (then follow, with -f).")
    ] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line with its UTC time.")
    ] = False,
) -> None:
    """Print a run's logs, every replica merged by time, each line prefixed by its replica."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        names = replica_names(run)
        unknown = [r for r in replica or [] if r not in names]
        if unknown:
            raise InvalidInputError(
                f"run '{run.ref}' has no replica {', '.join(repr(u) for u in unknown)}; its "
                f"replicas are {', '.join(names)}"
            )
        printer = LinePrinter(state.out, replica or names, timestamps=timestamps)
        cursor: str | None = None
        if not follow or tail is not None:
            cursor = print_log_pages(client, run, printer, replicas=replica, tail=tail)
        if follow:
            try:
                final = follow_logs(state, client, run, printer, replicas=replica, cursor=cursor)
            except KeyboardInterrupt:
                printer.flush()
                raise typer.Exit(130) from None
            state.err.print(Text.assemble(f"{run.ref}: ", status_text(final)))


def _scheduling_text(run: Run) -> str:
    """``group research, priority 5, start immediately, queue timeout 5m``."""
    parts = [f"group {run.group}", f"priority {run.priority}"]
    if run.start_immediately:
        parts.append("start immediately (GPUs shared)")
    if run.spec.timeout_seconds:
        parts.append(f"queue timeout {format_duration(run.spec.timeout_seconds)}")
    return ", ".join(parts)


def _placement_table(run: Run, gpus: list[Gpu]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("REPLICA", "NODE", "GPUS", "CPU", "MEMORY"):
        table.add_column(column, no_wrap=column != "GPUS")
    for p in run.placements:
        held = gpu_names(p.gpus, gpus) if p.gpus else "-"
        if p.gpus and p.shared:
            held += " (shared)"
        table.add_row(
            p.replica,
            Text(p.node),
            Text(held),
            format_cpu(p.cpu_millis) if p.cpu_millis else "-",
            format_memory(p.memory_bytes) if p.memory_bytes else "-",
        )
    return table


def _describe_text(state: CliState, run: Run, events: list[Event], gpus: list[Gpu]) -> None:
    out = state.out
    head = Text.assemble((run.ref, "bold"), f"  (run {run.id})  ", status_text(run.status))
    if run.reason:
        head.append(f"  {run.reason}")
    out.print(head)
    rows: list[tuple[str, str]] = [
        ("task", f"{run.project}/{run.task} ({run.spec.format.value} format)"),
        ("executor", run.executor),
        ("submitted by", run.submitted_by or "-"),
        ("scheduling", _scheduling_text(run)),
    ]
    if run.status == RunStatus.QUEUED and run.queue_position is not None:
        rows.append(("queue", f"position {run.queue_position}: {run.reason or 'queued'}"))
    rows += [
        ("created", format_time(run.created_at)),
        ("started", format_time(run.started_at)),
        ("finished", format_time(run.finished_at)),
    ]
    if run.parameters:
        params = ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items()))
        rows.append(("parameters", params))
    if run.git is not None:
        git = run.git
        where = git.branch or "(detached)"
        commit = git.commit or "(no commit)"
        rows.append(("git", f"{where} {commit}{' (dirty)' if git.dirty else ''}"))
        if git.remote:
            rows.append(("remote", git.remote))
    if run.snapshot_id:
        rows.append(("code", f"snapshot {run.snapshot_id[:12]}"))
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    for key, value in rows:
        info.add_row(key, Text(value))
    out.print(info)

    if run.placements:
        out.print(Text("\nplacement", style="bold"))
        out.print(_placement_table(run, gpus))

    out.print(Text("\nreplicas", style="bold"))
    replicas = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "STATUS", "ADDRESS", "PID", "EXIT", "RESTARTS", "REASON"):
        replicas.add_column(column, no_wrap=column != "REASON")
    if not run.replicas:
        for name in replica_names(run):
            replicas.add_row(name, status_text("pending"), "-", "-", "-", "0", "")
    for r in run.replicas:
        if r.signal is not None:
            exit_text = f"signal {r.signal}"
        else:
            exit_text = "-" if r.exit_code is None else str(r.exit_code)
        replicas.add_row(
            r.name,
            status_text(r.status),
            r.address or "-",
            str(r.pid) if r.pid else "-",
            exit_text,
            str(r.restarts),
            Text(r.reason),
        )
    out.print(replicas)

    out.print(Text("\nevents", style="bold"))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TIME", "WHAT", "REPLICA", "REASON"):
        table.add_column(column, no_wrap=column != "REASON")
    for event in events:
        # The message often repeats the reason with details after it: show it once.
        if event.message.startswith(event.reason):
            detail = event.message or event.reason
        else:
            detail = " — ".join(p for p in (event.reason, event.message) if p)
        table.add_row(format_time(event.time), event_what(event), event.replica or "", Text(detail))
    out.print(table)


def describe_command(
    ctx: typer.Context,
    run_ref: RunArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run and events as JSON.")
    ] = False,
) -> None:
    """Show a run: status and reason, task, scheduling (queue position, placement on nodes and
    GPUs), parameters, git, times, replicas and events."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        events = client.runs.events(run.id)
        # GPUs are shown as NODE:INDEX, as `trainyard node ls` lists them.
        wants_gpus = not as_json and any(p.gpus for p in run.placements)
        gpus = [g for n in client.nodes.list() for g in n.gpus] if wants_gpus else []
    if as_json:
        print_json({**run_json(run), "events": [e.model_dump(mode="json") for e in events]})
        return
    _describe_text(state, run, events, gpus)


def stop_command(
    ctx: typer.Context,
    run_ref: RunArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the run has stopped.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0, help="With --wait: give up after this many seconds.")
    ] = 60.0,
) -> None:
    """Stop a run: SIGTERM to every replica's process tree, SIGKILL after a grace period."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        if run.status in TERMINAL_STATUSES:
            state.out.print(f"{run.ref} is already {run.status.value}", markup=False)
            return
        run = client.runs.stop(run.id)
        state.out.print(Text.assemble(f"{run.ref} (run {run.id}): ", status_text(run.status)))
        if not wait or run.status in TERMINAL_STATUSES:
            return
        deadline = time.monotonic() + timeout
        while run.status not in TERMINAL_STATUSES:
            if time.monotonic() > deadline:
                raise UserError(
                    f"run '{run.ref}' is still {run.status.value} after {timeout:.0f} s; "
                    f"see `trainyard describe {run.ref}`"
                )
            time.sleep(0.2)
            run = client.runs.get(run.id)
        state.out.print(Text.assemble(f"{run.ref}: ", status_text(run.status)))
