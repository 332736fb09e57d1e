"""Alembic migrations, run programmatically at server start (see :func:`upgrade`).

``upgrade`` first reads the current revision with a plain query and returns at once when the
database is already at :data:`HEAD`, so a normal start never imports Alembic (it costs
~100 ms and ~10 MiB). Otherwise it runs ``alembic upgrade head`` inside ONE transaction:
PostgreSQL takes a transaction-level advisory lock first, so several servers starting at once
migrate exactly once; SQLite takes its write lock (``BEGIN IMMEDIATE``). DDL is transactional
on both, so a server killed during a migration leaves the previous schema and the next start
simply runs it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from trainyard.core.errors import UserError
from trainyard.server.store.engine import Database

__all__ = ["HEAD", "current_revision", "upgrade"]

# The newest revision in versions/; a test checks it against Alembic's view of the scripts.
HEAD = "0006"

_DIR = Path(__file__).resolve().parent
# Any constant: the advisory lock key that serialises migrations of one PostgreSQL database.
_PG_LOCK_KEY = 0x747261696E79  # "trainy"


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None for an empty database.

    Raises UserError naming the database when it cannot be reached at all.
    """
    try:
        conn = db.engine.connect()
    except OperationalError as exc:
        raise UserError(
            f"cannot connect to the database {db.safe_url}: {exc.orig or exc}; check "
            "TRAINYARD_DB__URL (e.g. postgresql+psycopg://user@host:5432/trainyard) or unset "
            "it to use SQLite under TRAINYARD_HOME",
            fields={"database": db.safe_url},
        ) from exc
    with conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except DBAPIError:
            return None
        return None if row is None else str(row[0])


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest). Safe to run concurrently."""
    current = current_revision(db)
    if revision in ("head", HEAD) and current == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_DIR))
    if not db.is_postgresql:
        _upgrade_sqlite(db, config, revision)
        return
    with db.engine.execution_options(trainyard_write=True).begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _upgrade_sqlite(db: Database, config: Any, revision: str) -> None:
    """SQLite migrations rebuild tables (batch mode: copy, drop, rename). With foreign keys
    enforced, dropping a table deletes the rows of every table that references it ON DELETE
    CASCADE (a rebuilt ``runs`` would take its events with it), so enforcement is off while
    migrating (the pragma only works outside a transaction) and the result is checked with
    ``PRAGMA foreign_key_check`` before the commit."""
    from alembic import command

    with db.engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.execution_options(trainyard_write=True).begin():
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
        finally:
            dbapi.execute("PRAGMA foreign_keys=ON")


def script_head() -> str:
    """The head revision according to Alembic's scripts (for the consistency test)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    return str(head)
