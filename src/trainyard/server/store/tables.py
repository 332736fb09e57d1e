"""The database tables. Alembic migrations (``migrations/versions``) create exactly these.

Times are stored as UTC: :class:`UTCDateTime` writes naive UTC values on SQLite (which has no
time zones) and ``timestamptz`` on PostgreSQL, and always gives back aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "DEFAULT_GROUP_ID",
    "DEFAULT_POOL_ID",
    "Base",
    "EventRow",
    "GpuAllocationRow",
    "GpuRow",
    "GroupRow",
    "MetricBatchRow",
    "MetricChunkRow",
    "MetricSeriesRow",
    "MlflowExperimentRow",
    "NodeRow",
    "NodeSampleRow",
    "PlacementRow",
    "PoolRow",
    "ProjectRow",
    "ReplicaRow",
    "RunParamRow",
    "RunRow",
    "RunTagRow",
    "SchedulerRow",
    "SnapshotRow",
    "TaskRow",
    "UTCDateTime",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: trainyard stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


# The default group and pool are created by migration 0003 with these ids.
DEFAULT_GROUP_ID = 1
DEFAULT_POOL_ID = 1


class GroupRow(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PoolRow(Base):
    __tablename__ = "pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # The one GPU type the pool holds (normalised product name); None for the default pool.
    gpu_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="RESTRICT"))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[GroupRow] = relationship(lazy="joined", innerjoin=True)


class NodeRow(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    cpu_millis: Mapped[int] = mapped_column(BigInteger)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class NodeSampleRow(Base):
    """One resource sample of a node (migration 0006): ``key`` is ``cpu_percent``,
    ``memory_mb`` or ``gpu/<index>/<metric>``; ``time`` is epoch seconds. Kept for a bounded
    time (``TRAINYARD_METRICS__NODE_RETENTION_HOURS``), so a row per sample is small enough."""

    __tablename__ = "node_samples"
    __table_args__ = (Index("ix_node_samples_time", "time"),)

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    time: Mapped[float] = mapped_column(Float, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class GpuRow(Base):
    __tablename__ = "gpus"
    __table_args__ = (UniqueConstraint("node_id", "index", name="uq_gpus_node_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    uuid: Mapped[str] = mapped_column(String(96), unique=True)
    product: Mapped[str] = mapped_column(String(128))
    memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    # False when the node's last registration did not find it: kept (runs may hold it) but
    # never placed on.
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="RESTRICT"))

    node: Mapped[NodeRow] = relationship(lazy="joined", innerjoin=True)
    pool: Mapped[PoolRow] = relationship(lazy="joined", innerjoin=True)


class SchedulerRow(Base):
    """One row (id 1): scheduling passes lock it, so passes of several servers on one
    database never interleave (``SELECT … FOR UPDATE``; SQLite's write lock does the same)."""

    __tablename__ = "scheduler"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pass_at: Mapped[datetime | None] = mapped_column(nullable=True)
    pass_by: Mapped[str] = mapped_column(String(64), default="")


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="RESTRICT"),
        default=DEFAULT_GROUP_ID,
        server_default=str(DEFAULT_GROUP_ID),
    )

    # The leaderboard (migration 0006): the metric that ranks the project's runs, and
    # whether lower ("min") or higher ("max") is better. None until the owner sets it.
    leaderboard_metric: Mapped[str | None] = mapped_column(String(250), nullable=True)
    leaderboard_goal: Mapped[str | None] = mapped_column(String(8), nullable=True)

    group: Mapped[GroupRow] = relationship(lazy="joined", innerjoin=True)


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_tasks_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    format: Mapped[str] = mapped_column(String(32))
    manifest: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The last BUILD_ID handed out; incremented with UPDATE ... RETURNING so concurrent
    # submissions get distinct, gap-free numbers.
    runs_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[ProjectRow] = relationship(lazy="joined", innerjoin=True)


