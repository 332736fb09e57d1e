"""Start a local server in the background when `trainyard run` finds none (the newcomer path)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from trainyard.cli.state import local_server_host
from trainyard.client import ServerUnreachableError, TrainyardClient
from trainyard.core.errors import InternalError
from trainyard.core.settings import Settings

__all__ = ["STARTUP_TIMEOUT", "server_answers", "start_background_server"]

STARTUP_TIMEOUT = 15.0
# After our server process exits (e.g. another `trainyard run` won the port), how long to keep
# asking whether a server answers anyway before reporting the failure.
_GRACE_AFTER_EXIT = 2.0


def server_answers(url: str) -> bool:
    """True if a trainyard server answers health checks at ``url``."""
    with TrainyardClient(url, timeout=2.0) as client:
        try:
            client.health()
        except ServerUnreachableError:
            return False
    return True


def _log_tail(path: Path, offset: int, lines: int = 8) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def start_background_server(settings: Settings, url: str) -> Path:
    """Start ``python -m trainyard.server`` detached (own session, output to
    ``$TRAINYARD_HOME/server.log``) at ``url`` (the default server URL: a loopback address
    and ``settings.server.port``) and wait until it answers.

    Returns the log file's path. Raises ServerUnreachableError with the log's last lines if it
    does not come up within :data:`STARTUP_TIMEOUT` seconds.
    """
    host, port = local_server_host(settings), settings.server.port
    settings.home.mkdir(parents=True, exist_ok=True)
    log_path = settings.home / "server.log"
    with log_path.open("ab") as log:
        offset = log.tell()
        # A new session: the server outlives this command and ignores the terminal's Ctrl+C.
        process = subprocess.Popen(
            [sys.executable, "-m", "trainyard.server", "--host", host, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=settings.home,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    exited_at: float | None = None
    with TrainyardClient(url, timeout=1.0) as client:
        while True:
            try:
                client.health()
                return log_path
            except (ServerUnreachableError, InternalError):
                pass
            now = time.monotonic()
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if now > deadline or (exited_at is not None and now - exited_at > _GRACE_AFTER_EXIT):
                break
            time.sleep(0.05)
    if process.poll() is None:
        # Never leave a half-started server behind: the next attempt starts cleanly.
        process.kill()
        process.wait()
        why = f"it did not answer within {STARTUP_TIMEOUT:.0f} s"
    else:
        why = f"it exited with code {process.returncode}"
    tail = _log_tail(log_path, offset)
    raise ServerUnreachableError(
        f"no server at {url}, and the one started in the background failed: {why} "
        f"(logs: {log_path}){': ' + tail.splitlines()[-1] if tail else ''}. Start one yourself "
        "with `trainyard server`, or set TRAINYARD_SERVER_URL.",
        fields={"url": url, "log": str(log_path), "log_tail": tail},
    )
