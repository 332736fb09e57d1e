"""``INSERT ... ON CONFLICT`` for the session's dialect (SQLite and PostgreSQL share the API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert(session: Session, table: Any) -> Any:
    """An ``Insert`` that supports ``on_conflict_do_nothing/do_update`` on this dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
