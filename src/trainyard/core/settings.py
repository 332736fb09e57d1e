"""The one settings tree, read once per entry point and passed down.

Environment variables use the ``TRAINYARD_`` prefix and ``__`` for nesting:
``TRAINYARD_HOME``, ``TRAINYARD_SERVER_URL``, ``TRAINYARD_DB__URL``, ``TRAINYARD_SERVER__PORT``.
Every default works with no configuration at all.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DBSettings",
    "MetricsSettings",
    "NodeSettings",
    "RunsSettings",
    "SchedulerSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
]

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"


class DBSettings(BaseModel):
    # None -> SQLite (WAL) at $TRAINYARD_HOME/trainyard.db
    url: str | None = None
    echo: bool = False


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    # Refuse a non-loopback host unless this is set: the API runs arbitrary commands.
    insecure_no_auth: bool = False
    # Seconds between reconciler passes over active runs (the launcher is woken on submit).
    reconcile_interval: float = 0.05


class RunsSettings(BaseModel):
    executor: str = "local"
    snapshot_max_bytes: int = 200 * 1024 * 1024
    stop_grace_seconds: float = 10.0
    # Lines longer than this are split into chunks with a visible continuation marker.
    log_max_line_bytes: int = 1024 * 1024
    # Each replica's log stops growing here: a marker line and a warning event say so, and
    # the rest of its output is read and counted but not stored (the replica keeps running).
    log_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    # How often the supervisor samples memory to enforce limits.
    sample_interval: float = 0.5
    restart_backoff_seconds: float = 1.0
    # The largest file a run may log as an artifact (trainyard.log_artifact, MLflow).
    artifact_max_bytes: int = Field(default=5 * 1024**3, ge=1)


class SchedulerSettings(BaseModel):
    # A queued run that cannot fit lets later runs of its group start ahead of it (backfill)
    # at most this many times; after that its group admits nothing that competes for what it
    # lacks until it has started. 0 = strict priority/FIFO order.
    backfill_limit: int = Field(default=8, ge=0)
    # Seconds between scheduling passes when nothing wakes the scheduler (runs ended on
    # another server, queue timeouts).
    poll_interval: float = Field(default=1.0, gt=0)


class NodeSettings(BaseModel):
    # This machine as a scheduling node. None -> discovered (hostname, logical CPUs, RAM).
    name: str | None = None
    cpus: float | None = Field(default=None, gt=0)
    memory_bytes: int | None = Field(default=None, gt=0)
    # False: do not look for GPUs with NVML (the node then has only simulated GPUs, if any).
    discover_gpus: bool = True


class MetricsSettings(BaseModel):
    # Seconds between two resource samples of a replica (CPU, memory, its GPUs), taken by the
    # run's supervisor.
    resource_interval: float = Field(default=5.0, ge=0.2)
    # Seconds between two samples of this node (CPU, memory, every GPU), taken by the server.
    node_interval: float = Field(default=10.0, ge=0.2)
    # Node samples older than this are deleted.
    node_retention_hours: float = Field(default=168.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRAINYARD_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".trainyard")
    server_url: str | None = None  # None -> DEFAULT_SERVER_URL, and `trainyard run` may autostart
    db: DBSettings = Field(default_factory=DBSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    runs: RunsSettings = Field(default_factory=RunsSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    node: NodeSettings = Field(default_factory=NodeSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @property
    def database_url(self) -> str:
        return self.db.url or f"sqlite:///{self.home / 'trainyard.db'}"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"

    @property
    def effective_server_url(self) -> str:
        return (self.server_url or DEFAULT_SERVER_URL).rstrip("/")


def load_settings() -> Settings:
    """Read settings from the environment (the only place that reads ``os.environ``)."""
    return Settings()
