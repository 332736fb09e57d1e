"""Database engines and transactions: SQLite (WAL) by default, PostgreSQL via psycopg 3.

Two kinds of transaction: :meth:`Database.read` and :meth:`Database.write`. On SQLite a write
transaction starts with ``BEGIN IMMEDIATE`` so it takes the database's write lock up front and
waits for it (``busy_timeout``) instead of failing with SQLITE_BUSY when it upgrades a read
snapshot that another writer has made stale; reads stay deferred so they never wait for
writers (WAL). On PostgreSQL both are ordinary READ COMMITTED transactions; queries that
race lock the rows they change (``FOR UPDATE``, ``UPDATE ... RETURNING``, ``ON CONFLICT``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "Session", "create_engine"]

_WRITE_OPTION = "trainyard_write"


def create_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``), tuned.

    SQLite: WAL journal, 30 s busy timeout, foreign keys on, ``synchronous=NORMAL`` (durable
    across process crashes, which is what the server needs; a power loss may lose the last
    transactions). The parent directory of the file is created.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa_create_engine(
            url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False}
        )
        _tune_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # A bare postgresql:// would pick psycopg2, which we do not ship.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return sa_create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode is stored in the file).

    Changing the journal mode needs exclusive access and SQLite answers "database is locked"
    at once, without its busy handler, while another connection is writing (several servers
    migrating a new database at the same moment): retry for up to the busy timeout.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The engine plus read and write transactions. Thread-safe; one per server process."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.dialect = self.engine.dialect.name  # "sqlite" | "postgresql"
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=self.engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction, ended (rolled back) when the block exits; rows loaded in it
        stay readable afterwards (detached, not expired)."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed if the block returns, rolled back if it raises."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
