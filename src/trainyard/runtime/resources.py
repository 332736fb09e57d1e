"""Resource samples of a run's replicas: CPU, memory and GPUs, appended to ``resources.jsonl``.

Every ``interval`` seconds (the first time about a second after a replica starts, so short
runs get a sample too) each running replica is sampled as a whole process tree:

- its processes are those of its session (the replica's shell leads one), plus their
  descendants that started sessions of their own; all found in ONE pass over ``/proc`` for
  every replica due, ~15 µs per process on the machine, instead of a psutil ``children()``
  walk per replica (each of which lists every process again). The session also keeps
  processes that the replica orphaned (re-parented to the supervisor, a subreaper), which a
  walk down from the replica's shell would lose;
- ``cpu_percent`` is the CPU time (user + system) the tree used since the previous sample,
  over the wall time since then, in % of ONE CPU (a tree busy on 4 CPUs shows 400, as
  ``top`` does). The previous CPU time of each process is kept, by pid and start time, so a
  process that appears between two samples counts from its start and a reused pid is never
  mistaken for the old process; the CPU time of a process that ends between two samples is
  not counted;
- ``memory_mb`` is the resident memory of the tree (the sum of its processes' RSS, as the
  memory limit counts it), in MiB;
- for each real GPU of the replica (its UUIDs come in ``launch.json``), NVML's utilisation,
  memory, power and temperature, keyed by the GPU's position in ``CUDA_VISIBLE_DEVICES``.
  NVML is loaded only if some replica has a real GPU. Simulated GPUs are never measured.

One compact JSON line per replica sample, written with one ``write`` on an ``O_APPEND`` file
(readers see whole lines or a line still being written, which they leave for later):

    {"replica":"worker-0","seq":0,"time":1763770000.123,"values":{"cpu_percent":98.5,
     "memory_mb":812.4,"gpu/0/utilization_percent":97.0,"gpu/0/memory_mb":14215.0}}

``seq`` counts the replica's samples 0, 1, 2… over the run, restarts included. Not fsync'd:
a power loss may lose the last seconds of samples, never the run.

Stdlib only (``import trainyard`` must stay light here); ``gpustats`` loads ``pynvml``
lazily.
"""

from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from trainyard.runtime.gpustats import GpuReader

__all__ = ["FIRST_SAMPLE_DELAY", "SIMULATED_GPU_PREFIX", "ResourceSampler", "scan_processes"]

# Simulated GPUs (scheduling without hardware) have UUIDs of this form; no NVML knows them.
SIMULATED_GPU_PREFIX = "GPU-sim-"
FIRST_SAMPLE_DELAY = 1.0
_MIB = 1 << 20
_GPU_FIELDS = ("utilization_percent", "memory_mb", "power_w", "temperature_c")


class _Proc:
    """One process as ``/proc/<pid>/stat`` describes it."""

    __slots__ = ("cpu_ticks", "pid", "ppid", "rss_pages", "session", "start", "zombie")

    def __init__(
        self,
        pid: int,
        ppid: int,
        session: int,
        cpu_ticks: int,
        start: int,
        rss_pages: int,
        zombie: bool,
    ) -> None:
        self.pid = pid
        self.ppid = ppid
        self.session = session
        self.cpu_ticks = cpu_ticks
        self.start = start
        self.rss_pages = rss_pages
        self.zombie = zombie


def scan_processes(proc_root: str = "/proc") -> list[_Proc]:
    """Every process of the machine, read from ``proc_root``. Processes that end while they
    are read are left out (their files vanish: that is not an error)."""
    out: list[_Proc] = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"{proc_root}/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # gone since the listing, or not ours to read
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            continue
        finally:
            os.close(fd)
        # Fields after the command name, which is in parentheses and may hold anything.
        try:
            f = data[data.rindex(b")") + 2 :].split()
            out.append(
                _Proc(
                    pid=int(name),
                    ppid=int(f[1]),
                    session=int(f[3]),
                    cpu_ticks=int(f[11]) + int(f[12]),
                    start=int(f[19]),
                    rss_pages=int(f[21]),
                    zombie=f[0] in (b"Z", b"X"),
                )
            )
        except (ValueError, IndexError):  # an empty read (it ended) or a damaged line
            continue
    return out


