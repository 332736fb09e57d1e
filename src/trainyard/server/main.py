"""``serve()``: run the trainyard server in this process (uvicorn, one worker)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
from pathlib import Path

from trainyard.core.errors import UserError
from trainyard.core.settings import Settings

__all__ = ["SERVER_RECORD", "is_loopback", "serve"]

# Written under TRAINYARD_HOME while a server runs: how `trainyard server-stop` finds it.
SERVER_RECORD = "server.json"


def is_loopback(host: str) -> bool:
    """Whether ``host`` can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (port 0: any free port).

    Created with ``IPPROTO_TCP`` explicitly: asyncio only sets TCP_NODELAY on sockets whose
    ``proto`` says TCP, and without it every keep-alive response stalls ~40 ms on delayed
    ACKs (uvicorn's own pre-bound sockets have proto 0, the "--workers > 1" slowdown).
    """
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; is another server "
            "running there? Pick another port with --port",
            fields={"host": host, "port": port},
        ) from exc
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    insecure_no_auth: bool = False,
) -> None:
    """Serve the API until SIGINT/SIGTERM. Refuses a non-loopback ``host`` unless
    ``insecure_no_auth`` (UserError): there is no authentication yet and runs execute
    arbitrary commands. Blocks; runs keep running after it returns."""
    host = host if host is not None else settings.server.host
    port = port if port is not None else settings.server.port
    insecure_no_auth = insecure_no_auth or settings.server.insecure_no_auth
    if not is_loopback(host) and not insecure_no_auth:
        raise UserError(
            f"refusing to listen on {host}: trainyard has no authentication yet and every run "
            "executes arbitrary commands, so anyone who can reach this port could run code on "
            "this machine. Use --host 127.0.0.1, or pass --insecure-no-auth if the network is "
            "trusted.",
            fields={"host": host},
        )
    # Heavy imports only once we know we are going to serve.
    import uvicorn

    # Our warnings and errors (with tracebacks and request ids) on stderr, timestamped.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from trainyard.server.app import create_app
    from trainyard.server.services.projects import ensure_default_project
    from trainyard.server.store import Database
    from trainyard.server.store.migrations import upgrade

    # Bound first so that port 0 (any free port) is resolved before the app is built: the
    # replicas' TRAINYARD_SERVER_URL must name the real port.
    sock = _bind(host, port)
    try:
        port = sock.getsockname()[1]
        settings = settings.model_copy(
            update={
                "server": settings.server.model_copy(
                    update={"host": host, "port": port, "insecure_no_auth": insecure_no_auth}
                )
            }
        )
        app = create_app(settings)  # an unknown executor is refused here, before any change
        # Database problems surface here as clear errors, before uvicorn starts.
        db = Database(settings.database_url, echo=settings.db.echo)
        try:
            upgrade(db)
            ensure_default_project(db)
        finally:
            db.dispose()
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        http="httptools",
        loop="asyncio",
        lifespan="on",
        log_level="warning",
        access_log=False,
        # Live log streams never end by themselves: do not let them hold a shutdown.
        timeout_graceful_shutdown=2,
    )
    record = settings.home / SERVER_RECORD

    class _Server(uvicorn.Server):
        # uvicorn re-raises SIGTERM after its shutdown, so code after run() never executes:
        # the record is removed here, at the end of the graceful shutdown.
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().shutdown(sockets)
            finally:
                _remove_record(record)

    server = _Server(config)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"trainyard server listening on http://{shown}:{port} (home: {settings.home})",
        flush=True,
    )
    _write_record(record, f"http://{shown}:{port}")
    try:
        server.run(sockets=[sock])
    finally:
        _remove_record(record)
    if not server.started:
        raise UserError("the trainyard server failed to start; see the messages above")


def _write_record(path: Path, url: str) -> None:
    """Record this server's pid and URL atomically (tmp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    tmp.replace(path)


def _remove_record(path: Path) -> None:
    """Remove the record if it is still ours (another server may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
