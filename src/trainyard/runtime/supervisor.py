"""The supervisor of one run: launches its replicas, records their output, samples their
resources, enforces memory limits and the restart policy, decides how the run ends, and
stops it on request.

It is a single-threaded event loop over the replicas' output pipes and a signal wake-up pipe
(SIGCHLD, SIGTERM). Every change is recorded as events (``events.jsonl``) and then as the new
``state.json``; the process exits only after the final state is durably written.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import time
from types import FrameType

from trainyard.runtime.files import EventLog, format_memory, iso_utc, write_json_atomic
from trainyard.runtime.logsink import LogSink, describe_quota
from trainyard.runtime.proc import (
    become_subreaper,
    confirm_start,
    describe_exit,
    kill_group,
    kill_tree,
    start_shell,
    start_ticks,
    tree_rss,
)
from trainyard.runtime.replica import ReplicaState
from trainyard.runtime.resources import ResourceSampler
from trainyard.runtime.spec import LaunchSpec

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Supervisor"]

_READ_SIZE = 1 << 16
_DRAIN_SECONDS = 1.0  # after a replica exits, wait this long for the rest of its output
_STOP_FILE_POLL = 0.2
_LOG_SYNC_INTERVAL = 1.0
_AFTER_KILL_WAIT = 5.0  # after SIGKILL, how long to wait for processes to disappear
_TAIL_IN_EVENT = 20


class Supervisor:
    """Runs one :class:`LaunchSpec` in ``run_dir`` (whose lock the caller holds)."""

    def __init__(self, run_dir: str, spec: LaunchSpec) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.events = EventLog(os.path.join(run_dir, "events.jsonl"))
        self.phase = "starting"
        self.reason = ""
        logs = os.path.join(run_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        # A run made only of daemons has nothing to wait for: then nobody is a daemon.
        all_daemons = all(r.daemon for r in spec.replicas)
        self.replicas = [
            ReplicaState(
                r,
                LogSink(
                    os.path.join(logs, f"{r.name}.log"),
                    spec.max_line_bytes,
                    quota_bytes=spec.log_quota_bytes,
                    replica=r.name,
                    on_problem=self._log_problem,
                ),
                daemon=r.daemon and not all_daemons,
            )
            for r in spec.replicas
        ]
        self.by_pid: dict[int, ReplicaState] = {}
        # Every open output pipe, including those of exited replicas whose descendants still
        # write (e.g. a graceful shutdown after the shell died of SIGTERM).
        self.outputs: dict[int, ReplicaState] = {}
        self.selector = selectors.DefaultSelector()
        self.start_ticks = start_ticks(os.getpid())
        self.stop_requested = False
        self.grace = spec.stop_grace_seconds
        # Set once the run's outcome is decided; the loop then winds the replicas down.
        self.final_phase: str | None = None
        self.final_reason = ""
        self.kill_at: float | None = None
        self.killed_at: float | None = None
        self.state_dirty = True
        self.next_sample = 0.0
        self.next_stop_poll = 0.0
        self.next_log_sync = 0.0
        # CPU, memory and GPU samples of each replica, every resource_interval.
        self.resources: ResourceSampler | None = ResourceSampler(
            os.path.join(run_dir, "resources.jsonl"),
            spec.resource_interval,
            self._resource_warning,
        )

    def _log_problem(self, replica: str, message: str) -> None:
        """A replica's log reached its quota or cannot be written: a warning event, now (it
        is written at the end of this pass of the loop, while the replica keeps running)."""
        self.events.add("warning", message, replica=replica)
        self.state_dirty = True

    def _resource_warning(self, message: str) -> None:
        """Resource samples are incomplete (no NVML, a disk error): say so once, as an event."""
        self.events.add("warning", message)
        self.state_dirty = True

    # ---- signals -------------------------------------------------------------------------

    def _install_signals(self) -> None:
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, self._on_child)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        pass  # the wake-up fd ends the select; reaping happens in the loop

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise the run to its end. Returns the process exit status."""
        self._install_signals()
        become_subreaper()
        self._poll_stop_file(time.monotonic())
        if self.stop_requested:
            self._begin_stop("stopped", "stopped by request", "stopped before it started")
        else:
            self._save(durable=False)
            self._spawn(*self.replicas)
            if all(r.running for r in self.replicas):
                self.phase = "running"
                count = len(self.replicas)
                started = "1 replica started" if count == 1 else f"{count} replicas started"
                self.events.add("phase", f"running: {started}")
                self.state_dirty = True
        self._save()
        while not self._finished():
            self._step()
        self._finish()
        return 0

    def _step(self) -> None:
        for key, _ in self.selector.select(self._timeout()):
            if key.data is None:
                self._drain_wakeup()
            else:
                self._read(key.data, key.fd)
        now = time.monotonic()
        self._reap_children(now)
        # A SIGTERM comes with a stop file that may carry the grace period: read it now.
        self._poll_stop_file(now, force=self.stop_requested and self.final_phase is None)
        if self.stop_requested and self.final_phase is None:
            self.events.add("info", "stop requested")
            self._begin_stop("stopped", "stopped by request", "stopped by request")
        for r in self.replicas:
            if r.proc == "exited" and (r.fd is None or now - r.exited_at >= _DRAIN_SECONDS):
                self._finalize(r, now)
        self._enforce_memory(now)
        self._sample_resources(now)
        self._restart_due(now)
        self._decide(now)
        if now >= self.next_log_sync:
            self.next_log_sync = now + _LOG_SYNC_INTERVAL
            for r in self.replicas:
                r.sink.sync()
        self._save()

    def _timeout(self) -> float:
        now = time.monotonic()
        due = [self.next_stop_poll, now + _LOG_SYNC_INTERVAL]
        due += [r.exited_at + _DRAIN_SECONDS for r in self.replicas if r.proc == "exited"]
        due += [r.restart_at for r in self.replicas if r.restart_at is not None]
        if any(r.running and r.spec.memory_limit_bytes for r in self.replicas):
            due.append(self.next_sample)
        resources_due = self.resources.next_due() if self.resources is not None else None
        if resources_due is not None:
            due.append(resources_due)
        if self.kill_at is not None and self.killed_at is None:
            due.append(self.kill_at)
        if self.killed_at is not None:
            due.append(self.killed_at + _AFTER_KILL_WAIT)
        return max(0.0, min(due) - now)

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # ---- replicas ------------------------------------------------------------------------

    def _spawn(self, *replicas: ReplicaState) -> None:
        """Start replicas: fork them all first, then wait for each exec, so their start-up
        overlaps (it is on the submit -> running path)."""
        pending: list[tuple[ReplicaState, int, int, int]] = []
        for r in replicas:
            r.wait_status, r.oom_reason, r.stop_reason, r.spawn_error = None, None, None, None
            read_fd, write_fd = os.pipe()
            try:
                pid, err_r = start_shell(r.spec.command, r.spec.work_dir, r.spec.env, write_fd)
            except OSError as exc:
                os.close(read_fd)
                self._spawn_failed(r, exc)
                continue
            finally:
                os.close(write_fd)
            pending.append((r, read_fd, pid, err_r))
        for r, read_fd, pid, err_r in pending:
            try:
                confirm_start(pid, err_r)
            except OSError as exc:
                os.close(read_fd)
                self._spawn_failed(r, exc)
                continue
            os.set_blocking(read_fd, False)
            self.selector.register(read_fd, selectors.EVENT_READ, r)
            self.outputs[read_fd] = r
            r.fd, r.pid, r.proc, r.group_alive = read_fd, pid, "running", True
            r.start_ticks = start_ticks(pid)
            r.status, r.reason = "running", ""
            r.started_at, r.finished_at, r.exit_code, r.signal = iso_utc(), None, None, None
            self.by_pid[pid] = r
            if self.resources is not None:
                self.resources.add(r.name, pid, r.spec.gpus, time.monotonic())
            how = f" (restart {r.restarts} of {r.spec.backoff_limit})" if r.restarts else ""
            self.events.add(
                "replica",
                f"{r.name} started{how}: pid {pid}, address {r.spec.address}",
                replica=r.name,
            )
        self.state_dirty = True

    def _spawn_failed(self, r: ReplicaState, exc: OSError) -> None:
        r.spawn_error = f"cannot start: {exc.strerror or exc}"
        r.proc, r.exited_at, r.wait_status = "exited", time.monotonic(), None

    def _read(self, r: ReplicaState, fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if data:
            r.sink.feed(data)
            return
        self._close_output(r, fd)

    def _close_output(self, r: ReplicaState, fd: int) -> None:
        # Whatever is still buffered in the pipe belongs to the log.
        try:
            while data := os.read(fd, _READ_SIZE):
                r.sink.feed(data)
        except OSError:
            pass
        self.selector.unregister(fd)
        os.close(fd)
        del self.outputs[fd]
        if r.fd == fd:
            r.fd = None
        r.sink.finish()

    def _reap_children(self, now: float) -> None:
        while True:
            # Look before reaping (WNOWAIT): while the exited leader is a zombie its pid, and
            # so its process group id, cannot be reused, so killing the group is safe.
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            r = self.by_pid.pop(pid, None)
            if r is not None and r.stop_reason is None:
                # Like a container: when the replica's main process ends, so does the rest
                # of its process group. During a stop, stragglers get the grace period.
                kill_group(pid, signal.SIGKILL)
                r.group_alive = False
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:  # pragma: no cover - nobody else reaps our children
                continue
            if r is not None:
                r.proc, r.wait_status, r.exited_at = "exited", status, now
                # Its processes are gone (or being killed): nothing more to measure.
                if self.resources is not None:
                    self.resources.remove(r.name)

    def _finalize(self, r: ReplicaState, now: float) -> None:
        """The replica's process is gone (its output read, or the drain time is over): decide
        what it means. A pipe still open stays registered until its writers are gone."""
        r.fd = None
        r.proc = "none"
        r.finished_at = iso_utc()
        if r.wait_status is not None:
            r.exit_code, r.signal, words = describe_exit(r.wait_status)
        else:
            words = r.spawn_error or "cannot start"
        r.sink.sync()
        self.state_dirty = True
        if r.stop_reason is not None:
            r.status, r.reason = "stopped", r.stop_reason
            self.events.add(
                "replica", f"{r.name} stopped ({words})", replica=r.name, reason=r.stop_reason
            )
            return
        if r.oom_reason is not None:
            words = r.oom_reason
        elif r.exit_code == 0:
            if not r.daemon:
                r.status, r.reason = "succeeded", ""
                self.events.add("replica", f"{r.name} succeeded (exit code 0)", replica=r.name)
                return
            words = "exited with exit code 0 while other replicas were still running"
        restartable = (
            r.spec.restart_policy == "OnFailure"
            and r.spawn_error is None
            and r.exit_code != 0
            and r.restarts < r.spec.backoff_limit
            and self.final_phase is None
        )
        if restartable:
            delay = self.spec.restart_backoff_seconds * (2**r.restarts)
            r.restart_at = now + delay
            r.status, r.reason = "pending", f"restarting after {words}"
            self.events.add(
                "replica",
                f"restarting {r.name} after {words} "
                f"(restart {r.restarts + 1} of {r.spec.backoff_limit}) in {delay:g}s",
                replica=r.name,
                reason=words,
            )
            return
        r.status, r.reason = "failed", words
        if r.oom_reason is not None:
            reason = f"{r.oom_reason} (replica {r.name})"
        else:
            reason = f"replica {r.name} failed: {words}"
        if r.restarts:
            reason += f" after {r.restarts} restart{'s' if r.restarts > 1 else ''}"
        self.events.add("replica", self._with_tail(reason, r), replica=r.name, reason=reason)
        self._begin_stop("error", reason, f"stopped because replica {r.name} failed")

    def _with_tail(self, reason: str, r: ReplicaState) -> str:
        lines = r.sink.tail_lines()[-_TAIL_IN_EVENT:]
        if not lines:
            return reason + "\n(no output)"
        text = b"\n".join(lines).decode("utf-8", errors="replace")
        return f"{reason}\nlast {len(lines)} log lines of {r.name}:\n{text}"

    def _enforce_memory(self, now: float) -> None:
        limited = [r for r in self.replicas if r.running and r.spec.memory_limit_bytes]
        if not limited or now < self.next_sample:
            return
        self.next_sample = now + self.spec.sample_interval
        for r in limited:
            limit = r.spec.memory_limit_bytes
            assert limit is not None and r.pid is not None
            if r.oom_reason is None and tree_rss(r.pid) > limit:
                r.oom_reason = f"OOMKilled: memory limit {format_memory(limit)} exceeded"
                kill_group(r.pid, signal.SIGKILL)
                kill_tree(r.pid)

    def _sample_resources(self, now: float) -> None:
        """Resource samples of the replicas due. Metrics must never end a run: a failure
        here is reported once and sampling stops."""
        if self.resources is None:
            return
        try:
            self.resources.sample(now)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            self.events.add(
                "warning",
                f"resource sampling failed ({exc!r}): no more resource metrics for this run",
            )
            self.state_dirty = True
            self.resources = None

    def _restart_due(self, now: float) -> None:
        for r in self.replicas:
            if r.restart_at is not None and now >= r.restart_at:
                r.restart_at = None
                r.restarts += 1
                self._spawn(r)

    # ---- the run's outcome ---------------------------------------------------------------

    def _decide(self, now: float) -> None:
        if self.final_phase is None:
            workers = [r for r in self.replicas if not r.daemon]
            if all(r.status == "succeeded" for r in workers):
                self._begin_stop("complete", "", "stopped after the other replicas finished")
            return
        assert self.kill_at is not None
        if self.killed_at is None and now >= self.kill_at and self._anything_left():
            self.killed_at = now
            for r in self.replicas:
                if r.group_alive and r.pid is not None:
                    kill_group(r.pid, signal.SIGKILL)
            kill_tree(os.getpid(), include_root=False)

    def _anything_left(self) -> bool:
        """Is any replica still running, or any replica's process group not empty yet?"""
        if any(r.running for r in self.replicas):
            return True
        for r in self.replicas:
            if r.group_alive and r.pid is not None:
                try:
                    os.killpg(r.pid, 0)
                    return True
                except OSError:
                    # Empty: its id may be reused from now on, so never signal it again.
                    r.group_alive = False
        return False

    def _begin_stop(self, phase: str, reason: str, replica_reason: str) -> None:
        """Decide the outcome and send SIGTERM to every replica still running."""
        if self.final_phase is not None:
            return
        self.final_phase, self.final_reason = phase, reason
        self.kill_at = time.monotonic() + self.grace
        for r in self.replicas:
            if r.restart_at is not None or r.status == "pending":
                r.restart_at = None
                r.status, r.reason = "stopped", replica_reason
            elif r.running:
                assert r.pid is not None
                r.stop_reason = replica_reason
                kill_group(r.pid, signal.SIGTERM)
        self.state_dirty = True

    def _finished(self) -> bool:
        if self.final_phase is None:
            return False
        if self.killed_at is None:
            # Wait for every replica, and every process of its group, to be gone.
            return not any(r.proc != "none" for r in self.replicas) and not self._anything_left()
        # After SIGKILL, wait a little for the exits to be collected, then give up.
        pending = any(r.proc != "none" for r in self.replicas)
        return not pending or time.monotonic() >= self.killed_at + _AFTER_KILL_WAIT

    def _poll_stop_file(self, now: float, *, force: bool = False) -> None:
        if now < self.next_stop_poll and not force:
            return
        self.next_stop_poll = now + _STOP_FILE_POLL
        stop_file = os.path.join(self.run_dir, "stop")
        try:
            with open(stop_file, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return
        except OSError:
            raw = b""
        self.stop_requested = True
        try:
            grace = json.loads(raw or b"{}").get("grace_seconds")
            if isinstance(grace, int | float) and grace >= 0 and self.final_phase is None:
                self.grace = float(grace)
        except (ValueError, AttributeError):
            pass

    def _finish(self) -> None:
        # Stragglers that left their replica's group, and orphans re-parented to us.
        kill_tree(os.getpid(), include_root=False)
        deadline = time.monotonic() + 2.0
        for fd, r in list(self.outputs.items()):
            self._close_output(r, fd)
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)
        if self.resources is not None:
            self.resources.close()
        for r in self.replicas:
            r.sink.close()
            if r.sink.dropped_bytes:
                self.events.add("warning", self._dropped_message(r), replica=r.name)
        phase, reason = self.final_phase or "error", self.final_reason
        broken = [r.sink.error for r in self.replicas if r.sink.error]
        if broken and phase == "complete":
            phase, reason = "error", f"logs could not be written: {broken[0]}"
        self.phase, self.reason = phase, reason
        message = reason if reason.startswith(phase) else f"{phase}: {reason}" if reason else phase
        self.events.add("phase", message, reason=reason)
        self.state_dirty = True
        self._save()

    @staticmethod
    def _dropped_message(r: ReplicaState) -> str:
        sink = r.sink
        why = (
            f"its log reached the quota of {describe_quota(sink.quota_bytes)}"
            if sink.quota_reached
            else f"its log could not be written: {sink.error}"
        )
        if sink.quota_reached and sink.error:
            why += f", then could not be written: {sink.error}"
        return (
            f"{r.name}: {sink.dropped_bytes} bytes of output were not stored because {why}; "
            f"{sink.size} bytes are in its log"
        )

    # ---- persistence ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "run_id": self.spec.run_id,
            "phase": self.phase,
            "reason": self.reason,
            "supervisor_pid": os.getpid(),
            "supervisor_start_ticks": self.start_ticks,
            "replicas": [r.to_json() for r in self.replicas],
            "seq": self.events.seq,
            "updated_at": iso_utc(),
        }

    def _save(self, *, durable: bool = True) -> None:
        """Events first, then the state that counts them (see files.py)."""
        if not self.state_dirty:
            return
        try:
            self.events.flush()
            path = os.path.join(self.run_dir, "state.json")
            write_json_atomic(path, self.state(), durable=durable)
            self.state_dirty = False
        except OSError as exc:
            # Nothing better to do than say so and try again on the next change.
            print(f"trainyard supervisor: cannot write state: {exc}", file=sys.stderr, flush=True)
