"""Run services driven directly (no HTTP): stop semantics, the launcher's claim, crash
recovery of a run left in ``starting``. Real database (both backends), real local executor."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from server_support import manifest, wait_for

from trainyard.core.errors import InvalidInputError, UnsupportedError
from trainyard.core.status import RunStatus
from trainyard.executors.base import LaunchRequest, ReplicaLaunch
from trainyard.server.scheduler.queue import Launcher, claim_next
from trainyard.server.services import runs as runs_service
from trainyard.server.services.context import InFlight, ServiceContext
from trainyard.server.services.launches import launch_run
from trainyard.server.services.reconciler import Reconciler
from trainyard.server.services.scheduling import list_pools, simulate_gpus
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
    assert run.status is RunStatus.STARTING
    assert run.reason == "launching on local: placed on node-a"
    with ctx.db.read() as s:
        row = runs_store.get_run(s, first)
        assert row is not None and row.claimed_by == "server-a" and row.claimed_at is not None
    assert claim_next(ctx, "server-a") == ids[1]
    # The reconciler leaves a run that is being launched alone, even with no grace at all.
    Reconciler(ctx, relaunch_grace=0.0).reconcile_once()
    assert ctx.executor.observe(first) is None
    assert runs_service.get_run(ctx, first).status is RunStatus.STARTING
    for run_id in (first, ids[1]):
        launch_run(ctx, run_id, first_launch=True)
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
    # The dead server had got as far as creating the run's code directory: a relaunch keeps
    # what its own earlier attempt left (only a first launch moves a directory aside).
    left = ctx.settings.runs_dir / str(run.id) / "code" / "extracted-by-the-first-attempt"
    left.parent.mkdir(parents=True)
    left.write_text("kept")
    ctx.launching = InFlight()  # the new process knows nothing of the old one's launches
    reconciler = Reconciler(ctx, relaunch_grace=3600)
    reconciler.reconcile_once()
    assert ctx.executor.observe(run.id) is None, "relaunched before the grace period"
    assert _settle(ctx, run.id, {RunStatus.COMPLETE}) is RunStatus.COMPLETE
    lines = [line.text for line in ctx.executor.read_logs(run.id, "worker-0").lines]
    assert lines == ["once"]
    assert _statuses(ctx, run.id) == ["queued", "starting", "running", "complete"]
    assert left.read_text() == "kept"
    assert not (ctx.settings.runs_dir / "stale").exists()
    assert [e.kind for e in runs_service.list_events(ctx, run.id) if e.kind == "warning"] == []


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
    launch_run(ctx, run.id, first_launch=True)  # nothing is launched for a run no longer `starting`
    assert ctx.executor.observe(run.id) is None
    status = _settle(ctx, run.id, {RunStatus.STOPPED})
    assert status is RunStatus.STOPPED
    assert runs_service.get_run(ctx, run.id).reason == "stopped before it started"


def test_stop_of_a_running_run(ctx: ServiceContext, tmp_path: Path) -> None:
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="sleep 60"))
    assert claim_next(ctx, "me") == run.id
    launch_run(ctx, run.id, first_launch=True)
    _settle(ctx, run.id, {RunStatus.RUNNING})
    assert runs_service.stop_run(ctx, run.id).status is RunStatus.STOPPING
    assert _settle(ctx, run.id, {RunStatus.STOPPED}) is RunStatus.STOPPED
    final = runs_service.get_run(ctx, run.id)
    assert all(r.status.value == "stopped" for r in final.replicas), final.replicas
    assert _statuses(ctx, run.id) == ["queued", "starting", "running", "stopping", "stopped"]


def test_launch_failure_is_an_error_with_the_reason(ctx: ServiceContext) -> None:
    """A real failure at launch: the runs directory cannot be created (a file is in its way)."""
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="echo never"))
    assert claim_next(ctx, "me") == run.id
    runs_dir = ctx.settings.runs_dir
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    runs_dir.write_text("in the way")
    try:
        launch_run(ctx, run.id, first_launch=True)
    finally:
        runs_dir.unlink()
    failed = runs_service.get_run(ctx, run.id)
    assert failed.status is RunStatus.ERROR
    assert str(runs_dir) in failed.reason, failed.reason
    assert failed.reason.startswith(("cannot launch: ", "launch failed: ")), failed.reason
    assert run.id not in ctx.launching


def test_list_runs_task_filter_needs_project(ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInputError):
        runs_service.list_runs(ctx, task="x")


def test_first_launch_refuses_a_run_directory_whose_old_run_is_still_going(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    """A fresh database's run 1 meets runs/1 of a run that is still going (another database on
    the same TRAINYARD_HOME): the directory is neither adopted nor moved under a live run."""
    run = runs_service.submit_run(ctx, "default", manifest=manifest(command="echo new"))
    old_dir = ctx.settings.runs_dir / str(run.id)
    ctx.executor.launch(
        LaunchRequest(
            run_id=run.id,
            run_ref="elsewhere/old#1",
            replicas=[
                ReplicaLaunch(
                    name="worker-0",
                    resource="worker",
                    index=0,
                    address="127.0.0.1",
                    command="sleep 60",
                    work_dir=str(tmp_path),
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                )
            ],
            code_dir=str(tmp_path),
        )
    )
    try:
        wait_for("the old run to run", lambda: _phase(ctx, run.id) == "running", timeout=20)
        assert claim_next(ctx, "me") == run.id
        launch_run(ctx, run.id, first_launch=True)
        failed = runs_service.get_run(ctx, run.id)
        assert failed.status is RunStatus.ERROR
        assert failed.reason.startswith(
            f"launch failed: the run directory {old_dir} holds a run that is still going"
        ), failed.reason
        assert "TRAINYARD_HOME" in failed.reason
        # The old run is untouched: same launch file, still running, nothing moved.
        assert '"elsewhere/old#1"' in (old_dir / "launch.json").read_text()
        assert _phase(ctx, run.id) == "running"
        assert not (ctx.settings.runs_dir / "stale").exists()
    finally:
        ctx.executor.stop(run.id, 0.0)
        wait_for("the old run to stop", lambda: _phase(ctx, run.id) != "running", timeout=20)
        ctx.executor.reap(run.id)


def _phase(ctx: ServiceContext, run_id: int) -> str | None:
    observed = ctx.executor.observe(run_id)
    return observed.phase if observed is not None else None


GPU_TASK = """name: gpus
resources:
  - name: worker
    replicas: 2
    command: echo "[$CUDA_VISIBLE_DEVICES] [$GPU_COUNT]"
    resources:
      requests:
        gpu: 2
  - name: chief
    replicas: 1
    command: echo chief
    resources:
      limits:
        gpu: 1
  - name: cpu
    replicas: 1
    command: echo cpu
