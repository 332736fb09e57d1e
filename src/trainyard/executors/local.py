"""The local backend: one detached supervisor process per run, talking through files.

Everything about a run lives in ``runs_dir/<run_id>/`` (layout in ``docs/local-backend.md``):
the executor writes ``launch.json`` and spawns ``python -m trainyard.runtime <run_dir>`` in a
new session; the supervisor writes ``state.json``, ``events.jsonl`` and ``logs/``. Because all
of it is on disk and liveness is a ``flock`` the kernel drops when the supervisor dies, a
restarted server (or another one) observes, stops and reaps runs it did not launch itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainyard.core.models import TaskSpec
from trainyard.executors.base import (
    Executor,
    ExecutorError,
    LaunchRequest,
    LogChunk,
    ObservedEvent,
    Phase,
    ReplicaObservation,
    ResourceChunk,
    RunObservation,
)
from trainyard.executors.env import check_launchable
from trainyard.executors.local_logs import (
    is_replica_name,
    parse_log_line,
    read_log_chunk,
    read_log_lines_before,
)
from trainyard.executors.local_procs import kill_run_processes, lock_is_held, same_process
from trainyard.executors.local_resources import read_resource_chunk

__all__ = ["LocalExecutor", "parse_log_line"]

log = logging.getLogger(__name__)

_TERMINAL = frozenset({"complete", "error", "stopped"})
_PHASES = frozenset({"starting", "running", "complete", "error", "stopped"})


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is absent or damaged. Raises
    :class:`ExecutorError` when it cannot be read (permissions, I/O error, not a file)."""
    try:
        data = json.loads(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ExecutorError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError:
        return None  # replaced atomically, so this is a broken file: treat as absent
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("wb") as f:
        f.write(json.dumps(data, separators=(",", ":")).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _replica_observation(raw: dict[str, Any]) -> ReplicaObservation:
    def opt_int(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) else None

    return ReplicaObservation(
        name=str(raw.get("name", "")),
        resource=str(raw.get("resource", "")),
        index=int(raw.get("index", 0)),
        address=str(raw.get("address", "")),
        status=str(raw.get("status", "pending")),
        pid=opt_int("pid"),
        exit_code=opt_int("exit_code"),
        signal=opt_int("signal"),
        restarts=int(raw.get("restarts", 0)),
        started_at=_time(raw.get("started_at")),
        finished_at=_time(raw.get("finished_at")),
        reason=str(raw.get("reason", "")),
    )


class _EventCache:
    """The events of one run read so far, so each observe reads only what is new."""

    def __init__(self) -> None:
        self.inode = -1
        self.offset = 0
        self.events: list[ObservedEvent] = []

    def refresh(self, path: Path) -> None:
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self.inode or st.st_size < self.offset:
                    self.inode, self.offset, self.events = st.st_ino, 0, []
                if st.st_size == self.offset:
                    return
                f.seek(self.offset)
                data = f.read(st.st_size - self.offset)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ExecutorError(f"cannot read {path}: {exc}") from exc
        end = data.rfind(b"\n") + 1  # a line still being appended waits for the next call
        for line in data[:end].splitlines():
            try:
                raw = json.loads(line)
                self.events.append(
                    ObservedEvent(
                        seq=int(raw["seq"]),
                        time=_time(raw.get("time")) or datetime.now(UTC),
                        kind=str(raw.get("kind", "info")),
                        message=str(raw.get("message", "")),
                        replica=raw.get("replica") if isinstance(raw.get("replica"), str) else None,
                        reason=str(raw.get("reason", "")),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # one damaged line must not hide the others
        self.offset += end

    def after(self, cursor: int) -> list[ObservedEvent]:
        return [e for e in self.events if e.seq > cursor]


class LocalExecutor(Executor):
    """Runs replicas as local processes under one supervisor per run.

    ``runs_dir`` holds one directory per run id. ``python_executable`` starts the supervisors.
    The keyword arguments are written into each ``launch.json`` (see ``RunsSettings``):
    ``max_line_bytes`` (longer log lines are split with a visible marker), ``log_quota_bytes``
    (each replica's log stops growing there, with a marker line and a warning event),
    ``sample_interval`` (memory limit checks), ``restart_backoff_seconds`` (first OnFailure
    back-off, doubling), ``resource_interval`` (seconds between two resource samples of a
    replica, written to ``resources.jsonl``).
    ``start_grace_seconds`` is how long a launched run may go without a live supervisor
    before it is reported ``lost``.
    """

    name = "local"

    def __init__(
        self,
        runs_dir: Path,
        python_executable: str = sys.executable,
        *,
        max_line_bytes: int = 1 << 20,
        log_quota_bytes: int = 1 << 30,
        sample_interval: float = 0.5,
        restart_backoff_seconds: float = 1.0,
        start_grace_seconds: float = 10.0,
        resource_interval: float = 5.0,
    ) -> None:
        self.runs_dir = Path(runs_dir)
        self.python_executable = python_executable
        self.max_line_bytes = max_line_bytes
        self.log_quota_bytes = log_quota_bytes
        self.sample_interval = sample_interval
        self.restart_backoff_seconds = restart_backoff_seconds
        self.start_grace_seconds = start_grace_seconds
        self.resource_interval = resource_interval
        self._lock = threading.Lock()
        self._damaged_resources: set[int] = set()  # runs whose damaged samples were logged
        self._spawned: dict[int, subprocess.Popen[bytes]] = {}
        self._events: dict[int, _EventCache] = {}

    def run_dir(self, run_id: int) -> Path:
        """The directory of run ``run_id``."""
        if not isinstance(run_id, int) or isinstance(run_id, bool) or run_id < 0:
            raise ValueError(f"run id {run_id!r} must be a non-negative integer")
        return self.runs_dir / str(run_id)

    # ---- launch --------------------------------------------------------------------------

    def check(self, spec: TaskSpec) -> None:
        """Everything :func:`build_launch_request` would refuse, refused now (see
        :func:`trainyard.executors.env.check_launchable`)."""
        check_launchable(spec)

    def launch(self, request: LaunchRequest) -> None:
        run_dir = self.run_dir(request.run_id)
        launch_file = run_dir / "launch.json"
        try:
            self._launch(request, run_dir, launch_file)
        except OSError as exc:
            raise ExecutorError(
                f"cannot start the supervisor of run '{request.run_ref}': {exc}"
            ) from exc

    def _launch(self, request: LaunchRequest, run_dir: Path, launch_file: Path) -> None:
        with self._lock:
            self._collect_exited()
            if launch_file.exists() and (
                self._supervisor_alive(request.run_id) or (run_dir / "state.json").exists()
            ):
                return  # launched before (maybe by a server that crashed): never twice
            payload = dataclasses.asdict(request)
            payload.update(
                version=1,
                max_line_bytes=self.max_line_bytes,
                log_quota_bytes=self.log_quota_bytes,
                sample_interval=self.sample_interval,
                restart_backoff_seconds=self.restart_backoff_seconds,
                resource_interval=self.resource_interval,
            )
            (run_dir / "logs").mkdir(parents=True, exist_ok=True)
            _write_json_atomic(launch_file, payload)
            with (run_dir / "supervisor.log").open("ab") as log:
                self._spawned[request.run_id] = subprocess.Popen(
                    # -P: the run directory (the cwd) must not shadow any module.
                    [self.python_executable, "-P", "-m", "trainyard.runtime", str(run_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=run_dir,
                    start_new_session=True,
                    close_fds=True,
                )

    def _collect_exited(self) -> None:
        """Reap supervisors this process started that have ended (no zombies left)."""
        for run_id, proc in list(self._spawned.items()):
            if proc.poll() is not None:
                del self._spawned[run_id]

    def _supervisor_alive(self, run_id: int) -> bool:
        """Call with ``self._lock`` held. The lock file answers for any supervisor; a child we
        spawned that has not taken it yet is alive too."""
        if lock_is_held(self.run_dir(run_id) / "supervisor.lock"):
            return True
        proc = self._spawned.get(run_id)
        if proc is None:
            return False
        if proc.poll() is None:
            return True
        del self._spawned[run_id]  # reaped: no zombie left behind
        return False

    # ---- observe -------------------------------------------------------------------------

    def observe(self, run_id: int, cursor: int = 0) -> RunObservation | None:
        run_dir = self.run_dir(run_id)
        try:
            return self._observe(run_id, run_dir, cursor)
        except OSError as exc:
            raise ExecutorError(f"cannot observe run {run_id} in {run_dir}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise ExecutorError(
                f"cannot observe run {run_id}: {run_dir / 'state.json'} is damaged ({exc})"
            ) from exc

    def _observe(self, run_id: int, run_dir: Path, cursor: int) -> RunObservation | None:
        state_file = run_dir / "state.json"
        state = _read_json(state_file)
        if state is None:
            try:
                launched_at = (run_dir / "launch.json").stat().st_mtime
            except FileNotFoundError:
                return None
            if self._alive_now(run_id) or time.time() - launched_at <= self.start_grace_seconds:
                return self._pending(run_id, "starting", "", cursor)
            state = _read_json(state_file)  # it may have appeared between our looks
            if state is None:
                reason = "supervisor lost: it never started (see supervisor.log)"
                return self._pending(run_id, "lost", reason, cursor)
        phase, reason = self._phase(state)
        if phase not in _TERMINAL and not self._alive_now(run_id):
            # It may have written its final state and exited between our two looks.
            state = _read_json(state_file) or state
            phase, reason = self._phase(state)
            if phase not in _TERMINAL:
                phase, reason = "lost", "supervisor lost"
        replicas = [_replica_observation(r) for r in state.get("replicas") or [] if r]
        events = self._events_after(run_id, cursor, final=phase in _TERMINAL)
        return RunObservation(
            phase=phase,
            reason=reason,
            replicas=replicas,
            events=events,
            cursor=events[-1].seq if events else cursor,
        )

    def _alive_now(self, run_id: int) -> bool:
        with self._lock:
            return self._supervisor_alive(run_id)

    @staticmethod
    def _phase(state: dict[str, Any]) -> tuple[Phase, str]:
        phase = state.get("phase")
        reason = str(state.get("reason", ""))
        if phase not in _PHASES:
            return "error", f"unreadable supervisor state (phase {phase!r})"
        return phase, reason  # type: ignore[return-value]

    def _pending(self, run_id: int, phase: Phase, reason: str, cursor: int) -> RunObservation:
        """Before the supervisor's first state: the replicas as launched, all pending."""
        launch = _read_json(self.run_dir(run_id) / "launch.json") or {}
        replicas = [
            ReplicaObservation(
                name=str(r.get("name", "")),
                resource=str(r.get("resource", "")),
                index=int(r.get("index", 0)),
                address=str(r.get("address", "")),
                status="pending",
            )
            for r in launch.get("replicas") or []
            if isinstance(r, dict)
        ]
        return RunObservation(
            phase=phase, reason=reason, replicas=replicas, events=[], cursor=cursor
        )

    def _events_after(self, run_id: int, cursor: int, *, final: bool) -> list[ObservedEvent]:
        with self._lock:
            cache = self._events.setdefault(run_id, _EventCache())
            cache.refresh(self.run_dir(run_id) / "events.jsonl")
            if final:
                # The run is over: free the cache; a later call simply re-reads the file.
                del self._events[run_id]
            return cache.after(cursor)

    # ---- stop and reap -------------------------------------------------------------------

    def stop(self, run_id: int, grace_seconds: float) -> None:
        run_dir = self.run_dir(run_id)
        try:
            self._stop(run_id, run_dir, grace_seconds)
        except OSError as exc:
            raise ExecutorError(f"cannot request the stop of run {run_id}: {exc}") from exc

    def _stop(self, run_id: int, run_dir: Path, grace_seconds: float) -> None:
        if not (run_dir / "launch.json").exists():
            return
        state = _read_json(run_dir / "state.json")
        if state is not None and state.get("phase") in _TERMINAL:
            return
        # The file is the durable request (seen even by a supervisor still starting); the
        # signal makes it immediate.
        _write_json_atomic(run_dir / "stop", {"grace_seconds": max(0.0, grace_seconds)})
        # Without a state file the supervisor has not installed its signal handlers yet (a
        # SIGTERM would kill it, and the run would look lost): the stop file is enough, it is
        # read before any replica starts.
        if state is not None and same_process(
            state.get("supervisor_pid"), state.get("supervisor_start_ticks")
        ):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(state["supervisor_pid"]), signal.SIGTERM)

    def reap(self, run_id: int) -> None:
        run_dir = self.run_dir(run_id)
        # An unreadable state (not a missing one) must not pass for "nothing to kill".
        state = _read_json(run_dir / "state.json") or {}
        with self._lock:
            proc = self._spawned.get(run_id)
            if proc is not None and proc.poll() is None:
                proc.kill()  # a supervisor that never wrote its state
        try:
            kill_run_processes(run_id, state)
        except OSError as exc:
            raise ExecutorError(f"cannot reap run {run_id}: {exc}") from exc
        with self._lock:
            self._collect_exited()

    # ---- logs ----------------------------------------------------------------------------

    def read_logs(
        self, run_id: int, replica: str, offset: int = 0, max_bytes: int = 1 << 20
    ) -> LogChunk:
        if not is_replica_name(replica):
            return LogChunk(lines=[], next_offset=max(0, offset), size=0)
        path = self.run_dir(run_id) / "logs" / f"{replica}.log"
        return read_log_chunk(path, replica, offset, max_bytes)

    def read_logs_before(self, run_id: int, replica: str, before: int, max_lines: int) -> LogChunk:
        if not is_replica_name(replica):
            return LogChunk(lines=[], next_offset=0, size=0)
        path = self.run_dir(run_id) / "logs" / f"{replica}.log"
        return read_log_lines_before(path, replica, before, max_lines)

    def read_resources(self, run_id: int, offset: int = 0) -> ResourceChunk:
        """Samples from ``resources.jsonl`` (written by the supervisor), whole lines only,
        about 256 KiB per call. Damaged lines are skipped, and logged once per run."""
        path = self.run_dir(run_id) / "resources.jsonl"
        try:
            chunk = read_resource_chunk(path, offset)
        except OSError as exc:
            raise ExecutorError(
                f"cannot read the resource samples of run {run_id} in {path}: {exc}"
            ) from exc
        if chunk.skipped:
            with self._lock:
                first = run_id not in self._damaged_resources
                self._damaged_resources.add(run_id)
            if first:
                log.warning(
                    "run %s: skipped %d damaged line(s) of %s (bytes %d-%d); further damaged "
                    "lines of this run are skipped silently",
                    run_id,
                    chunk.skipped,
                    path,
                    offset,
                    chunk.next_offset,
                )
        return chunk

    def log_replicas(self, run_id: int) -> list[str]:
        run_dir = self.run_dir(run_id)
        logs = run_dir / "logs"
        launch = _read_json(run_dir / "launch.json") or {}
        names = [str(r.get("name")) for r in launch.get("replicas") or [] if isinstance(r, dict)]
        try:
            present = [n for n in names if is_replica_name(n) and (logs / f"{n}.log").exists()]
            if present or names:
                return present
            files = [p.name for p in logs.iterdir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ExecutorError(f"cannot list the logs of run {run_id} in {logs}: {exc}") from exc
        stems = (f.removesuffix(".log") for f in files if f.endswith(".log"))
        return sorted(s for s in stems if is_replica_name(s))

    def close(self) -> None:
        """Runs keep running; only the bookkeeping of finished supervisors is released."""
        with self._lock:
            self._collect_exited()
