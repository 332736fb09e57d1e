"""Runs: submit, list, get, stop, events — and :func:`transition`, the one function through
which every run status change goes."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError, UnsupportedError
from trainyard.core.models import Event, GitInfo, ManifestFormat, Run, TaskSpec
from trainyard.core.status import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus, check_transition
from trainyard.manifest import resolve_task
from trainyard.server.scheduler.cluster import check_schedulable, demand_columns, queue_detail
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project
from trainyard.server.services.snapshots import check_snapshot
from trainyard.server.services.tasks import load_task, parse_manifest
from trainyard.server.store import Session
from trainyard.server.store import events as event_store
from trainyard.server.store import runs as store
from trainyard.server.store import scheduling as scheduling_store
from trainyard.server.store import tasks as task_store
from trainyard.server.store.tables import RunRow, utcnow

__all__ = [
    "EXTERNAL",
    "archive_run",
    "create_external_run",
    "delete_run",
    "finish_external_run",
    "get_run",
    "get_run_by_ref",
    "list_events",
    "list_runs",
    "load_run",
    "restore_run",
    "stop_run",
    "submit_run",
    "transition",
]


def transition(
    session: Session,
    run: RunRow,
    new: RunStatus,
    reason: str,
    *,
    message: str = "",
    time: datetime | None = None,
) -> None:
    """Move ``run`` to ``new`` and record why: the only place a run's status changes.

    ``run`` must have been loaded in this write transaction with ``lock=True`` so that its
    status is current. Checks the move with :func:`check_transition` (IllegalTransitionError
    otherwise), sets ``reason`` and ``updated_at``, ``started_at`` when the run enters
    ``running``, ``finished_at`` when it ends, and inserts one ``status`` event carrying the
    reason (and ``message``, e.g. a failed replica's last log lines).
    """
    current = RunStatus(run.status)
    check_transition(f"{run.project.name}/{run.task.name}#{run.build_id}", current, new)
    now = time or utcnow()
    run.status = new.value
    run.reason = reason
    run.updated_at = now
    if new is RunStatus.RUNNING and run.started_at is None:
        run.started_at = now
    if new in TERMINAL_STATUSES:
        run.finished_at = now
        # Its GPUs, CPU and memory go back to the pool (the placements stay, as history).
        scheduling_store.release_run(session, run.id)
    event_store.insert_event(
        session, run.id, "status", status=new, reason=reason, message=message, time=now
    )
    session.flush()


def load_run(session: Session, run_id: int, *, lock: bool = False, light: bool = False) -> RunRow:
    """The run row, or NotFoundError "run 42 not found" (``light``: see store.get_run)."""
    row = store.get_run(session, run_id, lock=lock, light=light)
    if row is None:
        raise NotFoundError(f"run {run_id} not found", fields={"run_id": run_id})
    return row


def _with_queue(session: Session, row: RunRow) -> Run:
    """The run; while it is queued, with its queue position and the full queue reason."""
    run = store.to_run(row)
    if run.status is RunStatus.QUEUED:
        run.queue_position, run.reason = queue_detail(session, row)
    return run


def get_run(ctx: ServiceContext, run_id: int) -> Run:
    with ctx.db.read() as session:
        return _with_queue(session, load_run(session, run_id))


def get_run_by_ref(ctx: ServiceContext, project: str, task: str, build_id: int) -> Run:
    with ctx.db.read() as session:
        row = store.get_run_by_build(session, project, task, build_id)
        if row is None:
            ref = f"{project}/{task}#{build_id}"
            raise NotFoundError(f"run '{ref}' not found", fields={"run": ref})
        return _with_queue(session, row)


def list_runs(
    ctx: ServiceContext,
    *,
    project: str | None = None,
    task: str | None = None,
    statuses: Collection[RunStatus] | None = None,
    archived: bool | None = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Run], int]:
    """A page of runs (newest first) and the total matching. ``task`` needs ``project``;
    ``archived`` False (default) hides archived runs, True shows only them, None both."""
    if task is not None and project is None:
        raise InvalidInputError(
            "filtering runs by task needs the project too: pass project=NAME&task=NAME",
            fields={"task": task},
        )
    with ctx.db.read() as session:
        project_id = task_id = None
        if project is not None:
            project_row = load_project(session, project)
            project_id = project_row.id
            if task is not None:
                task_id = load_task(session, project_row, task).id
        rows, total = store.list_runs(
            session,
            project_id=project_id,
            task_id=task_id,
            statuses=statuses,
            archived=archived,
            limit=limit,
            offset=offset,
        )
        return [store.to_run(r) for r in rows], total


def check_supported(ctx: ServiceContext, spec: TaskSpec) -> None:
    """Refuse what this deployment cannot run (UnsupportedError, HTTP 422)."""
    kuberay = spec.aichor is not None and spec.aichor.operator == "kuberay"
    if kuberay and ctx.settings.runs.executor != "ray":
        raise UnsupportedError(
            "operator 'kuberay' needs the Ray backend, which this version of trainyard does "
            "not have yet; run the same code with a trainyard manifest (resources `head`/"
            "`worker`) meanwhile",
            fields={"operator": "kuberay", "executor": ctx.settings.runs.executor},
        )


EXTERNAL = "external"  # the executor name of runs created by tracking clients
SUBMITTED_BY_MAX = 128
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000


def check_submitted_by(value: str) -> str:
    """``value`` stripped; InvalidInputError naming the field when it is too long or holds
    characters that are not printable (control characters would garble tables and logs)."""
    value = value.strip()
    if len(value) > SUBMITTED_BY_MAX:
        raise InvalidInputError(
            f"submitted_by: {len(value)} characters, at most {SUBMITTED_BY_MAX} allowed; "
            "send a shorter user name",
            fields={"submitted_by": value[:SUBMITTED_BY_MAX] + "..."},
        )
    if not value.isprintable():
        raise InvalidInputError(
            f"submitted_by: {value!r} holds non-printable characters; send a plain user name",
            fields={"submitted_by": value},
        )
    return value


def submit_run(
    ctx: ServiceContext,
    project: str,
    *,
    manifest: str | None = None,
    filename: str = "task.yaml",
    task: str | None = None,
    name: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    snapshot_id: str | None = None,
    git: GitInfo | None = None,
    submitted_by: str = "",
    priority: int = 0,
    start_immediately: bool = False,
) -> Run:
    """Queue a run of a manifest (stored as the task of that name, created or updated) or of
    an existing task, with ``parameters`` filled in. Wakes the launcher.

    Everything that can be wrong with the request (manifest, parameters, snapshot, project,
    task) is checked before anything is written, so a refused submission leaves no trace.
    ``submitted_by`` is who the client says submitted it (not authenticated), stripped.
    ``priority`` orders the queue (higher first); ``start_immediately`` skips it, sharing
    GPUs (DKube). A run that could never be placed on the cluster (more GPUs of a type than
    any node of its group's pools has, more CPU or memory than any node) is refused.
    """
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidInputError(
            f"priority {priority} is out of range: use {PRIORITY_MIN}..{PRIORITY_MAX} "
            "(higher runs first; 0 is the default)",
            fields={"priority": priority},
        )
    submitted_by = check_submitted_by(submitted_by)
    if (manifest is None) == (task is None):
        raise InvalidInputError(
            'give exactly one of "manifest" (YAML text) or "task" (the name of a stored task)',
            fields={"manifest": manifest is not None, "task": task is not None},
        )
    spec: TaskSpec
    if manifest is not None:
        spec = parse_manifest(manifest, filename, name)
    else:
        assert task is not None
        with ctx.db.read() as session:
            task_row = load_task(session, load_project(session, project), task)
            spec = TaskSpec.model_validate(task_row.spec)
            manifest = task_row.manifest
        if spec.format is ManifestFormat.EXTERNAL:
            raise UnsupportedError(
                f"task '{project}/{task}' holds runs logged by tracking clients (the SDK, the "
                "MLflow API): trainyard has nothing to launch for it; submit a manifest instead",
                fields={"project": project, "task": task},
            )
    check_supported(ctx, spec)
    resolved, typed = resolve_task(spec, dict(parameters or {}), source="parameters")
    # What the backend could never launch (unknown workDir variables, unsupported volumes) is
    # refused here, before a task or run exists, rather than started into an error.
    ctx.executor.check(resolved)
    if snapshot_id is not None:
        check_snapshot(ctx, snapshot_id)

    with ctx.db.read() as session:
        check_schedulable(session, load_project(session, project), resolved)

    with ctx.db.write() as session:
        project_row = load_project(session, project)
        if task is None:
            task_row = task_store.insert_or_update_task(session, project_row, spec, manifest)
        else:
            task_row = load_task(session, project_row, task)
        build_id = task_store.update_next_build_id(session, task_row.id)
        row = store.insert_run(
            session,
            project=project_row,
            task=task_row,
            build_id=build_id,
            spec=resolved,
            manifest=manifest,
            parameters=dict(typed),
            git=git,
            snapshot_id=snapshot_id,
            executor=ctx.executor.name,
            submitted_by=submitted_by,
            priority=priority,
            start_immediately=start_immediately,
            scheduling=demand_columns(resolved),
        )
        event_store.insert_event(
            session,
            row.id,
            "status",
            status=RunStatus.QUEUED,
            reason="submitted",
            time=row.created_at,
        )
        session.flush()
        run = store.to_run(row)
    ctx.wake_launcher()
    return run


def stop_run(ctx: ServiceContext, run_id: int) -> Run:
    """Stop a run: a queued run becomes ``stopped`` at once; a starting or running one
    ``stopping`` (the executor is asked to stop it and the reconciler records ``stopped``);
    a run already stopping or finished is returned unchanged (idempotent)."""
    with ctx.db.write() as session:
        row = load_run(session, run_id, lock=True)
        status = RunStatus(row.status)
        if status is RunStatus.QUEUED:
            transition(session, row, RunStatus.STOPPED, "stopped by user before it started")
        elif status in (RunStatus.STARTING, RunStatus.RUNNING):
            transition(session, row, RunStatus.STOPPING, "stop requested by user")
            if row.executor == EXTERNAL:  # nothing of it runs here: stopped at once
                transition(session, row, RunStatus.STOPPED, "stopped by user")
        run = store.to_run(row)
    if (
        run.status is RunStatus.STOPPING
        and run_id not in ctx.launching
        and run.executor != EXTERNAL
    ):
        # Non-blocking. A run the launcher is still launching is stopped by the launcher
        # right after its launch (it re-reads the status), so the stop is never lost.
        ctx.executor.stop(run_id, ctx.settings.runs.stop_grace_seconds)
    ctx.wake_reconciler()
    return run


def list_events(ctx: ServiceContext, run_id: int, after: int | None = None) -> list[Event]:
    with ctx.db.read() as session:
        load_run(session, run_id)
        return [event_store.to_event(r) for r in event_store.list_events(session, run_id, after)]


def _ref(row: RunRow) -> str:
    return f"{row.project.name}/{row.task.name}#{row.build_id}"


def _check_finished(row: RunRow, action: str) -> None:
    """ConflictError (409) while the run is queued, starting, running or stopping."""
    if RunStatus(row.status) in ACTIVE_STATUSES:
        raise ConflictError(
            f"cannot {action} run {row.id} ({_ref(row)}): it is {row.status}; stop it first "
            f"(POST /api/v1/runs/{row.id}/stop) and {action} it once it has finished",
            fields={"run_id": row.id, "status": row.status},
        )


def _set_archived(ctx: ServiceContext, run_id: int, archived: bool) -> Run:
    with ctx.db.write() as session:
        row = load_run(session, run_id, lock=True)
        _check_finished(row, "archive" if archived else "restore")
        if row.archived != archived:  # idempotent: archiving an archived run changes nothing
            row.archived = archived
            event_store.insert_event(
                session,
                row.id,
                "info",
                reason="archived by user" if archived else "restored from the archive by user",
            )
            session.flush()
        return store.to_run(row)


def archive_run(ctx: ServiceContext, run_id: int) -> Run:
    """Hide a finished run from the default run lists (restorable with :func:`restore_run`).
    ConflictError while the run is active; idempotent otherwise."""
    return _set_archived(ctx, run_id, True)


def restore_run(ctx: ServiceContext, run_id: int) -> Run:
    """Bring an archived run back into the default run lists (idempotent)."""
    return _set_archived(ctx, run_id, False)


def delete_run(ctx: ServiceContext, run_id: int) -> Run:
    """Delete a finished run for good: its row, events and replicas, and its directory
    (logs, state) under ``runs/``. ConflictError while the run is active.

    The directory is first renamed into ``runs/deleted/`` inside the database transaction,
    so the run's id is free on disk before the rows go (SQLite may hand out the id of a
    deleted last row again, and a new run must not find old logs); if the transaction
    fails it is renamed back. After the commit the renamed directory is removed: delete is
    permanent and logs are what take the space.
    """
    runs_dir = ctx.settings.runs_dir
    moved: tuple[Path, Path] | None = None
    try:
        with ctx.db.write() as session:
            row = load_run(session, run_id, lock=True)
            _check_finished(row, "delete")
            run = store.to_run(row)
            run_dir = runs_dir / str(run_id)
            if run_dir.exists():
                trash = runs_dir / "deleted" / f"{run_id}-{uuid.uuid4().hex[:12]}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                run_dir.rename(trash)
                moved = (run_dir, trash)
            store.delete_run(session, row)
    except BaseException:
        if moved is not None and not moved[0].exists():
            moved[1].rename(moved[0])
        raise
    if moved is not None:
        shutil.rmtree(moved[1], ignore_errors=True)
    return run


def create_external_run(
    ctx: ServiceContext,
    project: str,
    name: str,
    *,
    submitted_by: str = "",
    description: str = "",
) -> Run:
    """A run that trainyard does not launch: created ``running`` for a tracking client (the
    SDK outside a trainyard run, the MLflow-compatible API) to log metrics and params to,
    under the task ``name`` of ``project`` (created with format ``external`` if missing;
    an existing task of another format is refused, so launched tasks are never mixed with
    logged ones). It ends with :func:`finish_external_run`.
    """
    from trainyard.server.services.projects import validate_name

    submitted_by = check_submitted_by(submitted_by)
    validate_name("task", name)
    spec = TaskSpec(
        name=name, format=ManifestFormat.EXTERNAL, resources=[], description=description
    )
    with ctx.db.write() as session:
        project_row = load_project(session, project)
        task_row = task_store.get_task(session, project_row, name)
        if task_row is None:
            task_row = task_store.insert_or_update_task(session, project_row, spec, "")
        elif task_row.format != ManifestFormat.EXTERNAL.value:
            raise ConflictError(
                f"task '{project}/{name}' is a {task_row.format} task that trainyard runs; "
                "log this run under another name",
                fields={"project": project, "task": name, "format": task_row.format},
            )
        build_id = task_store.update_next_build_id(session, task_row.id)
        row = store.insert_run(
            session,
            project=project_row,
            task=task_row,
            build_id=build_id,
            spec=spec,
            manifest="",
            parameters={},
            git=None,
            snapshot_id=None,
            executor=EXTERNAL,
            submitted_by=submitted_by,
        )
        event_store.insert_event(
            session,
            row.id,
            "status",
            status=RunStatus.QUEUED,
            reason="created by a tracking client",
            time=row.created_at,
        )
        transition(session, row, RunStatus.STARTING, "logged from outside trainyard")
        transition(session, row, RunStatus.RUNNING, "logging")
        return store.to_run(row)


_FINISH = {
    RunStatus.COMPLETE: "finished by the tracking client",
    RunStatus.ERROR: "failed (reported by the tracking client)",
    RunStatus.STOPPED: "killed (reported by the tracking client)",
}


def finish_external_run(
    ctx: ServiceContext, run_id: int, status: RunStatus, reason: str = ""
) -> Run:
    """End a run created by :func:`create_external_run` as ``complete``, ``error`` or
    ``stopped``; idempotent once it has ended. ConflictError for a run trainyard launched
    (stop it instead)."""
    if status not in _FINISH:
        raise InvalidInputError(
            f"a run ends as complete, error or stopped, not {status.value}",
            fields={"status": status.value},
        )
    with ctx.db.write() as session:
        row = load_run(session, run_id, lock=True)
        if row.executor != EXTERNAL:
            raise ConflictError(
                f"run {run_id} ({_ref(row)}) is launched by trainyard: it ends by itself or "
                f"with POST /api/v1/runs/{run_id}/stop",
                fields={"run_id": run_id, "executor": row.executor},
            )
        current = RunStatus(row.status)
        if current in TERMINAL_STATUSES:
            return store.to_run(row)
        text = reason.strip()[:1000] or _FINISH[status]
        if status is RunStatus.STOPPED and current is not RunStatus.STOPPING:
            transition(session, row, RunStatus.STOPPING, text)
        transition(session, row, status, text)
        return store.to_run(row)
