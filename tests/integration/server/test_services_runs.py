"""Run services driven directly (no HTTP): stop semantics, the launcher's claim, crash
recovery of a run left in ``starting``. Real database (both backends), real local executor."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from server_support import manifest, wait_for

from trainyard.core.errors import InvalidInputError
from trainyard.core.status import RunStatus
from trainyard.server.scheduler.queue import Launcher, claim_next
from trainyard.server.services import runs as runs_service
from trainyard.server.services.context import InFlight, ServiceContext
from trainyard.server.services.launches import launch_run
from trainyard.server.services.reconciler import Reconciler
from trainyard.server.store import runs as runs_store


def _statuses(ctx: ServiceContext, run_id: int) -> list[str]:
    return [e.status.value for e in runs_service.list_events(ctx, run_id) if e.status]


def _settle(ctx: ServiceContext, run_id: int, statuses: set[RunStatus]) -> RunStatus:
    """Reconcile until the run is in one of ``statuses``."""
    reconciler = Reconciler(ctx, relaunch_grace=0.0)

    def probe() -> RunStatus | None:
        reconciler.reconcile_once()
        status = runs_service.get_run(ctx, run_id).status
        return status if status in statuses else None

    return wait_for(f"run {run_id} in {statuses}", probe, timeout=30)


def test_stop_of_a_queued_run_is_immediate(ctx: ServiceContext) -> None:
    run = runs_service.submit_run(ctx, "default", manifest=manifest())
    stopped = runs_service.stop_run(ctx, run.id)
    assert stopped.status is RunStatus.STOPPED
    assert stopped.reason == "stopped by user before it started"
    assert stopped.finished_at is not None
    assert _statuses(ctx, run.id) == ["queued", "stopped"]
    # Idempotent: stopping again changes nothing and records nothing.
    assert runs_service.stop_run(ctx, run.id).status is RunStatus.STOPPED
    assert _statuses(ctx, run.id) == ["queued", "stopped"]
    # And the launcher never picks it up.
    assert claim_next(ctx, "me") is None


def test_wake_is_called_on_submit(ctx: ServiceContext) -> None:
    woken = threading.Event()
    ctx.wake_launcher = woken.set
    runs_service.submit_run(ctx, "default", manifest=manifest())
    assert woken.is_set()


def test_launcher_claims_fifo_and_marks_in_flight(ctx: ServiceContext) -> None:
    ids = [runs_service.submit_run(ctx, "default", manifest=manifest()).id for _ in range(3)]
    first = claim_next(ctx, "server-a")
    assert first == ids[0]
    assert first in ctx.launching
    run = runs_service.get_run(ctx, first)
    assert run.status is RunStatus.STARTING and run.reason == "launching on local"
    with ctx.db.read() as s:
        row = runs_store.get_run(s, first)
        assert row is not None and row.claimed_by == "server-a" and row.claimed_at is not None
    assert claim_next(ctx, "server-a") == ids[1]
    # The reconciler leaves a run that is being launched alone, even with no grace at all.
    Reconciler(ctx, relaunch_grace=0.0).reconcile_once()
    assert ctx.executor.observe(first) is None
    assert runs_service.get_run(ctx, first).status is RunStatus.STARTING
    for run_id in (first, ids[1]):
        launch_run(ctx, run_id)
        assert run_id not in ctx.launching
    for run_id in (first, ids[1]):
        assert _settle(ctx, run_id, {RunStatus.COMPLETE}) is RunStatus.COMPLETE
        assert _statuses(ctx, run_id) == ["queued", "starting", "running", "complete"]


def test_launcher_thread_runs_a_queued_run(ctx: ServiceContext) -> None:
    launcher = Launcher(ctx, poll_interval=30)  # only a wake can start it in time
    ctx.wake_launcher = launcher.wake
    launcher.start()
    try:
        run = runs_service.submit_run(ctx, "default", manifest=manifest())
        wait_for(
            "the launch",
            lambda: (
                runs_service.get_run(ctx, run.id).status is RunStatus.STARTING
                and ctx.executor.observe(run.id) is not None
            ),
            timeout=10,
        )
    finally:
        launcher.stop()
    assert _settle(ctx, run.id, {RunStatus.COMPLETE}) is RunStatus.COMPLETE


def test_run_left_starting_by_a_crash_is_launched_once(ctx: ServiceContext) -> None:
    """Crash between "launch decided" (committed `starting`) and the launch itself."""
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="echo once"))
    assert claim_next(ctx, "dead-server") == run.id
    ctx.launching = InFlight()  # the new process knows nothing of the old one's launches
    reconciler = Reconciler(ctx, relaunch_grace=3600)
    reconciler.reconcile_once()
    assert ctx.executor.observe(run.id) is None, "relaunched before the grace period"
    assert _settle(ctx, run.id, {RunStatus.COMPLETE}) is RunStatus.COMPLETE
    lines = [line.text for line in ctx.executor.read_logs(run.id, "worker-0").lines]
    assert lines == ["once"]
    assert _statuses(ctx, run.id) == ["queued", "starting", "running", "complete"]


def test_crash_after_the_launch_file_but_before_the_supervisor_is_lost_during_launch(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    """The server died after writing launch.json and before spawning the supervisor: the run
    ends in error "lost during launch", and nothing is ever launched a second time."""
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="echo never"))
    assert claim_next(ctx, "dead-server") == run.id
    run_dir = ctx.settings.runs_dir / str(run.id)
    run_dir.mkdir(parents=True)
    (run_dir / "launch.json").write_text("{}")
    old = time.time() - 3600  # long past the executor's start grace
    os.utime(run_dir / "launch.json", (old, old))
    ctx.launching = InFlight()
    status = _settle(ctx, run.id, {RunStatus.ERROR})
    assert status is RunStatus.ERROR
    reason = runs_service.get_run(ctx, run.id).reason
    assert reason.startswith("lost during launch: supervisor lost"), reason
    assert not (run_dir / "state.json").exists(), "a second launch happened"
    assert _statuses(ctx, run.id) == ["queued", "starting", "error"]


def test_stop_during_launch_is_applied_after_it(ctx: ServiceContext) -> None:
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="sleep 60"))
    assert claim_next(ctx, "me") == run.id
    stopping = runs_service.stop_run(ctx, run.id)  # the launcher holds it: no executor call
    assert stopping.status is RunStatus.STOPPING
    launch_run(ctx, run.id)  # nothing is launched for a run no longer `starting`
    assert ctx.executor.observe(run.id) is None
    status = _settle(ctx, run.id, {RunStatus.STOPPED})
    assert status is RunStatus.STOPPED
    assert runs_service.get_run(ctx, run.id).reason == "stopped before it started"


def test_stop_of_a_running_run(ctx: ServiceContext, tmp_path: Path) -> None:
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="sleep 60"))
    assert claim_next(ctx, "me") == run.id
    launch_run(ctx, run.id)
    _settle(ctx, run.id, {RunStatus.RUNNING})
    assert runs_service.stop_run(ctx, run.id).status is RunStatus.STOPPING
    assert _settle(ctx, run.id, {RunStatus.STOPPED}) is RunStatus.STOPPED
    final = runs_service.get_run(ctx, run.id)
    assert all(r.status.value == "stopped" for r in final.replicas), final.replicas
    assert _statuses(ctx, run.id) == ["queued", "starting", "running", "stopping", "stopped"]


def test_launch_failure_is_an_error_with_the_reason(ctx: ServiceContext) -> None:
    text = manifest(extra="    workDir: $NO_SUCH_DIR/src\n")
    run = runs_service.submit_run(ctx, "default", manifest=text)
    assert claim_next(ctx, "me") == run.id
    launch_run(ctx, run.id)
    failed = runs_service.get_run(ctx, run.id)
    assert failed.status is RunStatus.ERROR
    assert failed.reason.startswith("cannot launch: ")
    assert "unknown variable $NO_SUCH_DIR" in failed.reason
    assert run.id not in ctx.launching


def test_list_runs_task_filter_needs_project(ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInputError):
        runs_service.list_runs(ctx, task="x")
