"""`trainyard server`: the API server in the foreground."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Annotated

import typer

from trainyard.cli.state import CliState
from trainyard.core.errors import NotFoundError

__all__ = ["server_command", "server_stop_command"]


def server_command(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default 8080).")] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Allow a non-loopback --host although there is no authentication yet.",
        ),
    ] = False,
) -> None:
    """Run the trainyard server (API, scheduler, reconciler) in the foreground."""
    state: CliState = ctx.ensure_object(CliState)
    # Imported here so that `import trainyard.cli` never pulls FastAPI and SQLAlchemy: every
    # other command is a light HTTP client.
    from trainyard.server.main import serve

    serve(state.settings, host=host, port=port, insecure_no_auth=insecure_no_auth)


# The file `trainyard server` keeps under TRAINYARD_HOME while it runs (see trainyard.server.main;
# not imported from there so that this module stays free of the server's dependencies).
_RECORD = "server.json"


def server_stop_command(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait before SIGKILL.")] = 15.0,
) -> None:
    """Stop the trainyard server of this TRAINYARD_HOME (runs keep running; a restarted
    server adopts them)."""
    state: CliState = ctx.ensure_object(CliState)
    path = state.settings.home / _RECORD
    try:
        record = json.loads(path.read_text())
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotFoundError(
            f"no trainyard server is recorded in {path}: none is running from this "
            "TRAINYARD_HOME (a server started elsewhere is stopped with Ctrl-C or kill)"
        ) from exc
    if not _is_trainyard_server(pid):
        path.unlink(missing_ok=True)
        raise NotFoundError(
            f"the trainyard server recorded in {path} (pid {pid}) is not running any more"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_trainyard_server(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    typer.echo(
        f"stopped the trainyard server at {record.get('url', '?')} (pid {pid}); "
        "runs keep running and a restarted server adopts them"
    )


def _is_trainyard_server(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return "trainyard" in cmd
