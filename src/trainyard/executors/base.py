"""The executor interface: how the server launches, observes, stops and adopts runs.

The services know only this interface; the local backend (a detached supervisor process per
run), and later Ray and Kubernetes, implement it. No method is called inside a database
transaction, and none may assume it is the only server process alive.

Identity: a run is known to an executor by ``run_id`` (the database id). Everything an
executor needs to observe a run again after a server restart is derivable from ``run_id``
and the executor's own settings; the server stores nothing executor-specific.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from trainyard.core.errors import TrainyardError
from trainyard.core.models import TaskSpec

__all__ = [
    "Executor",
    "ExecutorError",
    "LaunchRequest",
    "LogChunk",
    "LogLine",
    "ObservedEvent",
    "Phase",
    "ReplicaLaunch",
    "ReplicaObservation",
    "ResourceChunk",
    "ResourceSample",
    "RunObservation",
]


class ExecutorError(TrainyardError):
    """The backend failed to do what was asked (not the user's fault). ``reason`` is shown."""


Phase = Literal["starting", "running", "complete", "error", "stopped", "lost"]


@dataclass(frozen=True)
class ReplicaLaunch:
    """One replica, fully resolved: the supervisor only executes this."""

    name: str  # "worker-1"
    resource: str  # "worker"
    index: int  # REPLICA_INDEX
    address: str  # the replica's own address (locally a distinct 127.x.y.z)
    command: str  # shell string, placeholders already filled
    work_dir: str  # absolute path
    env: dict[str, str]  # the complete replica environment contract, plus the user's env
    memory_limit_bytes: int | None = None
    restart_policy: str = "Never"  # "Never" | "OnFailure"
    backoff_limit: int = 3
    daemon: bool = False  # stopped once all non-daemon replicas have finished
    gpus: list[str] = field(default_factory=list)
    # What a container or actor backend needs and the local backend does not use: the image
    # for this replica (the resource's gpu image when it requests GPUs, else its cpu image),
    # the requests and limits (millicores, bytes, GPUs), /dev/shm size and GPU product.
    image: str | None = None
    cpu_request_millis: int | None = None
    cpu_limit_millis: int | None = None
    memory_request_bytes: int | None = None
    gpu_count: int = 0
    shm_size_bytes: int | None = None
    gpu_product: str | None = None


@dataclass(frozen=True)
class LaunchRequest:
    run_id: int
    run_ref: str  # "project/task#N", for messages
    replicas: list[ReplicaLaunch]
    code_dir: str  # absolute path of the extracted code snapshot
    stop_grace_seconds: float = 10.0


@dataclass(frozen=True)
class ReplicaObservation:
    name: str
    resource: str
    index: int
    address: str
    status: str  # ReplicaStatus value
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    restarts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class ObservedEvent:
    """Something the backend saw happen, in order; ``seq`` increases by one per event."""

    seq: int
    time: datetime
    kind: str  # "replica" | "info" | "warning" | "phase"
    message: str
    replica: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class RunObservation:
    """A snapshot of a run as the backend sees it.

    ``phase`` is the backend's verdict: ``lost`` means the run's supervision is gone while the
    run was not finished (the server turns it into ``error`` "supervisor lost").
    ``events`` are those with ``seq > cursor`` passed to :meth:`Executor.observe`;
    ``cursor`` is the seq of the last event returned (pass it back next time).
    """

    phase: Phase
    reason: str
    replicas: list[ReplicaObservation]
    events: list[ObservedEvent]
    cursor: int


@dataclass(frozen=True)
class LogLine:
    time: datetime | None  # UTC; None if the line carried no timestamp
    replica: str
    text: str  # decoded with replacement characters; never raises on bad bytes
    offset: int  # byte offset of this line in the replica's log
    end: int = 0  # byte offset just after this line


@dataclass(frozen=True)
class LogChunk:
    lines: list[LogLine]
    next_offset: int  # pass back as ``offset`` to continue
    size: int  # bytes in the replica's log now


@dataclass(frozen=True)
class ResourceSample:
    """One resource sample of one replica (its whole process tree and its GPUs).

    ``seq`` numbers the replica's samples 0, 1, 2… over the whole run (restarts included);
    ``time`` is epoch seconds. ``values`` maps a metric name to its value: ``cpu_percent``
    (% of one CPU, over 100 for a tree using several), ``memory_mb`` (resident memory of the
    tree, MiB) and, per GPU of the replica, ``gpu/<i>/utilization_percent``,
    ``gpu/<i>/memory_mb``, ``gpu/<i>/power_w``, ``gpu/<i>/temperature_c`` where ``i`` is
    the GPU's position in the replica's ``CUDA_VISIBLE_DEVICES``; a reading the GPU does not
    support, or a GPU that cannot be read (simulated, no NVML), is absent, never 0.
    """

    replica: str
    seq: int
    time: float
    values: dict[str, float]


@dataclass(frozen=True)
class ResourceChunk:
    """Samples read from ``offset`` up to ``next_offset`` (pass it back to continue);
    ``skipped``: damaged records in that range, left out."""

    samples: list[ResourceSample]
    next_offset: int
    skipped: int = 0


class Executor(ABC):
    """A backend that runs replicas. Implementations are thread-safe.

    Every method states whether it blocks, whether it is idempotent and what it raises.
    :class:`ExecutorError` always means "the backend could not do or see this" (I/O error,
    permissions, a damaged file, a process that cannot be started); its message names the run
    and the cause. Nothing else is raised on purpose, except ``ValueError`` for a ``run_id``
    that is not a non-negative integer (a caller's bug). None of the methods is ever the
    user's fault, so none raises a ``UserError``.

    **Adoption after a restart.** There is no ``adopt()``: runs do not belong to a server
    process. A server that starts (after a crash, or beside another one) adopts a run simply
    by calling :meth:`observe` with the run's id and the ``cursor`` it stored last (0 if it
    never observed the run): it gets the current phase and replicas and exactly the events it
    has not recorded yet, however long it was away, then keeps observing, stopping and reading
    logs as if it had launched the run itself. A run whose ``launch`` may have been cut short
    is launched again (``launch`` is idempotent). When ``observe`` says ``lost`` (supervision
    died with the run unfinished) the server calls :meth:`reap` to kill whatever is left and
    records the run as ``error``; ``observe`` returning None for a run the server believes
    launched means the launch never became durable.
    """

    name: str = "abstract"

    @abstractmethod
    def launch(self, request: LaunchRequest) -> None:
        """Start the run. Returns once the launch is durable, without waiting for replicas.

        Blocking: briefly (writes a few files and spawns; well under a second), never waits
        for the replicas to start. Idempotent per ``run_id``: if a launch of this run already
        exists (even from a server that crashed before recording it) nothing new is started.

        Raises:
            ExecutorError: when the backend cannot start the run (its files cannot be written,
                the supervisor cannot be spawned); the server turns that into ``error`` with
                the reason.
        """

    @abstractmethod
    def observe(self, run_id: int, cursor: int = 0) -> RunObservation | None:
        """The run's current state and its events after ``cursor``.

        Blocking: no; it reads the backend's current view and never waits on the run. Cheap
        enough to be called for every active run many times a second. Idempotent: it only
        reads; the same ``cursor`` gives the same events (plus any newer ones). This is also
        how a restarted server adopts a run (see the class docstring).

        Returns None if this backend knows nothing of ``run_id`` (never launched here).

        Raises:
            ExecutorError: when the run's state cannot be read (I/O error, permissions, a
                state that is damaged beyond use). An absent run is None, not an error.
        """

    @abstractmethod
    def stop(self, run_id: int, grace_seconds: float) -> None:
        """Ask the run to stop: SIGTERM to every replica's process tree, SIGKILL after grace.

        Blocking: no; it records the request and signals, then returns. The run reaches
        phase ``stopped`` (observed through :meth:`observe`) once everything is gone.
        Idempotent: stopping twice is stopping once; stopping a finished or unknown run does
        nothing.

        Raises:
            ExecutorError: when the stop request cannot be recorded or delivered (the run's
                files cannot be written or read, the supervisor cannot be signalled).
        """

    @abstractmethod
    def reap(self, run_id: int) -> None:
        """Kill whatever is left of a run whose supervision was lost (phase ``lost``).

        Blocking: briefly, up to about a second, while the killed processes exit.
        Idempotent: reaping a run with nothing left, a finished run or an unknown run does
        nothing.

        Raises:
            ExecutorError: when the run's state cannot be read (so what to kill is unknown)
                or the processes cannot be listed.
        """

    @abstractmethod
    def read_logs(
        self, run_id: int, replica: str, offset: int = 0, max_bytes: int = 1 << 20
    ) -> LogChunk:
        """Whole lines of ``replica``'s log from byte ``offset``, at most about ``max_bytes``.

        Blocking: no. Idempotent: it only reads; the same ``offset`` gives the same lines
        (plus any written since). A partial last line (still being written) is not returned.
        An unknown run or replica gives an empty chunk.

        Raises:
            ExecutorError: only on an I/O failure reading the log.
        """

    def read_logs_before(self, run_id: int, replica: str, before: int, max_lines: int) -> LogChunk:
        """Up to ``max_lines`` whole lines of ``replica``'s log ending at byte ``before``.

        For paging back through a long log: the log is read backwards from ``before`` and
        never whole. The lines are in file order; ``next_offset`` is the offset of the first
        one, to pass back as ``before`` for the lines before it (0: the start was reached).
        A ``before`` inside a line or past the end moves back to the start of that line, so a
        partial last line is never returned. An unknown run or replica gives an empty chunk
        with ``next_offset`` 0.

        Blocking: no. Idempotent: it only reads.

        Raises:
            NotImplementedError: this backend cannot read backwards (the default).
            ExecutorError: only on an I/O failure reading the log.
        """
        raise NotImplementedError(f"the {self.name} executor cannot read logs backwards")

    @abstractmethod
    def log_replicas(self, run_id: int) -> list[str]:
        """Names of the replicas that have a log, in launch order.

        Blocking: no. Idempotent: it only reads. An unknown run gives ``[]``.

        Raises:
            ExecutorError: when the run's files cannot be read or listed (I/O error,
                permissions).
        """

    def read_resources(self, run_id: int, offset: int = 0) -> ResourceChunk:
        """The run's resource samples recorded after position ``offset`` (0: from the first).

        Returns a bounded amount per call; call again with ``next_offset`` until a chunk comes
        back with ``next_offset == offset``. A sample still being written is not returned
        (nor skipped): it comes whole in a later call. Damaged records are skipped and
        counted. An unknown run, or a backend that samples nothing (the default), gives an
        empty chunk with ``next_offset == offset``.

        Blocking: no. Idempotent: it only reads; the same ``offset`` gives the same samples.

        Raises:
            ExecutorError: only on an I/O failure reading the samples.
        """
        return ResourceChunk(samples=[], next_offset=offset)

    def check(self, spec: TaskSpec) -> None:  # noqa: B027 - optional hook
        """Refuse, before a run is created, a resolved task this backend could never launch.

        Blocking: briefly (no process is started). Idempotent, no side effects. Raises
        :class:`~trainyard.core.errors.InvalidInputError` naming the resource and the fix.
        The default accepts everything.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's resources. Runs keep running.

        Blocking: no. Idempotent. Raises nothing.
        """
