"""Resource metrics in the services (no HTTP), on SQLite and PostgreSQL: history windows by
time and aggregation intervals, storing a run's resource samples exactly once, and node
samples (the sampler, windows, automatic intervals, GPUs, retention)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from server_support import manifest, wait_for
from sqlalchemy import select, text, update

from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.status import RunStatus
from trainyard.executors.base import ResourceSample
from trainyard.executors.nvml import DiscoveredGpu
from trainyard.runtime.gpustats import GpuReader
from trainyard.runtime.resources import SIMULATED_GPU_PREFIX
from trainyard.server.scheduler.queue import claim_next
from trainyard.server.services import metrics as service
from trainyard.server.services import runs as runs_service
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.launches import launch_run
from trainyard.server.services.node_metrics import (
    DISCOVERY_OFF,
    NodeSampler,
    get_node_metrics,
    parse_interval,
)
from trainyard.server.services.reconciler import Reconciler
from trainyard.server.services.scheduling import register_node, simulate_gpus
from trainyard.server.store import runs as runs_store
from trainyard.server.store.tables import MetricChunkRow, MetricSeriesRow, NodeSampleRow

T0 = 1_800_000_000.0  # a multiple of every interval used below


def _external_run(ctx: ServiceContext, name: str = "notebook") -> int:
    return runs_service.create_external_run(ctx, "default", name).id


# ---- history by time window and interval ---------------------------------------------------


def _log_series(ctx: ServiceContext, run_id: int, n: int = 3000) -> None:
    """``x``: step i at time T0 + i (one point a second), value i."""
    rows = [("x", float(i), i, T0 + i) for i in range(n)]
    for start in range(0, n, 1000):
        service.log_rows(ctx, run_id, rows[start : start + 1000])


def test_time_window_keeps_points_inside_it_inclusive(ctx: ServiceContext) -> None:
    run_id = _external_run(ctx)
    _log_series(ctx, run_id)
    got = service.get_history(ctx, run_id, "x", min_time=T0 + 10, max_time=T0 + 20)
    assert [p[0] for p in got.points] == list(range(10, 21))
    assert (got.total, got.downsampled, got.interval) == (11, False, None)
    # Combined with a step window: both apply.
    both = service.get_history(ctx, run_id, "x", min_time=T0 + 10, max_step=15)
    assert [p[0] for p in both.points] == list(range(10, 16))
    # Only a lower or only an upper bound.
    assert service.get_history(ctx, run_id, "x", min_time=T0 + 2998).total == 2
    assert service.get_history(ctx, run_id, "x", max_time=T0 + 1).total == 2


def test_interval_aggregates_into_aligned_buckets(ctx: ServiceContext) -> None:
    run_id = _external_run(ctx)
    _log_series(ctx, run_id)
    got = service.get_history(ctx, run_id, "x", min_time=T0 + 55, max_time=T0 + 185, interval=60)
    # Buckets [T0, T0+60), [T0+60, …), [T0+120, …), [T0+180, …): the first and last partly.
    assert got.points == [
        (59, T0, sum(range(55, 60)) / 5),
        (119, T0 + 60, sum(range(60, 120)) / 60),
        (179, T0 + 120, sum(range(120, 180)) / 60),
        (185, T0 + 180, sum(range(180, 186)) / 6),
    ]
    assert (got.total, got.downsampled, got.interval) == (131, True, 60)
    # max_points still applies to what aggregation leaves: 3000 s in 10 s buckets is 300
    # points, downsampled to at most 50 (min/max buckets keep the first and last).
    small = service.get_history(ctx, run_id, "x", interval=10, max_points=50)
    assert len(small.points) <= 50 and small.interval == 10 and small.total == 3000
    assert small.points[0] == (9, T0, 4.5) and small.points[-1][1] == T0 + 2990


def test_chunks_outside_the_time_window_are_never_decoded(ctx: ServiceContext) -> None:
    run_id = _external_run(ctx)
    _log_series(ctx, run_id)  # 3 chunks: times T0+0..1023, +1024..2047, +2048..2999
    with ctx.db.write() as session:
        series_id = session.scalars(
            select(MetricSeriesRow.id).where(MetricSeriesRow.run_id == run_id)
        ).one()
        # Damage the first and last chunks: decoding either would fail.
        session.execute(
            update(MetricChunkRow)
            .where(MetricChunkRow.series_id == series_id, MetricChunkRow.seq != 1)
            .values(data=b"broken")
        )
    got = service.get_history(ctx, run_id, "x", min_time=T0 + 1500, max_time=T0 + 1502)
    assert [p[2] for p in got.points] == [1500.0, 1501.0, 1502.0]
    with pytest.raises(ValueError):
        service.get_history(ctx, run_id, "x", min_time=T0 + 10, max_time=T0 + 11)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": 0}, "interval must be between 1 and 86400 seconds, not 0"),
        ({"interval": 100000}, "interval must be between 1 and 86400 seconds, not 100000"),
        ({"interval": -5}, "interval must be between 1 and 86400 seconds, not -5"),
        ({"min_time": 20.0, "max_time": 10.0}, "min_time (20.0) is after max_time (10.0)"),
        ({"min_time": math.nan}, "min_time must be a finite number of epoch seconds, not nan"),
        ({"max_time": math.inf}, "max_time must be a finite number of epoch seconds, not inf"),
    ],
    ids=["interval-0", "interval-100000", "interval-negative", "reversed", "nan", "inf"],
)
def test_bad_window_or_interval_is_refused_naming_it(
    ctx: ServiceContext, params: dict[str, Any], message: str
) -> None:
    run_id = _external_run(ctx)
    _log_series(ctx, run_id, 10)
    with pytest.raises(InvalidInputError) as caught:
        service.get_history(ctx, run_id, "x", **params)
    assert message in caught.value.message
    assert caught.value.http_status == 400


# ---- a run's resource samples ---------------------------------------------------------------


def _samples(replica: str, seqs: range, base: float = T0) -> list[ResourceSample]:
    return [
        ResourceSample(
            replica,
            seq,
            base + seq,
            {"cpu_percent": 100.0 + seq, "memory_mb": 50.0, "gpu/0/power_w": 250.0},
        )
        for seq in seqs
    ]


def _cursor(ctx: ServiceContext, run_id: int) -> int | None:
    with ctx.db.read() as session:
        return runs_store.get_resource_cursor(session, run_id)


def test_resource_samples_become_system_metrics_with_the_cursor(ctx: ServiceContext) -> None:
    run_id = _external_run(ctx)
    stored = service.store_resource_samples(
        ctx, run_id, _samples("worker-0", range(3)), cursor=0, next_cursor=300
    )
    assert stored == 300 and _cursor(ctx, run_id) == 300
    keys = {m.key: m for m in service.list_metrics(ctx, run_id)}
    assert sorted(keys) == [
        "system/worker-0/cpu_percent",
        "system/worker-0/gpu/0/power_w",
        "system/worker-0/memory_mb",
    ]
    cpu = service.get_history(ctx, run_id, "system/worker-0/cpu_percent")
    assert cpu.points == [(0, T0, 100.0), (1, T0 + 1, 101.0), (2, T0 + 2, 102.0)]


def test_samples_read_by_another_server_are_not_stored_twice(ctx: ServiceContext) -> None:
    run_id = _external_run(ctx)
    assert (
        service.store_resource_samples(
            ctx, run_id, _samples("worker-0", range(2)), cursor=0, next_cursor=200
        )
        == 200
    )
    # A second server read the same bytes from the old cursor: nothing is stored, and it
    # learns where the cursor really is.
    again = service.store_resource_samples(
        ctx, run_id, _samples("worker-0", range(2)), cursor=0, next_cursor=200
    )
    assert again == 200
    cpu = service.get_history(ctx, run_id, "system/worker-0/cpu_percent")
    assert [p[0] for p in cpu.points] == [0, 1]


def test_a_finished_run_still_takes_its_last_samples(ctx: ServiceContext) -> None:
    run_id = _external_run(ctx)
    runs_service.finish_external_run(ctx, run_id, RunStatus.COMPLETE)
    # Clients may not log to it any more ...
    with pytest.raises(Exception, match="accepts no more metrics"):
        service.log_rows(ctx, run_id, [("loss", 1.0, 0, None)])
    # ... but the executor's last samples are stored.
    assert service.store_resource_samples(
        ctx, run_id, _samples("worker-0", range(1)), cursor=0, next_cursor=10
    )
    assert service.get_history(ctx, run_id, "system/worker-0/memory_mb").total == 1


def test_samples_of_a_deleted_run_are_dropped(ctx: ServiceContext) -> None:
    assert (
        service.store_resource_samples(
            ctx, 424242, _samples("worker-0", range(1)), cursor=0, next_cursor=10
        )
        is None
    )


# ---- node samples ---------------------------------------------------------------------------

NODE = "node-a"  # the node of the ctx fixture, this server's


class FakeReader(GpuReader):
    """A stand-in for NVML (no GPU exists on the machines this suite runs on): it knows
    the GPUs ``uuids``; utilisation = 10 × their NVML index."""

    def __init__(self, uuids: list[str], error: str = "") -> None:
        super().__init__()
        self.known = uuids
        self.fail = error

    def uuids(self) -> list[str]:
        self.error = self.fail
        return [] if self.fail else list(self.known)

    def sample(self, uuids: list[str] | None = None) -> list[dict[str, Any]]:
        if self.fail:
            self.error = self.fail
            return []
        wanted = self.known if uuids is None else uuids
        return [
            {
                "uuid": u,
                "index": self.known.index(u),
                "utilization_percent": 10.0 * self.known.index(u),
                "temperature_c": 50.0,
            }
            for u in wanted
            if u in self.known
        ]


def _sampler(ctx: ServiceContext, reader: FakeReader, interval: float = 10.0) -> NodeSampler:
    return NodeSampler(ctx, interval=interval, reader_factory=lambda: reader)


def test_node_samples_cpu_memory_and_real_gpus_by_node_index(ctx: ServiceContext) -> None:
    # NVML lists the GPUs in another order than the node's indexes: UUIDs decide.
    register_node(
        ctx.db,
        NODE,
        cpu_millis=8000,
        memory_bytes=16 * 1024**3,
        gpus=[
            DiscoveredGpu(index=0, uuid="GPU-b", product="Tesla-T4", memory_bytes=16 * 1024**3),
            DiscoveredGpu(index=1, uuid="GPU-a", product="Tesla-T4", memory_bytes=16 * 1024**3),
        ],
    )
    simulate_gpus(ctx, NODE, 1, "Tesla-V100-SXM3-32GB")
    sampler = _sampler(ctx, FakeReader(["GPU-a", "GPU-b"]))
    values = sampler.sample_once(now=T0 + 3)
    assert 0.0 <= values["cpu_percent"] <= 100.0 and values["memory_mb"] > 0
    assert values["gpu/0/utilization_percent"] == 10.0  # GPU-b is NVML's 1, the node's 0
    assert values["gpu/1/utilization_percent"] == 0.0
    assert not any(k.startswith("gpu/2/") for k in values)  # the simulated one
    got = get_node_metrics(ctx, NODE, window=60, until=T0 + 30, gpu_error=sampler.gpu_error)
    assert [s.key for s in got.series] == [
        "cpu_percent",
        "gpu/0/temperature_c",
        "gpu/0/utilization_percent",
        "gpu/1/temperature_c",
        "gpu/1/utilization_percent",
        "memory_mb",
    ]
    units = {s.key: s.unit for s in got.series}
    assert units["cpu_percent"] == "%" and units["memory_mb"] == "MB"
    assert units["gpu/0/temperature_c"] == "°C"
    # Stored at the time rounded down to the interval.
    assert got.series[0].points == [(T0, values["cpu_percent"])]
    assert [(g.index, g.uuid, g.simulated, g.measured) for g in got.gpus] == [
        (0, "GPU-b", False, True),
        (1, "GPU-a", False, True),
        (2, got.gpus[2].uuid, True, False),
    ]
    # The supervisor tells simulated GPUs apart by this prefix: it must match theirs.
    assert got.gpus[2].uuid.startswith(SIMULATED_GPU_PREFIX) and got.gpu_error == ""
    assert (got.window, got.interval, got.until, got.since) == (60, 10, T0 + 30, T0 - 30)
    assert got.sample_interval == ctx.settings.metrics.node_interval


def test_window_and_interval_average_the_samples(ctx: ServiceContext) -> None:
    sampler = _sampler(ctx, FakeReader([]), interval=10.0)
    stored = {t: sampler.sample_once(now=T0 + t)["memory_mb"] for t in range(0, 600, 10)}
    got = get_node_metrics(ctx, NODE, window=300, interval=60, until=T0 + 595)
    memory = next(s for s in got.series if s.key == "memory_mb")
    # Window [T0+295, T0+595]: samples at 300..590, in 60 s buckets from T0+300.
    assert [p[0] for p in memory.points] == [T0 + 300, T0 + 360, T0 + 420, T0 + 480, T0 + 540]
    first = [stored[t] for t in range(300, 360, 10)]
    assert memory.points[0][1] == pytest.approx(sum(first) / len(first))
    # Automatic: a 300 s window is 30 points of 10 s.
    auto = get_node_metrics(ctx, NODE, window=300, until=T0 + 595)
    assert auto.interval == 10
    assert len(next(s for s in auto.series if s.key == "memory_mb").points) == 30
    # A window with no samples: no series at all (never zeros).
    assert get_node_metrics(ctx, NODE, window=60, until=T0 - 1000).series == []


def test_two_servers_on_one_machine_store_one_sample_per_slot(ctx: ServiceContext) -> None:
    a, b = _sampler(ctx, FakeReader([])), _sampler(ctx, FakeReader([]))
    first = a.sample_once(now=T0 + 1.0)
    b.sample_once(now=T0 + 1.5)  # same 10 s slot: its values are dropped
    with ctx.db.read() as session:
        rows = session.execute(
            select(NodeSampleRow.key, NodeSampleRow.time, NodeSampleRow.value)
        ).all()
    assert sorted(rows) == sorted((k, T0, v) for k, v in first.items())


def test_old_samples_are_deleted_after_the_retention(ctx: ServiceContext) -> None:
    hours = ctx.settings.metrics.node_retention_hours
    sampler = _sampler(ctx, FakeReader([]))
    old = T0 - hours * 3600 - 100
    sampler.sample_once(now=old)
    fresh_sampler = _sampler(ctx, FakeReader([]))  # its first pass prunes
    fresh_sampler.sample_once(now=T0)
    with ctx.db.read() as session:
        times = set(session.scalars(select(NodeSampleRow.time)))
    assert times == {T0}


def test_no_gpu_says_why(ctx: ServiceContext) -> None:
    sampler = _sampler(
        ctx, FakeReader([], error="NVML is unavailable: NVML Shared Library Not Found")
    )
    sampler.sample_once(now=T0)
    got = get_node_metrics(ctx, NODE, window=60, until=T0 + 30, gpu_error=sampler.gpu_error)
    assert got.gpus == []
    assert got.gpu_error == "NVML is unavailable: NVML Shared Library Not Found"
    assert [s.key for s in got.series] == ["cpu_percent", "memory_mb"]
    # Another node's metrics never carry this server's NVML error.
    register_node(ctx.db, "node-b", cpu_millis=1000, memory_bytes=1024**3, gpus=[])
    other = get_node_metrics(ctx, "node-b", gpu_error=sampler.gpu_error)
    assert (other.gpu_error, other.series, other.gpus) == ("", [], [])


def test_gpu_discovery_off_is_the_reason_and_nvml_is_never_asked(
    ctx: ServiceContext,
) -> None:
    ctx.settings = ctx.settings.model_copy(
        update={"node": ctx.settings.node.model_copy(update={"discover_gpus": False})}
    )
    made: list[FakeReader] = []

    def factory() -> FakeReader:
        made.append(FakeReader(["GPU-a"]))
        return made[-1]

    sampler = NodeSampler(ctx, interval=10.0, reader_factory=factory)
    sampler.sample_once(now=T0)
    assert made == [] and sampler.gpu_error == DISCOVERY_OFF


def test_unknown_node_is_404_naming_the_known_ones(ctx: ServiceContext) -> None:
    with pytest.raises(NotFoundError) as caught:
        get_node_metrics(ctx, "nope")
    assert caught.value.message == (
        f"node 'nope' not found (known nodes: {NODE}); `trainyard node ls` lists them"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 59}, "window must be between 60 and 604800 seconds"),
        ({"window": 604801}, "window must be between 60 and 604800 seconds"),
        ({"interval": 0}, "interval must be 'auto' or whole seconds from 1 to 3600, not 0"),
        ({"interval": 3601}, "interval must be 'auto' or whole seconds from 1 to 3600"),
        ({"until": math.nan}, "until must be a finite number of epoch seconds, not nan"),
    ],
    ids=["window-small", "window-big", "interval-0", "interval-big", "until-nan"],
)
def test_bad_node_window_or_interval_is_refused(
    ctx: ServiceContext, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        get_node_metrics(ctx, NODE, **params)
    assert message in caught.value.message and caught.value.http_status == 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("", None), ("auto", None), (" auto ", None), ("1", 1), ("3600", 3600)],
    ids=["none", "empty", "auto", "auto-spaces", "one", "hour"],
)
def test_interval_parameter_parses(text: str | None, expected: int | None) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["0", "3601", "ten", "1.5", "-3", "1e3"], ids=str)
def test_interval_parameter_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError, match="interval must be 'auto' or whole seconds"):
        parse_interval(text)


def test_unreadable_samples_never_hold_up_a_run(
    ctx: ServiceContext, caplog: pytest.LogCaptureFixture
) -> None:
    """resources.jsonl is a directory: the supervisor cannot write it, the server cannot
    read it; the run completes all the same, with a warning on each side."""
    run = runs_service.submit_run(ctx, "default", manifest=manifest("blocked", "sleep 1.5"))
    assert claim_next(ctx, "me") == run.id
    (ctx.settings.runs_dir / str(run.id) / "resources.jsonl").mkdir(parents=True)
    launch_run(ctx, run.id, first_launch=False)  # keeps what is in the run directory
    reconciler = Reconciler(ctx)
    caplog.set_level("WARNING", logger="trainyard.server.services.reconciler")

    def ended() -> RunStatus | None:
        reconciler.reconcile_once()
        status = runs_service.get_run(ctx, run.id).status
        return status if status in (RunStatus.COMPLETE, RunStatus.ERROR) else None

    assert wait_for("the run to end", ended, timeout=30) is RunStatus.COMPLETE
    warnings = [e.message for e in runs_service.list_events(ctx, run.id) if e.kind == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith("cannot write resource samples to ")
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"run {run.id}: its resource samples cannot be read" in m for m in logged)
    assert service.list_metrics(ctx, run.id) == []


def test_the_sampler_thread_outlives_database_errors_and_stops_cleanly(
    ctx: ServiceContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="trainyard.server.services.node_metrics")
    sampler = _sampler(ctx, FakeReader([]), interval=0.2)

    def count() -> int:
        with ctx.db.read() as session:
            return len(session.scalars(select(NodeSampleRow.time).distinct()).all())

    with ctx.db.write() as session:  # the table goes away: every insert fails
        session.execute(text("ALTER TABLE node_samples RENAME TO node_samples_away"))
    try:
        sampler.start()
        wait_for(
            "the failure to be logged",
            lambda: any("cannot store a sample" in r.getMessage() for r in caplog.records),
        )
        time.sleep(0.7)  # three more failing passes: still one complaint
        assert sampler._thread is not None and sampler._thread.is_alive()
    finally:
        with ctx.db.write() as session:
            session.execute(text("ALTER TABLE node_samples_away RENAME TO node_samples"))
    complaints = [r for r in caplog.records if "cannot store a sample" in r.getMessage()]
    assert len(complaints) == 1
    wait_for("samples once the table is back", lambda: count() >= 2)
    started = time.monotonic()
    sampler.stop()
    assert time.monotonic() - started < 2.0 and not sampler._thread.is_alive()
    stored = count()
    time.sleep(0.5)
    assert count() == stored  # nothing after the stop
