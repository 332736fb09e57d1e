"""Launching a claimed run: extract its code, build the launch request, hand it to the
executor, and record a failure as ``error``. Used by the launcher (new runs) and by the
reconciler (runs a crashed server left in ``starting``).

load → act → apply: the run is read in one short transaction, the slow work (extraction,
spawning) happens with no transaction open, and the outcome is written in another.
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
from trainyard.server.store import runs as store
from trainyard.storage.archive import extract_archive

__all__ = ["launch_run", "run_dir", "training_dir"]

log = logging.getLogger(__name__)


def run_dir(ctx: ServiceContext, run_id: int) -> Path:
    return ctx.settings.runs_dir / str(run_id)


def training_dir(ctx: ServiceContext, project: str) -> Path:
    """Shared by every run of the project (Kibernetika's $TRAINING_DIR)."""
    return ctx.settings.storage_dir / "projects" / project / "training"


def _prepare(ctx: ServiceContext, run: Run) -> LaunchRequest:
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
    )


def _fail(ctx: ServiceContext, run_id: int, reason: str) -> None:
    with ctx.db.write() as session:
        row = load_run(session, run_id, lock=True)
        if RunStatus(row.status) in (RunStatus.STARTING, RunStatus.STOPPING):
            transition(session, row, RunStatus.ERROR, reason)


def _launch(ctx: ServiceContext, run_id: int) -> None:
    with ctx.db.read() as session:
        row = store.get_run(session, run_id)
        run = store.to_run(row) if row is not None else None
    if run is None or run.status is not RunStatus.STARTING:
        return  # stopped (or gone) before we got to it: the caller handles `stopping`
    try:
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


def launch_run(ctx: ServiceContext, run_id: int) -> None:
    """Launch ``run_id`` (in ``starting``), which the caller has added to ``ctx.launching``;
    removes it from there when done. Never raises for a launch failure: the run goes to
    ``error`` with the reason. Idempotent (so is :meth:`Executor.launch`)."""
    try:
        _launch(ctx, run_id)
    finally:
        ctx.launching.discard(run_id)
        ctx.wake_reconciler()
    # Only after leaving `launching`: a stop that saw the run in flight left it to us, and a
    # stop that comes later sees it out of flight and calls the executor itself.
    _stop_if_requested(ctx, run_id)
