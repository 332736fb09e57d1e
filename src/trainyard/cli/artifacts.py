"""`trainyard artifacts`: list, download and upload a run's artifacts (its output directory)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from trainyard.cli.output import print_json
from trainyard.cli.runs import RunArg
from trainyard.cli.state import CliState
from trainyard.client.snapshot import format_size
from trainyard.core.errors import InvalidInputError

__all__ = ["artifacts_app"]

artifacts_app = typer.Typer(
    help="A run's artifacts: what it logged with trainyard.log_artifact and what its replicas "
    "wrote to $TRAINYARD_OUTPUT_DIR.",
    no_args_is_help=True,
)


@artifacts_app.command("list")
def list_command(
    ctx: typer.Context,
    run_ref: RunArg,
    path: Annotated[str, typer.Argument(help="A directory of the run's artifacts.")] = "",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="All levels.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """List a run's artifacts (one level, or all with -r)."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        items = client.artifacts.list(run.id, path, recursive=recursive)
    if as_json:
        print_json([{"path": a.path, "is_dir": a.is_dir, "size": a.size} for a in items])
        return
    if not items:
        where = f" under {path!r}" if path else ""
        state.out.print(f"{run.ref} has no artifacts{where}", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("PATH")
    table.add_column("SIZE", justify="right")
    for a in items:
        table.add_row(
            a.path + ("/" if a.is_dir else ""), "" if a.size is None else format_size(a.size)
        )
    state.out.print(table)


@artifacts_app.command("get")
def get_command(
    ctx: typer.Context,
    run_ref: RunArg,
    path: Annotated[str, typer.Argument(help="The artifact's path, e.g. checkpoints/model.pt.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write it (default: its name here; - for stdout)."
        ),
    ] = None,
) -> None:
    """Download one artifact. The file appears complete or not at all."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        if output is not None and str(output) == "-":
            client.artifacts.download(run.id, path, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        target = output or Path(path.rstrip("/").rsplit("/", 1)[-1] or "artifact")
        if target.is_dir():
            target = target / path.rstrip("/").rsplit("/", 1)[-1]
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent or "."
        )
        try:
            with os.fdopen(fd, "wb") as out:
                size = client.artifacts.download(run.id, path, out)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    state.err.print(f"{path} of {run.ref} → {target} ({format_size(size)})", markup=False)


@artifacts_app.command("put")
def put_command(
    ctx: typer.Context,
    run_ref: RunArg,
    local: Annotated[Path, typer.Argument(help="A file to upload.")],
    path: Annotated[
        str | None, typer.Argument(help="Its path among the run's artifacts (default: its name).")
    ] = None,
) -> None:
    """Upload a file into a run's artifacts (the run must still be going)."""
    state: CliState = ctx.ensure_object(CliState)
    if not local.is_file():
        raise InvalidInputError(f"{str(local)!r} is not a file: give the path of a file to upload")
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        stored = client.artifacts.upload(run.id, local, path or local.name)
    state.out.print(
        f"{run.ref}: stored {stored.path} ({format_size(stored.size or 0)})", markup=False
    )
