"""`trainyard run` and `trainyard validate`: check a manifest offline, snapshot its directory,
submit it, and optionally follow it to the end.

The CLI imports :mod:`trainyard.manifest` (which depends only on core and PyYAML) so a bad
manifest or parameter is reported before anything is uploaded or started.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from trainyard.cli.autostart import server_answers, start_background_server
from trainyard.cli.follow import follow_logs
from trainyard.cli.output import LinePrinter, print_json, replica_names, run_json, status_text
from trainyard.cli.state import CliState
from trainyard.client import TrainyardClient, format_size, make_snapshot
from trainyard.client.runs import os_user
from trainyard.core.errors import InvalidInputError
from trainyard.core.models import GitInfo, Run, TaskSpec
from trainyard.core.status import RunStatus

__all__ = ["run_command", "validate_command"]

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        help="A task parameter (repeatable): fills {{ .NAME }} in commands.",
    ),
]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise InvalidInputError(f"{path} is a directory: give the manifest file in it") from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from exc


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "task"


def _load(path: Path, params: list[str] | None) -> tuple[str, TaskSpec, dict[str, str]]:
    """Read, load and resolve the manifest offline: (its text, its spec, the raw parameters).

    Raises ManifestError (every issue at its line and column) or ParameterError.
    """
    from trainyard.manifest import load_manifest, parse_param_args, resolve_task

    data = _read(path)
    # An AIchor manifest has no name: it takes its directory's (made a DNS label).
    spec = load_manifest(data, filename=str(path), default_name=path.resolve().parent.name)
    raw = parse_param_args(params or [])
    resolve_task(spec, raw)
    # load_manifest has refused anything that is not UTF-8.
    return data.decode("utf-8"), spec, raw


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def validate_command(
    ctx: typer.Context,
    task_yaml: Annotated[Path, typer.Argument(metavar="TASK_YAML", help="The manifest file.")],
    param: ParamOption = None,
) -> None:
    """Check a manifest (and parameters) without running it; errors at line:column."""
    state: CliState = ctx.ensure_object(CliState)
    _, spec, _ = _load(task_yaml, param)
    state.out.print(
        f"{task_yaml}: ok ({spec.format.value} format, task '{spec.name}', "
        f"{_plural(spec.replica_count, 'replica')} in {_plural(len(spec.resources), 'resource')})",
        markup=False,
    )
    if spec.aichor is not None and spec.aichor.operator == "kuberay":
        state.err.print(
            Text(
                "note: operator 'kuberay' needs the Ray backend, which this version of "
                "trainyard does not have yet: `trainyard run` will refuse this manifest",
                style="yellow",
            )
        )


def _connect(state: CliState) -> TrainyardClient:
    """A client of a server that answers, starting a local one if none is configured."""
    url = state.server_url
    if not state.server_url_is_explicit and not server_answers(url):
        log = start_background_server(state.settings, url)
        shown = str(log)
        home = str(Path.home())
        if shown.startswith(home + "/"):
            shown = "~" + shown[len(home) :]
        state.err.print(
            f"no server at {url}; started one in the background (logs: {shown})", markup=False
        )
    return state.client()


def _upload_code(
    state: CliState, client: TrainyardClient, directory: Path
) -> tuple[str, GitInfo | None]:
    with make_snapshot(directory, state.settings.runs.snapshot_max_bytes) as archive:
        for warning in archive.warnings:
            state.err.print(Text(f"warning: {warning}", style="yellow"))
        snapshot_id = client.snapshots.upload(archive.path)
        state.err.print(
            f"code: {directory} ({_plural(archive.files, 'file')}, "
            f"{format_size(archive.size)} compressed)",
            markup=False,
            style="dim",
        )
        return snapshot_id, archive.git


def _wait(state: CliState, client: TrainyardClient, run: Run, as_json: bool) -> None:
    printer = LinePrinter(state.out, replica_names(run))
    try:
        if as_json:
            for _ in client.runs.stream_logs(run.id):
                pass
        else:
            follow_logs(state, client, run, printer)
    except KeyboardInterrupt:
        state.err.print(
            f"stopped following {run.ref}; it keeps running (stop it with `trainyard stop "
            f"{run.ref}`)",
            markup=False,
        )
        raise typer.Exit(130) from None
    final = client.runs.get(run.id)
    if as_json:
        print_json(run_json(final))
    if final.status == RunStatus.COMPLETE:
        if not as_json:
            line = Text.assemble(f"{final.ref}: ", status_text(final.status))
            if final.reason:
                line.append(f" ({final.reason})")
            state.err.print(line)
        return
    line = Text(f"{final.ref}: {final.status.value}", style="red")
    if final.reason:
        line.append(f": {final.reason}")
    state.err.print(line)
    raise typer.Exit(1)


def run_command(
    ctx: typer.Context,
    task_yaml: Annotated[Path, typer.Argument(metavar="TASK_YAML", help="The manifest file.")],
    param: ParamOption = None,
    project: Annotated[str, typer.Option(help="Project to run in.")] = "default",
    wait: Annotated[
        bool, typer.Option("--wait", help="Stream all replicas' logs; exit 0 if it completes.")
    ] = False,
    no_code: Annotated[
        bool, typer.Option("--no-code", help="Do not upload the manifest's directory.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Task name instead of the manifest's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
    priority: Annotated[
        int,
        typer.Option(
            min=-1000, max=1000, help="Queue order: higher runs are admitted first (default 0)."
        ),
    ] = 0,
    start_immediately: Annotated[
        bool,
        typer.Option(
            "--start-immediately",
            help="Skip the queue: start now, sharing GPUs with the runs already using them.",
        ),
    ] = False,
) -> None:
    """Run a task: validate the manifest, upload its directory, submit, optionally wait."""
    state: CliState = ctx.ensure_object(CliState)
    if name is not None and _dns_label(name) != name:
        raise typer.BadParameter(
            f"'{name}' is not a valid task name: use lowercase letters, digits and '-', "
            "at most 63 characters",
            param_hint="--name",
        )
    text, spec, raw_params = _load(task_yaml, param)
    with _connect(state) as client:
        snapshot_id: str | None = None
        git: GitInfo | None = None
        if not no_code:
            snapshot_id, git = _upload_code(state, client, task_yaml.parent)
        run = client.runs.submit(
            project,
            manifest=text,
            filename=task_yaml.name,
            # The name checked here: --name, the manifest's, or for an AIchor manifest (which
            # has none) the directory's, so that both sides agree on it.
            name=name or spec.name,
            parameters=raw_params,
            snapshot_id=snapshot_id,
            git=git,
            # Who started it, shown on the dashboard; unauthenticated until users exist.
            submitted_by=os_user(),
            priority=priority,
            start_immediately=start_immediately,
        )
        if as_json and not wait:
            print_json(run_json(run))
            return
        if not as_json:
            state.out.print(f"submitted {run.ref} (run {run.id})", markup=False)
        if wait:
            _wait(state, client, run, as_json)
            return
        state.out.print(
            f"follow it: trainyard logs {run.ref} -f\nstatus:    trainyard describe {run.ref}",
            markup=False,
            style="dim",
        )
