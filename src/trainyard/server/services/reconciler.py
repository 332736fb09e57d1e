"""The reconciler: makes the database agree with what the executor observes.

Every ``interval`` it lists the active runs (starting, running, stopping) — one indexed
query — and asks the executor about each. Observations are compared with the last one applied
in memory, so an idle server (or a run whose state has not changed) writes nothing. A change
is applied in one short write transaction: replicas upserted, new executor events copied
(their seq is the cursor stored on the run, so nothing is copied twice across restarts), and
the executor's phase turned into a status change through :func:`runs.transition`.

Because the database and the run directories are the whole truth, a server started after a
crash adopts every active run on its first pass: runs that kept going are followed to their
end, runs that ended while no server watched are recorded as ending when they did (the time
of the executor's final phase event, or of the last replica to finish), runs whose supervisor
died end in ``error`` "supervisor lost" (after :meth:`reap`; their unfinished replicas
``failed``, the event carrying each one's last log lines), and
runs left in ``starting`` by a crash between "launch decided" and "launch recorded" are
launched again (the executor's launch is idempotent) once their claim is older than
``relaunch_grace`` — never while this process is still launching them.

Resource samples (CPU, memory, GPUs of each replica) are read from the executor at most every
``metrics.resource_interval`` per run, and always before a final phase is applied, so a run's
last samples are stored before it ends. They are stored as the run's ``system/…`` metrics in
the transaction that moves the run's ``resource_cursor`` past them: exactly once, across
crashes, restarts and servers sharing the database.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from trainyard.core.models import Replica
from trainyard.core.status import TERMINAL_STATUSES, ReplicaStatus, RunStatus
from trainyard.executors.base import (
    ExecutorError,
    ObservedEvent,
    ReplicaObservation,
    RunObservation,
)
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.launches import launch_run
from trainyard.server.services.logs import tail_lines
from trainyard.server.services.metrics import store_resource_samples
from trainyard.server.services.runs import load_run, transition
from trainyard.server.store import Session
from trainyard.server.store import events as event_store
from trainyard.server.store import runs as store
from trainyard.server.store import scheduling as scheduling_store
from trainyard.server.store.tables import RunRow, utcnow

__all__ = ["SUPERVISOR_LOST", "Reconciler"]

log = logging.getLogger(__name__)

SUPERVISOR_LOST = "supervisor lost"
_POLLED = (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.STOPPING)
_STARTING_INTERVAL = 0.01
_COMPLAIN_EVERY = 60.0
_LOST_TAIL_LINES = 20
_UNFINISHED = (ReplicaStatus.PENDING.value, ReplicaStatus.RUNNING.value)
_FINAL_PHASES = ("complete", "error", "stopped")
# Chunks of resource samples stored per run and pass while it goes on (~256 KiB each): a
# backlog left by a server outage is caught up over a few passes, never in one long one.
_RESOURCE_CHUNKS_PER_PASS = 8


@dataclass(frozen=True)
class _Seen:
    """What was last applied for a run: if an observation matches it, there is nothing to do."""

    status: RunStatus
    phase: str
    reason: str
    replicas: tuple[ReplicaObservation, ...]


def _replica(o: ReplicaObservation) -> Replica:
    try:
        status = ReplicaStatus(o.status)
    except ValueError:
        status = ReplicaStatus.PENDING
    return Replica(
        name=o.name,
        resource=o.resource,
        index=o.index,
        address=o.address,
        pid=o.pid,
        status=status,
        exit_code=o.exit_code,
        signal=o.signal,
        restarts=o.restarts,
        started_at=o.started_at,
        finished_at=o.finished_at,
        reason=o.reason,
    )


class Reconciler:
    """Background thread; ``reconcile_once()`` is the whole logic and is callable directly."""

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        interval: float = 0.05,
        idle_interval: float = 1.0,
        relaunch_grace: float = 5.0,
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        # With no active run a pass finds nothing; polling slowly then keeps an idle server
        # near 0% CPU. A launch or stop in this process wakes it at once; runs started by
        # another server sharing the database are picked up within `idle_interval`.
        self.idle_interval = idle_interval
        self.relaunch_grace = relaunch_grace
        self._active = False
        self._starting = False
        self._wake = threading.Event()
        self._seen: dict[int, _Seen] = {}
        # Runs in `stopping` that we asked the executor to stop since this process started:
        # repeats the stop once after a restart, in case the server died between recording
        # `stopping` and calling the executor.
        self._stop_sent: set[int] = set()
        self._complained: dict[int, float] = {}
        # Monotonic time each run's resource samples are due to be read next.
        self._resources_due: dict[int, float] = {}
        self._resources_complained: dict[int, float] = {}
        self.resource_interval = ctx.settings.metrics.resource_interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="trainyard-reconciler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run a pass now and poll at full speed while runs are active."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next_wait(self) -> float:
        if self._starting:
            # A launch is the latency users (and the benchmark) feel: poll fast until it
            # is seen running. Costs a few ms of CPU during the launch only.
            return min(self.interval, _STARTING_INTERVAL)
        return self.interval if self._active else self.idle_interval

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconciler pass failed")

    def reconcile_once(self) -> None:
        """One pass over every active run."""
        with self.ctx.db.read() as session:
            states = store.list_run_states(session, _POLLED)
        self._active = bool(states)
        self._starting = any(s.status is RunStatus.STARTING for s in states)
        active = {s.id for s in states}
        for run_id in list(self._seen):
            if run_id not in active:
                del self._seen[run_id]
        self._stop_sent &= active
        for run_id in list(self._complained):
            if run_id not in active:
                del self._complained[run_id]
        for run_id in list(self._resources_due):
            if run_id not in active:
                del self._resources_due[run_id]
                self._resources_complained.pop(run_id, None)
        for state in states:
            if self._stopping.is_set():
                return
            try:
                self._reconcile(state)
            except Exception:
                # One broken run must not stall the others; it is retried next pass, and
                # said once a minute, not twenty times a second.
                now = time.monotonic()
                if now - self._complained.get(state.id, -_COMPLAIN_EVERY) >= _COMPLAIN_EVERY:
                    self._complained[state.id] = now
                    log.exception("reconciling run %s failed (retrying)", state.id)

    def _reconcile(self, state: store.RunState) -> None:
        run_id = state.id
        if run_id in self.ctx.launching:
            return  # the launcher owns it until the launch is recorded
        obs = self.ctx.executor.observe(run_id, state.observe_cursor)
        if obs is None:
            self._unknown(state)
            return
        if state.status is RunStatus.STOPPING and run_id not in self._stop_sent:
            if obs.phase in ("starting", "running"):
                self.ctx.executor.stop(run_id, self.ctx.settings.runs.stop_grace_seconds)
            self._stop_sent.add(run_id)
        self._store_resources(state, final=obs.phase in _FINAL_PHASES or obs.phase == "lost")
        replicas = tuple(obs.replicas)
        if not obs.events and self._seen.get(run_id) == _Seen(
            state.status, obs.phase, obs.reason, replicas
        ):
            return
        lost_detail = ""
        if obs.phase == "lost":
            # Kill what is left before recording the end, so "error" means "nothing runs".
            self.ctx.executor.reap(run_id)
            # Read before the write transaction: no executor call inside one.
            lost_detail = self._lost_detail(run_id, obs)
        status = self._apply(run_id, obs, lost_detail)
        if status is not None:
            self._seen[run_id] = _Seen(status, obs.phase, obs.reason, replicas)

    def _store_resources(self, state: store.RunState, *, final: bool) -> None:
        """Store the run's new resource samples: every ``resource_interval`` while it goes
        on; all of them (however many) when it has ended, before its end is recorded."""
        now = time.monotonic()
        if not final and now < self._resources_due.get(state.id, 0.0):
            return
        self._resources_due[state.id] = now + self.resource_interval
        cursor = state.resource_cursor
        chunks = 0
        while final or chunks < _RESOURCE_CHUNKS_PER_PASS:
            try:
                chunk = self.ctx.executor.read_resources(state.id, cursor)
            except ExecutorError as exc:
                # Metrics never hold up a run's lifecycle (its end least of all): say so, at
                # most once a minute, and try again on the next interval.
                if now - self._resources_complained.get(state.id, -_COMPLAIN_EVERY) >= (
                    _COMPLAIN_EVERY
                ):
                    self._resources_complained[state.id] = now
                    log.warning("run %s: its resource samples cannot be read: %s", state.id, exc)
                return
            if chunk.next_offset == cursor:
                return
            stored_to = store_resource_samples(
                self.ctx, state.id, chunk.samples, cursor=cursor, next_cursor=chunk.next_offset
            )
            if stored_to is None:
                return  # the run is gone
            # Another server may have stored these: go on from where it got to.
            cursor = stored_to
            chunks += 1

    def _lost_detail(self, run_id: int, obs: RunObservation) -> str:
        """What the unfinished replicas of a lost run last wrote (the end of each log only)."""
        parts: list[str] = []
        for replica in obs.replicas:
            if replica.status not in _UNFINISHED:
                continue
            try:
                lines = tail_lines(self.ctx, run_id, replica.name, _LOST_TAIL_LINES)
            except (ExecutorError, OSError) as exc:  # the end is recorded all the same
                parts.append(f"{replica.name}: its log cannot be read ({exc})")
                continue
            if lines:
                text = "\n".join(lines)
                parts.append(f"last {len(lines)} log lines of {replica.name}:\n{text}")
            else:
                parts.append(f"{replica.name}: (no output)")
        return "\n".join(parts)

    def _unknown(self, state: store.RunState) -> None:
        """The executor knows nothing of an active run."""
        grace = timedelta(seconds=self.relaunch_grace)
        claimed_long_ago = state.claimed_at is None or utcnow() - state.claimed_at > grace
        if state.status is RunStatus.STARTING:
            if claimed_long_ago and self.ctx.launching.add(state.id):
                log.warning(
                    "run %s was left in starting by an earlier server: launching it", state.id
                )
                launch_run(self.ctx, state.id, first_launch=False)
            return
        if state.status is RunStatus.STOPPING and not claimed_long_ago:
            return
        with self.ctx.db.write() as session:
            row = load_run(session, state.id, lock=True)
            status = RunStatus(row.status)
            if status is RunStatus.STOPPING:
                transition(session, row, RunStatus.STOPPED, "stopped before it started")
            elif status is RunStatus.RUNNING:
                _fail_unfinished_replicas(row)
                transition(
                    session,
                    row,
                    RunStatus.ERROR,
                    f"{SUPERVISOR_LOST}: the executor has no record of this run "
                    "(was its run directory deleted?)",
                )

    def _apply(self, run_id: int, obs: RunObservation, lost_detail: str = "") -> RunStatus | None:
        """Write the observation; the run's status afterwards (None if it is gone)."""
        with self.ctx.db.write() as session:
            row = store.get_run(session, run_id, lock=True)
            if row is None:
                return None
            if RunStatus(row.status) not in _POLLED:
                return RunStatus(row.status)
            self._copy_events(session, row, obs.events, obs.cursor)
            if obs.replicas:
                store.update_replicas(session, row, [_replica(o) for o in obs.replicas])
                # A replica that succeeded gives back what it held while the others go on.
                for o in obs.replicas:
                    if o.status == ReplicaStatus.SUCCEEDED.value:
                        scheduling_store.release_replica(session, row.id, o.name)
            self._apply_phase(session, row, obs, lost_detail)
            status = RunStatus(row.status)
        if status in TERMINAL_STATUSES:
            self.ctx.wake_launcher()  # what it held is free: queued runs may fit now
        return status

    @staticmethod
    def _copy_events(
        session: Session, row: RunRow, events: list[ObservedEvent], cursor: int
    ) -> None:
        for event in events:
            if event.seq <= row.observe_cursor:
                continue  # already copied (a stale observation)
            if event.kind == "phase":
                # Recorded as the status event of the transition it causes. `running` is
                # applied here, in event order, so a run that finished between two passes
                # still shows queued -> starting -> running -> complete, at the right time.
                word = event.message.split(":", 1)[0].strip()
                if word == "running" and RunStatus(row.status) is RunStatus.STARTING:
                    reason = event.message.split(":", 1)[-1].strip() or "all replicas started"
                    transition(session, row, RunStatus.RUNNING, reason, time=event.time)
                continue
            event_store.insert_event(
                session,
                row.id,
                event.kind,
                replica=event.replica,
                reason=event.reason,
                message=event.message,
                time=event.time,
            )
        row.observe_cursor = max(row.observe_cursor, cursor)

    @staticmethod
    def _apply_phase(session: Session, row: RunRow, obs: RunObservation, lost_detail: str) -> None:
        status = RunStatus(row.status)
        phase = obs.phase
        if phase == "running":
            if status is RunStatus.STARTING:
                transition(session, row, RunStatus.RUNNING, obs.reason or "all replicas started")
            return
        if phase == "lost":
            reason = obs.reason or SUPERVISOR_LOST
            if status is RunStatus.STARTING:
                # RELIABILITY.md: a crash between "launch decided" and "launch recorded" ends
                # in "lost during launch", never in a second launch.
                reason = f"lost during launch: {reason}"
            _fail_unfinished_replicas(row)
            transition(session, row, RunStatus.ERROR, reason, message=lost_detail)
            return
        if phase not in _FINAL_PHASES:
            return
        # The run may have ended while no server was watching: record when it did.
        ended = _end_time(row, obs)
        if phase == "complete":
            if status is RunStatus.STOPPING:
                transition(
                    session,
                    row,
                    RunStatus.STOPPED,
                    "stopped: the run had already finished",
                    time=ended,
                )
            else:
                transition(
                    session,
                    row,
                    RunStatus.COMPLETE,
                    obs.reason or "all replicas succeeded",
                    time=ended,
                )
        elif phase == "error":
            reason = obs.reason or "the run failed"
            detail = event_store.get_last_event(session, row.id, "replica", reason)
            message = detail.message if detail is not None else ""
            transition(session, row, RunStatus.ERROR, reason, message=message, time=ended)
        else:
            if status is not RunStatus.STOPPING:
                transition(session, row, RunStatus.STOPPING, "stop requested", time=ended)
            transition(session, row, RunStatus.STOPPED, obs.reason or "stopped", time=ended)


def _fail_unfinished_replicas(row: RunRow) -> None:
    """A run whose supervision is lost: replicas not finished are ``failed`` as of now (their
    processes have just been reaped)."""
    now = utcnow()
    for replica in row.replicas:
        if replica.status in _UNFINISHED:
            replica.status = ReplicaStatus.FAILED.value
            replica.reason = SUPERVISOR_LOST
            replica.finished_at = now


def _end_time(row: RunRow, obs: RunObservation) -> datetime | None:
    """When the run ended, as the executor saw it: the time of its final phase event, else
    of the last replica to finish; None (now) if neither is known. Never before the run's
    previous status change (events stay in order) nor in the future."""
    ended: datetime | None = None
    for event in reversed(obs.events):
        if event.kind == "phase" and event.message.split(":", 1)[0].strip() in _FINAL_PHASES:
            ended = event.time
            break
    if ended is None:
        finished = [r.finished_at for r in obs.replicas if r.finished_at is not None]
        ended = max(finished) if finished else None
    if ended is None:
        return None
    if row.updated_at is not None and ended < row.updated_at:
        ended = row.updated_at
    return min(ended, utcnow())