class SnapshotRow(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the tar.gz
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("task_id", "build_id", name="uq_runs_task_build"),
        Index("ix_runs_status_id", "status", "id"),
        Index("ix_runs_project_id", "project_id", "id"),
        Index("ix_runs_queue", "status", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    build_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the resolved TaskSpec that runs
    git: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="RESTRICT"), nullable=True
    )
    executor: Mapped[str] = mapped_column(String(32), default="local")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Seq of the last executor event copied into `events` (Executor.observe's cursor).
    observe_cursor: Mapped[int] = mapped_column(Integer, default=0)
    # Where the executor's resource samples of this run were read up to (migration 0006):
    # advanced in the transaction that stores them, so none is stored twice.
    resource_cursor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Which server process claimed the run for launch, and when: a run left in `starting`
    # by a server that died is launched again only after a grace period.
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The submitting OS user as the client reported it (not authenticated); "" when unknown.
    submitted_by: Mapped[str] = mapped_column(String(128), default="", server_default="")
    # Scheduling (migration 0003). ``demand``: one [replica, cpu_millis, memory_bytes, gpus,
    # gpu_type] per replica, so a pass never parses specs; ``gpus`` their sum.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    start_immediately: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    timeout_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    demand: Mapped[list[Any]] = mapped_column(JSON, default=list)
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Times later runs of its group started ahead of it while it was the group's head
    # (bounded backfill).
    overtaken: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    project: Mapped[ProjectRow] = relationship(lazy="joined", innerjoin=True)
    task: Mapped[TaskRow] = relationship(lazy="joined", innerjoin=True)
    replicas: Mapped[list[ReplicaRow]] = relationship(
        lazy="selectin", order_by="ReplicaRow.id", cascade="all, delete-orphan"
    )
    placements: Mapped[list[PlacementRow]] = relationship(
        lazy="selectin", order_by="PlacementRow.id", viewonly=True
    )


class ReplicaRow(Base):
    __tablename__ = "replicas"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_replicas_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    resource: Mapped[str] = mapped_column(String(63))
    index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(64), default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    gpus: Mapped[list[str]] = mapped_column(JSON, default=list)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_run_id_id", "run_id", "id"),)

    # BIGINT on PostgreSQL (events add up); INTEGER on SQLite, where only that is the rowid.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    replica: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")


class PlacementRow(Base):
    """Where a replica of an admitted run runs. Kept after the run ends (the run view shows
    it); ``released_at`` set then, when its CPU and memory stop counting as reserved."""

    __tablename__ = "placements"
    __table_args__ = (
        UniqueConstraint("run_id", "replica", name="uq_placements_run_replica"),
        Index("ix_placements_active", "released_at", "node"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    replica: Mapped[str] = mapped_column(String(80))
    node: Mapped[str] = mapped_column(String(253))
    cpu_millis: Mapped[int] = mapped_column(BigInteger, default=0)
    memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    gpus: Mapped[list[Any]] = mapped_column(JSON, default=list)  # UUIDs
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(nullable=True)


class GpuAllocationRow(Base):
    """A GPU held by a replica, deleted when released. The partial unique index lets the
    database itself refuse a second exclusive holder, whatever the servers believe."""

    __tablename__ = "gpu_allocations"
    __table_args__ = (
        Index(
            "uq_gpu_allocations_exclusive",
            "gpu_id",
            unique=True,
            sqlite_where=text("NOT shared"),
            postgresql_where=text("NOT shared"),
        ),
        Index("ix_gpu_allocations_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    replica: Mapped[str] = mapped_column(String(80))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class MetricSeriesRow(Base):
    """One metric key of one run, with its summary (what tables and leaderboards read)."""

    __tablename__ = "metric_series"
    __table_args__ = (
        UniqueConstraint("run_id", "key", name="uq_metric_series_run_key"),
        # Dashboards and leaderboards sort runs by a metric's last value.
        Index("ix_metric_series_key_value", "key", "last_value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_value: Mapped[float] = mapped_column(Float, default=0.0)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    last_time: Mapped[float] = mapped_column(Float, default=0.0)
    min_value: Mapped[float] = mapped_column(Float, default=0.0)
    max_value: Mapped[float] = mapped_column(Float, default=0.0)
    first_time: Mapped[float] = mapped_column(Float, default=0.0)
    # The step the next point without one gets (one past the largest step seen).
    next_step: Mapped[int] = mapped_column(BigInteger, default=0)


class MetricChunkRow(Base):
    """Up to 1,024 consecutive points of a series, packed (see ``store.metrics``), with
    their step and value ranges so windows and charts skip whole chunks."""

    __tablename__ = "metric_chunks"
    __table_args__ = (UniqueConstraint("series_id", "seq", name="uq_metric_chunks_series_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("metric_series.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    min_step: Mapped[int] = mapped_column(BigInteger)
    max_step: Mapped[int] = mapped_column(BigInteger)
    min_time: Mapped[float] = mapped_column(Float)
    max_time: Mapped[float] = mapped_column(Float)
    min_value: Mapped[float] = mapped_column(Float)
    max_value: Mapped[float] = mapped_column(Float)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MetricBatchRow(Base):
    """A batch already applied (its id sent by the client): a retried batch is not applied
    twice."""

    __tablename__ = "metric_batches"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunParamRow(Base):
    """A param the run logged (the SDK, the MLflow API): text, immutable once logged."""

    __tablename__ = "run_params"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTagRow(Base):
    """A tag the run set (the MLflow-compatible API): free text, overwritten when set again."""

    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MlflowExperimentRow(Base):
    """An MLflow experiment made through the MLflow-compatible API: the project it became
    and the free-text name the client gave it (project names are DNS-1123 slugs of it)."""

    __tablename__ = "mlflow_experiments"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(500), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
