"""Shared fixtures: databases (SQLite and PostgreSQL), settings, and real server processes.

Fixtures (see each docstring):

- ``pg_url`` — a fresh PostgreSQL database for this test session (fails if none is reachable);
- ``pg_database`` — a factory of more fresh PostgreSQL databases (dropped at session end);
- ``db_url`` — parametrised ``sqlite`` / ``postgresql``: an empty migrated-or-not database URL;
- ``make_settings`` — ``Settings`` for a home directory and database, with overrides;
- ``server_factory`` — starts real ``python -m trainyard.server`` processes;
- ``live_server`` — one such server for the test, cleaned up with every run it left;
- ``api_client`` — an ``httpx.Client`` on the live server's ``/api/v1``.

Set ``TRAINYARD_TEST_DB=postgresql`` to make ``live_server`` use PostgreSQL instead of SQLite;
``TRAINYARD_DB__URL`` (any database on the server to use) moves the PostgreSQL fixtures to
another server than 127.0.0.1:5432.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from trainyard.core.settings import DBSettings, Settings

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEST_DB = os.environ.get("TRAINYARD_TEST_DB", "sqlite").strip().lower()
_PG_BASE_URL = os.environ.get("TRAINYARD_DB__URL") or DEFAULT_PG_URL

# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------


def _pg_parts(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "password": u.password,
        "dbname": u.database or "postgres",
    }


def _pg_url_for(dbname: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(_PG_BASE_URL).set(drivername="postgresql+psycopg", database=dbname)
    return u.render_as_string(hide_password=False)


def _pg_admin() -> Any:
    import psycopg

    parts = _pg_parts(_PG_BASE_URL)
    shown = f"{parts['host']}:{parts['port']}"
    try:
        return psycopg.connect(
            **{k: v for k, v in parts.items() if v is not None}, autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {shown}: install and start it "
            f"(apt-get install postgresql) or set TRAINYARD_DB__URL ({exc})",
            pytrace=False,
        )


class PgDatabases:
    """Creates uniquely named databases and drops them (``WITH (FORCE)``) at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self) -> str:
        """A new empty database; its SQLAlchemy URL (``postgresql+psycopg://...``)."""
        name = f"trainyard_test_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return _pg_url_for(name)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.names:
            self.names.remove(name)

    def drop_all(self) -> None:
        if not self.names:
            return
        with _pg_admin() as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names.clear()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabases]:
    """Factory of fresh PostgreSQL databases: ``pg_database.create() -> url``; every database
    it created is dropped at the end of the session."""
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_database: PgDatabases) -> str:
    """SQLAlchemy URL of a fresh PostgreSQL database for this session
    (``postgresql+psycopg://postgres@127.0.0.1:5432/trainyard_test_<hex>``), dropped at the
    end. FAILS, never skips, when PostgreSQL is unreachable."""
    return pg_database.create()


_migrated: set[str] = set()


def _reset_pg(url: str) -> None:
    """Migrate the shared database once, then empty it (keeping the schema) for a test."""
    from trainyard.server.services.projects import ensure_default_project
    from trainyard.server.store import Database
    from trainyard.server.store.migrations import upgrade
    from trainyard.server.store.tables import Base

    db = Database(url)
    try:
        if url not in _migrated:
            upgrade(db)
            _migrated.add(url)
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        ensure_default_project(db)
    finally:
        db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL, once per backend: a new SQLite file under ``tmp_path`` (empty, not
    migrated), or the session's PostgreSQL database, migrated and with every table emptied
    (the ``default`` project re-created) before the test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trainyard.db'}"
    url: str = request.getfixturevalue("pg_url")
    _reset_pg(url)
    return url


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------

MakeSettings = Callable[..., Settings]


def _merge(settings: Settings, overrides: dict[str, Any]) -> Settings:
    update: dict[str, Any] = {}
    for key, value in overrides.items():
        current = getattr(settings, key)
        if isinstance(value, dict) and hasattr(current, "model_copy"):
            update[key] = current.model_copy(update=value)
        else:
            update[key] = value
    return settings.model_copy(update=update)


@pytest.fixture
def make_settings() -> MakeSettings:
    """``make_settings(home, db_url=None, **overrides) -> Settings``.

    Nothing comes from the environment for the database: ``db_url=None`` means SQLite under
    ``home``. Overrides are top-level fields, with dicts for the nested groups, e.g.
    ``make_settings(tmp_path, runs={"stop_grace_seconds": 1}, server={"port": 0})``.
    """

    def make(home: Path, db_url: str | None = None, **overrides: Any) -> Settings:
        settings = Settings(home=Path(home), db=DBSettings(url=db_url), server_url=None)
        return _merge(settings, overrides)

    return make


