"""`trainyard server`: the API server in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from trainyard.cli.state import CliState

__all__ = ["server_command"]


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