class _Replica:
    """What the sampler keeps about one running replica."""

    __slots__ = ("cpu", "due", "gpus", "last_at", "name", "pid")

    def __init__(self, name: str, pid: int, gpus: list[tuple[int, str]], now: float) -> None:
        self.name = name
        self.pid = pid
        self.gpus = gpus  # (position in CUDA_VISIBLE_DEVICES, UUID) of its real GPUs
        self.due = now
        self.last_at = now  # monotonic time of the last sample (or of the start)
        self.cpu: dict[tuple[int, int], int] = {}  # (pid, start) -> CPU ticks then


class ResourceSampler:
    """Samples the replicas given to :meth:`add` into ``path``.

    The supervisor's loop calls :meth:`sample` when :meth:`next_due` has come. ``on_warning``
    gets one message per problem (NVML unavailable, a GPU NVML does not know, the file
    cannot be written), once each. ``proc_root``, ``reader_factory`` and ``clock`` are for
    tests: a fake ``/proc``, a fake NVML reader, a fixed wall clock.
    """

    def __init__(
        self,
        path: str,
        interval: float,
        on_warning: Callable[[str], None],
        *,
        proc_root: str = "/proc",
        reader_factory: Callable[[], GpuReader] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.interval = interval
        self.on_warning = on_warning
        self.proc_root = proc_root
        self._reader_factory = reader_factory
        self._clock = clock
        self._replicas: dict[str, _Replica] = {}
        self._seq: dict[str, int] = {}  # next sample number of each replica, over restarts
        self._reader: GpuReader | None = None
        self._gpus_off = False
        self._warned: set[str] = set()
        self._fd: int | None = None
        self._torn = False  # the last write stopped inside a line
        self._tick = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        # Replicas due within this much of each other are sampled in one pass over /proc.
        self._slack = min(0.5, interval / 10)

    # ---- replicas ------------------------------------------------------------------------

    def add(self, name: str, pid: int, gpus: list[str], now: float) -> None:
        """Replica ``name`` has started as ``pid`` (monotonic time ``now``) with the GPUs
        ``gpus`` (UUIDs, in CUDA_VISIBLE_DEVICES order). A restart starts afresh, its sample
        numbers going on from where they were."""
        real = [
            (i, uuid) for i, uuid in enumerate(gpus) if not uuid.startswith(SIMULATED_GPU_PREFIX)
        ]
        replica = _Replica(name, pid, real, now)
        replica.due = now + min(FIRST_SAMPLE_DELAY, self.interval)
        self._replicas[name] = replica
        self._seq.setdefault(name, 0)

    def remove(self, name: str) -> None:
        """Replica ``name``'s process has ended (reaped): no more samples of it."""
        self._replicas.pop(name, None)

    def next_due(self) -> float | None:
        """Monotonic time of the next sample due, None while no replica runs."""
        if not self._replicas:
            return None
        return min(r.due for r in self._replicas.values())

    # ---- sampling ------------------------------------------------------------------------

    def sample(self, now: float) -> int:
        """Sample every replica due at monotonic time ``now``; the number of samples written."""
        due = [r for r in self._replicas.values() if r.due <= now + self._slack]
        if not due:
            return 0
        procs = scan_processes(self.proc_root)
        by_session: dict[int, list[_Proc]] = {}
        children: dict[int, list[_Proc]] = {}
        for p in procs:
            by_session.setdefault(p.session, []).append(p)
            children.setdefault(p.ppid, []).append(p)
        gpu_samples = self._gpu_samples(due)
        wall = self._clock()
        lines: list[bytes] = []
        for r in due:
            r.due += self.interval
            if r.due <= now:  # the loop was held up: go on from now, without a burst
                r.due = now + self.interval
            tree = self._tree(r.pid, by_session, children)
            live = [p for p in tree if not p.zombie]
            if not live:
                continue  # the replica is ending: nothing left to measure
            values = self._measure(r, tree, now)
            for position, uuid in r.gpus:
                sample = gpu_samples.get(uuid)
                if sample is None:
                    continue
                for field in _GPU_FIELDS:
                    if field in sample:
                        values[f"gpu/{position}/{field}"] = round(float(sample[field]), 2)
            record = {
                "replica": r.name,
                "seq": self._seq[r.name],
                "time": round(wall, 3),
                "values": values,
            }
            self._seq[r.name] += 1
            lines.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        if lines:
            self._write(b"".join(lines))
        return len(lines)

    @staticmethod
    def _tree(
        root: int, by_session: dict[int, list[_Proc]], children: dict[int, list[_Proc]]
    ) -> list[_Proc]:
        """The replica's processes: its session, and descendants that left it."""
        found = {p.pid: p for p in by_session.get(root, [])}
        stack = list(found.values())
        while stack:
            for child in children.get(stack.pop().pid, []):
                if child.pid not in found:
                    found[child.pid] = child
                    stack.append(child)
        return list(found.values())

    def _measure(self, r: _Replica, tree: list[_Proc], now: float) -> dict[str, Any]:
        used = 0
        cpu: dict[tuple[int, int], int] = {}
        for p in tree:
            key = (p.pid, p.start)
            cpu[key] = p.cpu_ticks
            # A process not seen at the previous sample started since: all its time counts.
            used += p.cpu_ticks - r.cpu.get(key, 0)
        elapsed = now - r.last_at
        r.cpu, r.last_at = cpu, now
        values: dict[str, Any] = {}
        if elapsed > 0:
            values["cpu_percent"] = round(max(0, used) / self._tick / elapsed * 100.0, 2)
        rss = sum(p.rss_pages for p in tree) * self._page
        values["memory_mb"] = round(rss / _MIB, 2)
        return values

    def _gpu_samples(self, due: list[_Replica]) -> dict[str, dict[str, Any]]:
        """NVML's readings of the real GPUs of the replicas due, by UUID."""
        wanted = [uuid for r in due for _, uuid in r.gpus]
        if not wanted or self._gpus_off:
            return {}
        if self._reader is None:
            if self._reader_factory is not None:
                self._reader = self._reader_factory()
            else:
                from trainyard.runtime.gpustats import GpuReader

                self._reader = GpuReader()
        samples = self._reader.sample(wanted)
        if not samples and self._reader.error:
            self._gpus_off = True
            self._warn(
                "nvml",
                f"GPU metrics are unavailable: {self._reader.error}; resource metrics of this "
                "run have CPU and memory only",
            )
            return {}
        found = {s["uuid"]: s for s in samples}
        for r in due:
            for position, uuid in r.gpus:
                if uuid not in found:
                    self._warn(
                        f"gpu {uuid}",
                        f"GPU {uuid} (GPU {position} of {r.name}) is not visible to NVML: "
                        "no metrics for it",
                    )
        return found

    # ---- output --------------------------------------------------------------------------

    def _warn(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            self.on_warning(message)

    def _write(self, data: bytes) -> None:
        if self._torn:
            data = b"\n" + data  # end the torn line: readers skip it as damaged
        view = memoryview(data)
        written = 0
        try:
            if self._fd is None:
                self._fd = os.open(
                    self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
            while written < len(data):
                written += os.write(self._fd, view[written:])
            self._torn = False
        except OSError as exc:
            # Disk full or gone: these samples are lost, the run goes on. A line cut short
            # is ended by the next write.
            self._torn = self._torn if written == 0 else True
            self._warn(
                "write",
                f"cannot write resource samples to {self.path}: {exc.strerror or exc}; "
                "resource metrics of this run are incomplete",
            )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
