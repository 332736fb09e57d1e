"""Node resource metrics: the server samples its own node (CPU, memory, every real GPU) and
answers windowed, averaged queries for any node.

:class:`NodeSampler` is a background thread of the server (started by the app next to the
launcher and the reconciler). Every ``metrics.node_interval`` seconds it takes one sample —
the node's CPU use since the previous one (% of all CPUs), the memory in use (MiB) and, for
each real GPU of this node in the scheduling tables, what NVML reports for it — and stores it
at the time rounded down to a multiple of the interval. Passes are aligned on those multiples
too, so two servers on one machine write the same rows, and the first one's stays
(``ON CONFLICT DO NOTHING``). Samples older than ``metrics.node_retention_hours`` are deleted
at most once an hour. A database error is logged (at most once a minute) and the next pass
tries again: the thread only ends with the server.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import psutil

from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.metrics import (
    NODE_MAX_INTERVAL,
    NODE_MAX_WINDOW,
    NODE_MIN_WINDOW,
    NodeMetricGpu,
    NodeMetrics,
    NodeMetricSeries,
    auto_node_interval,
)
from trainyard.runtime.gpustats import GPU_FIELDS, GpuReader
from trainyard.server.services.context import ServiceContext
from trainyard.server.store import Session
from trainyard.server.store import node_metrics as store
from trainyard.server.store import scheduling as scheduling_store
from trainyard.server.store.tables import NodeRow

__all__ = ["DISCOVERY_OFF", "NodeSampler", "get_node_metrics", "parse_interval"]

log = logging.getLogger(__name__)

DISCOVERY_OFF = "GPU discovery is off (TRAINYARD_NODE__DISCOVER_GPUS=false)"
_UNITS = {"cpu_percent": "%", "memory_mb": "MB", **GPU_FIELDS}
_MIB = 1 << 20
_RETENTION_EVERY = 3600.0
_COMPLAIN_EVERY = 60.0


def _unit(key: str) -> str:
    return _UNITS.get(key.rsplit("/", 1)[-1], "")


def _load_node(session: Session, name: str) -> NodeRow:
    node = scheduling_store.get_node(session, name)
    if node is None:
        known = ", ".join(n.name for n in scheduling_store.list_nodes(session)) or "none"
        raise NotFoundError(
            f"node '{name}' not found (known nodes: {known}); `trainyard node ls` lists them",
            fields={"node": name},
        )
    return node


def parse_interval(text: str | None) -> int | None:
    """The ``interval`` query parameter: None for automatic (absent, empty or ``auto``),
    else whole seconds from 1 to 3600; InvalidInputError (400) otherwise."""
    if text is None or text.strip() in ("", "auto"):
        return None
    try:
        interval = int(text.strip())
    except ValueError:
        interval = 0
    if not 1 <= interval <= NODE_MAX_INTERVAL or str(interval) != text.strip():
        raise InvalidInputError(
            f"interval must be 'auto' or whole seconds from 1 to {NODE_MAX_INTERVAL}, not {text!r}",
            fields={"interval": text},
        )
    return interval


def get_node_metrics(
    ctx: ServiceContext,
    node: str,
    *,
    window: int = 3600,
    interval: int | None = None,
    until: float | None = None,
    gpu_error: str = "",
) -> NodeMetrics:
    """The node's samples over ``window`` seconds ending at ``until`` (now when None),
    averaged per ``interval`` seconds (automatic when None: see
    :func:`~trainyard.core.metrics.auto_node_interval`).

    ``gpu_error`` is why this server cannot read its own node's GPUs; it is reported for
    this server's node only. NotFoundError names the known nodes; InvalidInputError (400)
    names a parameter out of range.
    """
    if not NODE_MIN_WINDOW <= window <= NODE_MAX_WINDOW:
        raise InvalidInputError(
            f"window must be between {NODE_MIN_WINDOW} and {NODE_MAX_WINDOW} seconds "
            f"(a minute to a week), not {window}",
            fields={"window": window},
        )
    if interval is not None and not 1 <= interval <= NODE_MAX_INTERVAL:
        raise InvalidInputError(
            f"interval must be 'auto' or whole seconds from 1 to {NODE_MAX_INTERVAL}, "
            f"not {interval}",
            fields={"interval": interval},
        )
    if until is not None and not math.isfinite(until):
        raise InvalidInputError(
            f"until must be a finite number of epoch seconds, not {until}",
            fields={"until": str(until)},
        )
    end = until if until is not None else time.time()
    since = end - window
    step = interval if interval is not None else auto_node_interval(window)
    with ctx.db.read() as session:
        row = _load_node(session, node)
        means = store.list_bucket_means(session, row.id, since, end, step)
        gpus = scheduling_store.list_gpus(session, node_id=row.id)
    series: dict[str, NodeMetricSeries] = {}
    for key, start, mean in means:
        if key not in series:
            series[key] = NodeMetricSeries(key=key, unit=_unit(key))
        series[key].points.append((start, mean))
    measured = {key.split("/")[1] for key in series if key.startswith("gpu/")}
    return NodeMetrics(
        node=row.name,
        window=window,
        interval=step,
        since=since,
        until=end,
        sample_interval=ctx.settings.metrics.node_interval,
        series=[series[k] for k in sorted(series)],
        gpus=[
            NodeMetricGpu(
                index=g.index,
                uuid=g.uuid,
                product=g.product,
                simulated=g.simulated,
                measured=not g.simulated and str(g.index) in measured,
            )
            for g in sorted(gpus, key=lambda g: g.index)
        ],
        gpu_error=gpu_error if row.name == ctx.node_name else "",
    )


class NodeSampler:
    """Samples this server's node into ``node_samples``; ``start()``/``stop()``.

    ``sample_once()`` is the whole logic and may be called directly (tests). ``gpu_error``
    says why GPUs cannot be read here ("" when they can, or before the first sample).
    """

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        interval: float | None = None,
        reader_factory: Callable[[], GpuReader] = GpuReader,
    ) -> None:
        self.ctx = ctx
        self.interval = interval if interval is not None else ctx.settings.metrics.node_interval
        self.retention_seconds = ctx.settings.metrics.node_retention_hours * 3600.0
        self._reader_factory = reader_factory
        self._reader: GpuReader | None = None
        self._discover = ctx.settings.node.discover_gpus
        self.gpu_error = "" if self._discover else DISCOVERY_OFF
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = -math.inf
        self._complained_at = -math.inf

    def start(self) -> None:
        psutil.cpu_percent(None)  # the first pass measures from here
        self._thread = threading.Thread(
            target=self._loop, name="trainyard-node-sampler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _loop(self) -> None:
        self._ensure_reader()  # gpu_error is known from the start, not from the first sample
        while not self._stopping.is_set():
            # Wake on the next multiple of the interval: every server of the machine samples
            # the same slots, and a slot is never sampled twice by one server.
            now = time.time()
            slot = math.floor(now / self.interval) + 1
            if self._stopping.wait(max(0.0, slot * self.interval - now + 0.01)):
                return
            try:
                self.sample_once()
            except Exception as exc:  # the database is away or refuses: try again next pass
                mono = time.monotonic()
                if mono - self._complained_at >= _COMPLAIN_EVERY:
                    self._complained_at = mono
                    log.warning("node sampler: cannot store a sample of this node: %s", exc)

    def _gpus(self, session: Session, node: NodeRow) -> dict[str, int]:
        """UUID -> node GPU index of this node's real GPUs present at its registration."""
        return {
            g.uuid: g.index
            for g in scheduling_store.list_gpus(session, node_id=node.id)
            if not g.simulated and g.present
        }

    def measure(self, gpus: dict[str, int]) -> dict[str, float]:
        """One sample: CPU % since the previous call, memory used (MiB), ``gpus``' NVML
        readings keyed by their node index."""
        values = {
            "cpu_percent": float(psutil.cpu_percent(None)),
            "memory_mb": psutil.virtual_memory().used / _MIB,
        }
        reader = self._ensure_reader()
        if reader is not None and gpus:
            for sample in reader.sample(list(gpus)):
                index = gpus[sample["uuid"]]
                for field in GPU_FIELDS:
                    if field in sample:
                        values[f"gpu/{index}/{field}"] = float(sample[field])
            self.gpu_error = reader.error
        return values

    def _ensure_reader(self) -> GpuReader | None:
        """The NVML reader, made (and NVML initialised) once; None with discovery off."""
        if not self._discover:
            return None
        if self._reader is None:
            self._reader = self._reader_factory()
            self._reader.uuids()
            self.gpu_error = self._reader.error
        return self._reader

    def sample_once(self, now: float | None = None) -> dict[str, float]:
        """Take one sample of this node and store it; the values stored. Raises what the
        database raises."""
        now = time.time() if now is None else now
        slot = math.floor(now / self.interval) * self.interval
        name = self.ctx.node_name
        with self.ctx.db.read() as session:
            node = scheduling_store.get_node(session, name)
            if node is None:
                return {}
            node_id = node.id
            gpus = self._gpus(session, node)
        values = self.measure(gpus)  # NVML is never called inside a transaction
        with self.ctx.db.write() as session:
            store.insert_samples(session, node_id, slot, sorted(values.items()))
            mono = time.monotonic()
            if mono - self._pruned_at >= _RETENTION_EVERY:
                self._pruned_at = mono
                store.delete_samples_before(session, now - self.retention_seconds)
        return values