"""


def test_gpu_requests_are_refused_without_gpus(ctx: ServiceContext) -> None:
    """No GPU on the cluster: a run asking for GPUs is refused at submit (it could never be
    placed), with a message naming the replica and the fix, and nothing is written."""
    with pytest.raises(UnsupportedError) as caught:
        runs_service.submit_run(ctx, "default", manifest=GPU_TASK)
    message = caught.value.message
    assert "replica worker-0 requests 2 × GPU on one node, but no node has any" in message
    assert "trainyard node simulate-gpus" in message
    assert runs_service.list_runs(ctx)[1] == 0


def test_gpus_are_given_to_replicas(ctx: ServiceContext) -> None:
    """Simulated GPUs: each replica gets disjoint GPUs, as UUIDs in CUDA_VISIBLE_DEVICES."""
    simulate_gpus(ctx, "node-a", 5, "Tesla-V100-SXM3-32GB")
    run = runs_service.submit_run(ctx, "default", manifest=GPU_TASK)
    assert claim_next(ctx, "me") == run.id
    launch_run(ctx, run.id, first_launch=True)
    # A relaunch (the run is still `starting`: nothing has observed it yet) gives the same GPUs.
    assert ctx.launching.add(run.id)
    launch_run(ctx, run.id, first_launch=False)
    status = _settle(ctx, run.id, {RunStatus.COMPLETE, RunStatus.ERROR})
    assert status is RunStatus.COMPLETE, runs_service.get_run(ctx, run.id).reason
    placed = {p.replica: p.gpus for p in runs_service.get_run(ctx, run.id).placements}
    assert sorted(placed) == ["chief-0", "cpu-0", "worker-0", "worker-1"]
    assert [len(placed[r]) for r in ("worker-0", "worker-1", "chief-0", "cpu-0")] == [2, 2, 1, 0]
    every = [u for gpus in placed.values() for u in gpus]
    assert len(set(every)) == 5 and all(u.startswith("GPU-sim-") for u in every)
    for name in ("worker-0", "worker-1"):
        lines = [line.text for line in ctx.executor.read_logs(run.id, name).lines]
        assert lines == [f"[{','.join(placed[name])}] [{len(placed[name])}]"]
    # The run has ended: its GPUs are free again, its placements kept as history.
    pools = {p.name: p for p in list_pools(ctx)}
    assert pools["default"].free == 5
