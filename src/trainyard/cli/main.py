"""The ``trainyard`` command: its global options, its commands, and the one place where errors
become messages and exit codes.

Exit codes: 0 success; 1 a user error (one red ``error: ...`` line on stderr), a failed or
stopped run with ``run --wait``, or an internal error; 2 a usage error; 130 interrupted.
``--debug`` adds the traceback.
"""

from __future__ import annotations

import io
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.text import Text

from trainyard import __version__
from trainyard.cli.artifacts import artifacts_app
from trainyard.cli.metrics import metrics_command, node_metrics_command
from trainyard.cli.projects import project_app, task_app
from trainyard.cli.runs import describe_command, logs_command, ps_command, stop_command
from trainyard.cli.scheduling import group_app, node_app, pool_app, queue_command
from trainyard.cli.server import server_command, server_stop_command
from trainyard.cli.state import CliState
from trainyard.cli.submit import run_command, validate_command
from trainyard.core.errors import ManifestError, TrainyardError, UserError

__all__ = ["app", "main", "run_cli"]

# Typer raises Click's exceptions, from a vendored copy of Click in recent releases: take the
# base class from a public Typer name so both layouts work.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

app = typer.Typer(
    name="trainyard",
    help="trainyard: run YAML-defined distributed ML tasks on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"trainyard {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="Server URL (overrides TRAINYARD_SERVER_URL; default http://127.0.0.1:8080).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    state = ctx.ensure_object(CliState)
    state.debug = debug
    state.server_override = server


app.command("run")(run_command)
app.command("ps")(ps_command)
app.command("logs")(logs_command)
app.command("describe")(describe_command)
app.command("metrics")(metrics_command)
app.command("stop")(stop_command)
app.command("validate")(validate_command)
app.command("server")(server_command)
app.command("server-stop")(server_stop_command)
app.add_typer(project_app, name="project")
app.add_typer(task_app, name="task")
app.command("queue")(queue_command)
node_app.command("metrics")(node_metrics_command)
app.add_typer(node_app, name="node")
app.add_typer(pool_app, name="pool")
app.add_typer(group_app, name="group")
app.add_typer(artifacts_app, name="artifacts")


def _print_error(state: CliState, exc: BaseException) -> None:
    if state.debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, ManifestError) and exc.issues:
        for issue in exc.issues:
            state.err.print(Text(str(issue), style="red"))
    elif isinstance(exc, TrainyardError):
        message = exc.message if isinstance(exc, UserError) else str(exc)
        state.err.print(Text(f"error: {message}", style="red"))
    else:
        hint = "" if state.debug else ", rerun with --debug for the traceback"
        state.err.print(Text(f"internal error: {type(exc).__name__}: {exc}{hint}", style="red"))


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return its exit code."""
    state = CliState()
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="trainyard",
            standalone_mode=False,
            obj=state,
        )
    except _ClickException as exc:
        # Usage errors (bad option, missing argument, malformed run reference): exit 2.
        if type(exc).__name__ != "NoArgsIsHelpError":  # the help text was printed already
            exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        state.err.print("aborted", style="red")
        return 130
    except BrokenPipeError:
        # `trainyard logs X | head`: the reader left. Silence the final flush and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # the one place where every error becomes a message
        _print_error(state, exc)
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point (``trainyard``)."""
    # Log lines may hold anything; never die on a character the terminal's encoding lacks.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
