"""Which run the SDK logs to, and where: read from the replica environment contract.

Every replica of a run finds ``TRAINYARD_RUN_ID``, ``TRAINYARD_SERVER_URL``,
``TRAINYARD_TOKEN`` and ``TRAINYARD_REPLICA`` in its environment (see
``docs/env-contract.md``); explicit arguments to ``trainyard.init`` override them. These
variables, and ``TRAINYARD_HOME`` for the spool, are read here, straight from the
environment: the SDK does not load the server's settings.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainyard.core.errors import InvalidInputError, UnsupportedError

__all__ = ["RunContext", "resolve_context"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class RunContext:
    """The run that points go to, the server that stores them and this process's spool."""

    run_id: int
    server_url: str
    token: str | None
    replica: str | None  # e.g. "worker-1"; None outside a replica
    spool_root: Path  # $TRAINYARD_HOME/spool, else ~/.trainyard/spool
    owned: bool = False  # created by init() (outside a run): finish() ends it

    @property
    def spool_dir(self) -> Path:
        """Where this run's undelivered points wait: ``<spool_root>/<run_id>``."""
        return self.spool_root / str(self.run_id)

    @property
    def server_tag(self) -> str:
        """A short name of the server in spool file names: run ids are per server, so a
        spool is only ever re-sent to the server it was meant for."""
        return hashlib.sha256(self.server_url.encode()).hexdigest()[:10]

    @property
    def owner(self) -> str:
        """The replica's name made safe for a file name (``process`` outside a replica)."""
        return _UNSAFE.sub("_", self.replica or "") or "process"


def _default_server_url() -> str:
    # Imported here: the settings module loads pydantic-settings, which a replica (which
    # always has TRAINYARD_SERVER_URL) never needs.
    from trainyard.core.settings import DEFAULT_SERVER_URL

    return DEFAULT_SERVER_URL


def _parse_run_id(value: int | str, where: str) -> int:
    try:
        run_id = int(str(value).strip())
    except ValueError:
        run_id = -1
    if run_id < 1:
        raise InvalidInputError(
            f"{where} is {value!r}, not a run id (a positive integer); inside a run, leave "
            "TRAINYARD_RUN_ID as trainyard set it",
            fields={"run_id": str(value)},
        )
    return run_id


def resolve_context(
    *,
    project: str | None = None,
    name: str | None = None,
    run_id: int | str | None = None,
    server_url: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunContext:
    """The :class:`RunContext` for ``trainyard.init``: explicit arguments first, then the
    environment. Raises UnsupportedError outside a run (no run id anywhere)."""
    env = os.environ if environ is None else environ
    owned = False
    if run_id is None and not env.get("TRAINYARD_RUN_ID", "").strip() and name is not None:
        # Outside a run, with a name: a run of its own (an external run, like
        # mlflow.start_run), which finish() ends.
        url = server_url or env.get("TRAINYARD_SERVER_URL", "").strip() or _default_server_url()
        run_id = _create_run(
            url.rstrip("/"),
            (token if token is not None else env.get("TRAINYARD_TOKEN")) or None,
            project or "default",
            name,
        )
        owned = True
    if run_id is None:
        raw = env.get("TRAINYARD_RUN_ID", "").strip()
        if not raw:
            raise UnsupportedError(
                "trainyard.init() found no run to log to: outside a trainyard run, give the "
                "run a name (trainyard.init(project='default', name='notebook')) to create "
                "one, or pass run_id= (and server_url=) of a run that is still going; inside "
                "code started by `trainyard run task.yaml`, TRAINYARD_RUN_ID is set and "
                "init() needs no arguments",
                fields={"project": project, "name": name},
            )
        resolved_id = _parse_run_id(raw, "TRAINYARD_RUN_ID")
    else:
        resolved_id = _parse_run_id(run_id, "run_id")
    url = server_url or env.get("TRAINYARD_SERVER_URL", "").strip() or _default_server_url()
    home = env.get("TRAINYARD_HOME", "").strip()
    root = Path(home).expanduser() if home else Path.home() / ".trainyard"
    return RunContext(
        run_id=resolved_id,
        server_url=url.rstrip("/"),
        token=(token if token is not None else env.get("TRAINYARD_TOKEN")) or None,
        replica=env.get("TRAINYARD_REPLICA") or None,
        spool_root=root / "spool",
        owned=owned,
    )


def _create_run(server_url: str, token: str | None, project: str, name: str) -> int:
    """Create an external run ``project/name#N`` on the server; its id. Raises the server's
    error (unknown project, bad name) or ServerUnreachableError."""
    import getpass

    from trainyard.client.http import Transport

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = ""
    transport = Transport(server_url, token=token, timeout=10.0)
    try:
        run = transport.request(
            "POST",
            f"/projects/{project}/external-runs",
            json={"name": name, "submitted_by": user},
        )
    finally:
        transport.close()
    return int(run["id"])
