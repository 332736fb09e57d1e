"""Launching a claimed run: extract its code, build the launch request, hand it to the
executor, and record a failure as ``error``. Used by the launcher (new runs) and by the
reconciler (runs a crashed server left in ``starting``).

load → act → apply: the run is read in one short transaction, the slow work (extraction,
spawning) happens with no transaction open, and the outcome is written in another.

A *first* launch (a run the launcher has just claimed from ``queued``) never finds a run
directory of its own: one already at ``runs/<id>`` was left by an earlier database (deleted,
restored from a backup, or PostgreSQL instead of SQLite) whose run had the same id. Adopting
it would show that old run's state and logs as the new run's, so it is moved aside to
``runs/stale/<id>-<UTC time>`` (never deleted) with a warning event naming both paths. A
relaunch by the reconciler keeps whatever it finds: that is this run's own interrupted launch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from trainyard.core.errors import TrainyardError
from trainyard.core.models import Run
from trainyard.core.status import RunStatus
from trainyard.executors.base import ExecutorError, LaunchRequest
from trainyard.executors.env import build_launch_request
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.runs import load_run, transition
from trainyard.server.services.snapshots import snapshot_path
from trainyard.server.store import events as event_store
from trainyard.server.store import runs as store
from trainyard.server.store.tables import utcnow
from trainyard.storage.archive import extract_archive

__all__ = [
    "STALE_RUN_DIR",
    "launch_run",
    "run_dir",
    "stale_dir",
    "training_dir",
]

log = logging.getLogger(__name__)

STALE_RUN_DIR = "stale run directory"
# Phases in which a backend's run is still going: its directory is in use.
_GOING = ("starting", "running")


def run_dir(ctx: ServiceContext, run_id: int) -> Path:
    return ctx.settings.runs_dir / str(run_id)


def stale_dir(ctx: ServiceContext) -> Path:
    """Where run directories left by an earlier database are moved (``runs/stale``)."""
    return ctx.settings.runs_dir / "stale"


def training_dir(ctx: ServiceContext, project: str) -> Path:
    """Shared by every run of the project (Kibernetika's $TRAINING_DIR)."""
    return ctx.settings.storage_dir / "projects" / project / "training"


def _prepare(ctx: ServiceContext, run: Run) -> LaunchRequest:
    # Each replica gets the GPUs the scheduler placed it on (CUDA_VISIBLE_DEVICES = their
    # UUIDs, GPU_COUNT); a replica without a placement gets none.
    gpus = {p.replica: list(p.gpus) for p in run.placements}
    directory = run_dir(ctx, run.id)
    directory.mkdir(parents=True, exist_ok=True)
    code_dir = directory / "code"
    if run.snapshot_id is not None:
        extract_archive(snapshot_path(ctx, run.snapshot_id), code_dir)
    else:
        code_dir.mkdir(exist_ok=True)
    return build_launch_request(
        run_id=run.id,
        run_ref=run.ref,
        project=run.project,
        task=run.task,
        build_id=run.build_id,
        spec=run.spec,
        code_dir=code_dir,
        run_dir=directory,
        training_dir=training_dir(ctx, run.project),
        server_url=ctx.server_url,
        # Replicas start from the server's environment (PATH, HOME, locale...); the contract
        # drops TRAINYARD_* settings from it.
        base_env=os.environ,
        stop_grace_seconds=ctx.settings.runs.stop_grace_seconds,
        gpus=gpus,
    )


def _note(ctx: ServiceContext, run_id: int, kind: str, reason: str, message: str) -> None:
    """Record an ``info``/``warning`` event on the run, once (a relaunch repeats nothing)."""
    with ctx.db.write() as session:
        if not event_store.has_event(session, run_id, kind, reason, message):
            event_store.insert_event(session, run_id, kind, reason=reason, message=message)


def _move_aside_stale(ctx: ServiceContext, run_id: int) -> None:
    """Move a run directory left by an earlier database out of the way of run ``run_id``.

    Raises :class:`ExecutorError` when the old run is still going (its directory cannot be
    moved under it), OSError when the move fails.
    """
    directory = run_dir(ctx, run_id)
    if not directory.exists():
        return
    is_dir = directory.is_dir()
    if is_dir and not any(directory.iterdir()):
        return  # an empty directory holds nothing to keep
    observed = ctx.executor.observe(run_id) if is_dir else None
    if observed is not None and observed.phase in _GOING:
        raise ExecutorError(
            f"the run directory {directory} holds a run that is still going (phase "
            f"{observed.phase}), left by an earlier database or by another server using the "
            "same TRAINYARD_HOME with another database; stop that run's processes or point "
            "this server at its own TRAINYARD_HOME, then submit again"
        )
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    aside = stale_dir(ctx) / f"{run_id}-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = stale_dir(ctx) / f"{run_id}-{stamp}-{n}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.rename(directory, aside)  # same file system: atomic, nothing copied
    log.warning("run %s: moved aside the run directory %s to %s", run_id, directory, aside)
    _note(
        ctx,
        run_id,
        "warning",
        STALE_RUN_DIR,
        f"moved aside a run directory left by an earlier database: {directory} → {aside}",
    )


def _fail(ctx: ServiceContext, run_id: int, reason: str) -> None:
    with ctx.db.write() as session:
        row = load_run(session, run_id, lock=True)
        if RunStatus(row.status) in (RunStatus.STARTING, RunStatus.STOPPING):
            transition(session, row, RunStatus.ERROR, reason)


def _launch(ctx: ServiceContext, run_id: int, *, first_launch: bool) -> None:
    with ctx.db.read() as session:
        row = store.get_run(session, run_id)
        run = store.to_run(row) if row is not None else None
    if run is None or run.status is not RunStatus.STARTING:
        return  # stopped (or gone) before we got to it: the caller handles `stopping`
    try:
        if first_launch:
            _move_aside_stale(ctx, run_id)
        request = _prepare(ctx, run)
        ctx.executor.launch(request)
    except ExecutorError as exc:
        _fail(ctx, run_id, f"launch failed: {exc}")
    except TrainyardError as exc:
        _fail(ctx, run_id, f"cannot launch: {getattr(exc, 'message', str(exc))}")
    except (OSError, ValueError) as exc:
        log.warning("launch of run %s failed", run_id, exc_info=True)
        _fail(ctx, run_id, f"launch failed: {exc}")


def _stop_if_requested(ctx: ServiceContext, run_id: int) -> None:
    """Apply a stop that arrived while the run was being launched."""
    with ctx.db.read() as session:
        row = store.get_run(session, run_id)
        status = RunStatus(row.status) if row is not None else None
    if status is RunStatus.STOPPING:
        if ctx.executor.observe(run_id) is None:
            # Nothing was launched: the run can be declared stopped right away.
            with ctx.db.write() as session:
                row = load_run(session, run_id, lock=True)
                if RunStatus(row.status) is RunStatus.STOPPING:
                    transition(session, row, RunStatus.STOPPED, "stopped before it started")
        else:
            ctx.executor.stop(run_id, ctx.settings.runs.stop_grace_seconds)


def launch_run(ctx: ServiceContext, run_id: int, *, first_launch: bool) -> None:
    """Launch ``run_id`` (in ``starting``), which the caller has added to ``ctx.launching``;
    removes it from there when done. Never raises for a launch failure: the run goes to
    ``error`` with the reason.

    ``first_launch``: True for a run just claimed from ``queued`` (a run directory already
    there is another run's and is moved aside); False for the reconciler's relaunch of a run
    a crashed server left in ``starting``, which is idempotent (so is
    :meth:`Executor.launch`): what an earlier attempt left is this run's own.
    """
    try:
        _launch(ctx, run_id, first_launch=first_launch)
    finally:
        ctx.launching.discard(run_id)
        ctx.wake_reconciler()
    # Only after leaving `launching`: a stop that saw the run in flight left it to us, and a
    # stop that comes later sees it out of flight and calls the executor itself.
    _stop_if_requested(ctx, run_id)
