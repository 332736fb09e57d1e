"""Projects: create, list, get, set the summary."""

from __future__ import annotations

import re

from sqlalchemy import select

from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError
from trainyard.core.models import Project
from trainyard.server.services.context import ServiceContext
from trainyard.server.store import Database, Session
from trainyard.server.store import projects as store
from trainyard.server.store import scheduling as scheduling_store
from trainyard.server.store.tables import GroupRow, ProjectRow

__all__ = [
    "DEFAULT_PROJECT",
    "create_project",
    "ensure_default_project",
    "get_project",
    "list_projects",
    "load_project",
    "set_project_summary",
    "validate_name",
]

DEFAULT_PROJECT = "default"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SUMMARY_MAX = 100_000


def validate_name(kind: str, name: str) -> None:
    """Raise InvalidInputError unless ``name`` is a DNS-1123 label (≤ 63 chars, [a-z0-9-])."""
    if not _DNS_LABEL.match(name):
        raise InvalidInputError(
            f"{kind} name {name!r} is invalid: use at most 63 lower-case letters, digits and "
            "'-', starting and ending with a letter or digit (e.g. 'vision-2')",
            fields={"name": name},
        )


def load_project(session: Session, name: str) -> ProjectRow:
    """The project row, or NotFoundError naming how to create it."""
    row = store.get_project(session, name)
    if row is None:
        raise NotFoundError(
            f"project '{name}' not found — create it with `trainyard project create {name}`",
            fields={"project": name},
        )
    return row


def ensure_default_project(db: Database) -> None:
    """Create the ``default`` project, group and pool if missing (idempotent, safe
    concurrently)."""
    with db.write() as session:
        scheduling_store.ensure_defaults(session)
        store.get_or_insert_project(session, DEFAULT_PROJECT)


def list_projects(ctx: ServiceContext) -> list[Project]:
    with ctx.db.read() as session:
        return [store.to_project(r) for r in store.list_projects(session)]


def get_project(ctx: ServiceContext, name: str) -> Project:
    with ctx.db.read() as session:
        return store.to_project(load_project(session, name))


def create_project(
    ctx: ServiceContext, name: str, summary: str = "", *, group: str = "default"
) -> Project:
    validate_name("project", name)
    _check_summary(summary)
    with ctx.db.write() as session:
        group_row = session.scalars(select(GroupRow).where(GroupRow.name == group)).first()
        if group_row is None:
            raise NotFoundError(
                f"group '{group}' not found — create it with `trainyard group create {group}`",
                fields={"group": group},
            )
        row = store.insert_project(session, name, summary, group_row.id)
        if row is None:
            raise ConflictError(f"project '{name}' already exists", fields={"project": name})
        return store.to_project(row)


def set_project_summary(ctx: ServiceContext, name: str, summary: str) -> Project:
    _check_summary(summary)
    with ctx.db.write() as session:
        row = store.update_project_summary(session, load_project(session, name), summary)
        return store.to_project(row)


def _check_summary(summary: str) -> None:
    if len(summary) > _SUMMARY_MAX:
        raise InvalidInputError(
            f"project summary is {len(summary)} characters long; the limit is {_SUMMARY_MAX}",
            fields={"length": len(summary), "limit": _SUMMARY_MAX},
        )
