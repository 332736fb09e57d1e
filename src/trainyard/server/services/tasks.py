"""Tasks: parse a manifest, store it under a project, list and get them."""

from __future__ import annotations

from trainyard.core.errors import ConflictError, NotFoundError, PayloadTooLargeError
from trainyard.core.models import Task, TaskSpec
from trainyard.manifest import load_manifest
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project, validate_name
from trainyard.server.store import Session
from trainyard.server.store import tasks as store
from trainyard.server.store.tables import ProjectRow, TaskRow

__all__ = [
    "MANIFEST_MAX_BYTES",
    "create_task",
    "get_task",
    "list_tasks",
    "load_task",
    "parse_manifest",
]

# A manifest is a page of YAML; anything this big is a mistake (or an attack on the parser).
MANIFEST_MAX_BYTES = 1 << 20


def parse_manifest(text: str, filename: str = "task.yaml", name: str | None = None) -> TaskSpec:
    """Parse a manifest (any supported format). ``name`` names the task when the manifest
    has no name of its own (AIchor) and otherwise replaces the manifest's name.

    Raises ManifestError (400, with line:column issues), InvalidInputError for a bad ``name``,
    PayloadTooLargeError past :data:`MANIFEST_MAX_BYTES`.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > MANIFEST_MAX_BYTES:
        raise PayloadTooLargeError(
            f"manifest {filename} is {size} bytes; the limit is {MANIFEST_MAX_BYTES} bytes",
            fields={"size": size, "limit": MANIFEST_MAX_BYTES},
        )
    if name is not None:
        validate_name("task", name)
    spec = load_manifest(text, filename=filename, default_name=name)
    if name is not None and spec.name != name:
        spec = spec.model_copy(update={"name": name})
    return spec


def load_task(session: Session, project: ProjectRow, name: str) -> TaskRow:
    """The task row, or NotFoundError naming how to create it."""
    row = store.get_task(session, project, name)
    if row is None:
        raise NotFoundError(
            f"task '{project.name}/{name}' not found — submit its manifest with "
            f"`trainyard run task.yaml --project {project.name}`",
            fields={"project": project.name, "task": name},
        )
    return row


def list_tasks(ctx: ServiceContext, project: str) -> list[Task]:
    with ctx.db.read() as session:
        rows = store.list_tasks(session, load_project(session, project))
        return [store.to_task(r) for r in rows]


def get_task(ctx: ServiceContext, project: str, name: str) -> Task:
    with ctx.db.read() as session:
        return store.to_task(load_task(session, load_project(session, project), name))


def create_task(
    ctx: ServiceContext,
    project: str,
    manifest: str,
    *,
    filename: str = "task.yaml",
    replace: bool = False,
    name: str | None = None,
) -> Task:
    """Store a task from its manifest; ConflictError if it exists and ``replace`` is false."""
    spec = parse_manifest(manifest, filename, name)
    with ctx.db.write() as session:
        project_row = load_project(session, project)
        row = store.insert_task(session, project_row, spec, manifest)
        if row is None:
            if not replace:
                raise ConflictError(
                    f"task '{project}/{spec.name}' already exists — pass \"replace\": true to "
                    "update its manifest",
                    fields={"project": project, "task": spec.name},
                )
            existing = load_task(session, project_row, spec.name)
            row = store.update_task(session, existing, spec, manifest)
        return store.to_task(row)