# --------------------------------------------------------------------------------------
# Live servers
# --------------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LiveServer:
    """A real ``python -m trainyard.server`` process on 127.0.0.1.

    ``url`` (``http://127.0.0.1:PORT``), ``home`` (its TRAINYARD_HOME), ``db_url`` (None for
    SQLite under home), ``settings_env`` (TRAINYARD_HOME, TRAINYARD_SERVER_URL and
    TRAINYARD_DB__URL, for CLI subprocesses), ``log_path`` (its stdout+stderr). ``kill()``
    SIGKILLs it, ``stop()`` stops it gracefully, ``start()`` starts it again on the same port,
    home and database; ``close()`` stops it and everything its runs left behind.
    """

    def __init__(
        self, home: Path, db_url: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.db_url = db_url
        self.extra_env = dict(extra_env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "server.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings_env(self) -> dict[str, str]:
        env = {"TRAINYARD_HOME": str(self.home), "TRAINYARD_SERVER_URL": self.url}
        if self.db_url:
            env["TRAINYARD_DB__URL"] = self.db_url
        return env

    def settings(self) -> Settings:
        return Settings(home=self.home, db=DBSettings(url=self.db_url), server_url=self.url)

    def start(self, timeout: float = 30.0) -> LiveServer:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.home.mkdir(parents=True, exist_ok=True)
        env = _base_env()
        env["TRAINYARD_HOME"] = str(self.home)
        if self.db_url:
            env["TRAINYARD_DB__URL"] = self.db_url
        env.update(self.extra_env)
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"--- start {self.starts}\n".encode())
        log.flush()
        offset = log.tell()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainyard.server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while self.port == 0:
            self.port = self._announced_port(offset)
            self._check_alive()
            if time.monotonic() > deadline:
                self._fail("did not announce its port")
            if self.port == 0:
                time.sleep(0.02)
        with httpx.Client(timeout=2.0) as client:
            while True:
                self._check_alive()
                try:
                    if client.get(f"{self.url}/api/v1/health").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self._fail("did not become healthy")
                time.sleep(0.02)

    def _announced_port(self, offset: int) -> int:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                if "listening on http://" in line:
                    return int(
                        line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1]
                    )
        return 0

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            self._fail(f"exited with status {self.proc.returncode}")

    def _fail(self, what: str) -> None:
        text = self.log_path.read_text(errors="replace")[-4000:]
        self.kill()
        pytest.fail(f"trainyard server {what}; its output:\n{text}", pytrace=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        """SIGKILL the server process (not its runs: they are in sessions of their own)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """Stop the server, then every run it left and any process of theirs still alive."""
        self.stop()
        cleanup_runs(self.home)


def _belongs_to(proc: psutil.Process, marker: str) -> bool:
    try:
        if any(marker in part for part in proc.cmdline()):
            return True
        env = proc.environ()
    except (psutil.Error, OSError):
        return False
    return any(
        marker in env.get(k, "") for k in ("SRC_DIR", "TRAINYARD_HOME", "TRAINYARD_OUTPUT_DIR")
    )


def cleanup_runs(home: Path, grace: float = 5.0) -> None:
    """Stop every run under ``home``/runs through the local executor, then SIGKILL any
    process left that belongs to them (found by the home path in its command line or
    environment), so no process leaks from one test into the next."""
    runs_dir = home / "runs"
    if runs_dir.is_dir():
        from trainyard.executors.local import LocalExecutor

        executor = LocalExecutor(runs_dir)
        ids = [int(p.name) for p in runs_dir.iterdir() if p.name.isdigit()]
        for run_id in ids:
            executor.stop(run_id, 0.5)
        deadline = time.monotonic() + grace
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                obs = executor.observe(run_id)
                if obs is None or obs.phase in ("complete", "error", "stopped", "lost"):
                    pending.discard(run_id)
            time.sleep(0.05)
        for run_id in ids:
            executor.reap(run_id)
        executor.close()
    marker = str(home)
    me = os.getpid()
    victims = [p for p in psutil.process_iter() if p.pid != me and _belongs_to(p, marker)]
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(victims, timeout=5)


class ServerFactory:
    """Starts :class:`LiveServer` processes; closes whatever is still open at the end."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._pg = PgDatabases()
        self.servers: list[LiveServer] = []

    def start(
        self,
        db: str | None = None,
        *,
        home: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> LiveServer:
        """Start a server. ``db``: None (``TRAINYARD_TEST_DB``'s choice), ``"sqlite"``,
        ``"postgresql"`` (a fresh database) or a database URL."""
        choice = db or TEST_DB
        url: str | None
        if choice == "sqlite":
            url = None
        elif choice == "postgresql":
            url = self._pg.create()
        else:
            url = choice
        server = LiveServer(home or self._tmp.mktemp("server") / "home", url, extra_env)
        self.servers.append(server)
        return server.start()

    def close_all(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()
        self._pg.drop_all()


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """``server_factory.start(db=None, home=None, extra_env=None) -> LiveServer`` for tests
    (or module fixtures) that need their own server; each is closed at the end of the
    session at the latest — call ``server.close()`` sooner when done."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.close_all()


@pytest.fixture
def live_server(server_factory: ServerFactory) -> Iterator[LiveServer]:
    """A real trainyard server for this test (SQLite in a temp home; PostgreSQL in a fresh
    database when TRAINYARD_TEST_DB=postgresql). Teardown stops it and kills every run and
    process it left."""
    server = server_factory.start()
    try:
        yield server
    finally:
        server.close()
        server_factory.servers.remove(server)


@pytest.fixture
def api_client(live_server: LiveServer) -> Iterator[httpx.Client]:
    """``httpx.Client`` with ``base_url`` = the live server's ``/api/v1``."""
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30.0) as client:
        yield client
