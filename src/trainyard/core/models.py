"""The core task model every manifest front-end produces, and the domain objects of the server.

``TaskSpec`` is what a manifest means once parsed (before parameters are filled in);
``resolve_task`` in :mod:`trainyard.manifest` turns it into a ``TaskSpec`` whose commands have
their ``{{ .name }}`` placeholders filled. Sizes are exact integers: CPU in millicores,
memory in bytes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.leaderboard import LeaderboardSetting
from trainyard.core.status import ReplicaStatus, RunStatus

__all__ = [
    "AIchorSpec",
    "Event",
    "GitInfo",
    "ManifestFormat",
    "ParameterSpec",
    "ParameterType",
    "Placement",
    "Project",
    "Replica",
    "ResourceAmounts",
    "ResourceSpec",
    "RestartPolicy",
    "Run",
    "Task",
    "TaskSpec",
    "VolumeSpec",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


class ManifestFormat(StrEnum):
    NATIVE = "trainyard"
    KIBERNETIKA = "kibernetika"
    AICHOR = "aichor"
    # Not a manifest: the task of runs created by tracking clients (the SDK outside a run, the
    # MLflow-compatible API); trainyard launches nothing for them.
    EXTERNAL = "external"


class RestartPolicy(StrEnum):
    NEVER = "Never"
    ON_FAILURE = "OnFailure"


class ParameterType(StrEnum):
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    BOOL = "bool"
    LIST = "list"


class ParameterSpec(_Model):
    """A typed run parameter, filled into ``{{ .name }}`` placeholders."""

    name: str
    type: ParameterType = ParameterType.STRING
    default: Any = None  # already of ``type``; None with required=True means it must be given
    required: bool = False
    description: str = ""
    choices: list[Any] | None = None


class ResourceAmounts(_Model):
    """``requests`` or ``limits``: None means unset."""

    cpu_millis: int | None = None
    memory_bytes: int | None = None
    gpu: int | None = None


class VolumeSpec(_Model):
    name: str
    mount_path: str | None = None
    sub_path: str | None = None
    read_only: bool = False
    # The source kind and its settings as written (hostPath/nfs/git/s3/cluster...).
    source: dict[str, Any] = Field(default_factory=dict)


class ResourceSpec(_Model):
    """One role of a task (``worker``, ``ps``, ``head``…) with its replicas."""

    name: str  # DNS-1123 label
    replicas: int = 1
    command: str  # a shell string; may hold {{ .param }} placeholders before resolution
    work_dir: str = ""  # relative to the run's code snapshot; "" = the snapshot root
    images: dict[str, str] = Field(default_factory=dict)  # {"cpu": ..., "gpu": ...}
    env: dict[str, str] = Field(default_factory=dict)
    requests: ResourceAmounts = Field(default_factory=ResourceAmounts)
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    backoff_limit: int = 3  # restarts allowed with OnFailure
    daemon: bool = False  # stopped once every non-daemon replica has finished (like `ps`)
    port: int | None = None  # the port this role listens on, for TF_CONFIG; default 2222
    default_volume_mapping: bool = False
    volumes: list[VolumeSpec] = Field(default_factory=list)
    shm_size_bytes: int | None = None
    gpu_product: str | None = None  # e.g. Tesla-V100-SXM3-32GB (AIchor accelerators)

    @property
    def is_daemon(self) -> bool:
        return self.daemon or self.name == "ps"


class AIchorSpec(_Model):
    """What an AIchor manifest says beyond resources, kept for the Ray backend."""

    api_version: str = ""
    operator: str  # "kuberay", "jax", "tf", "pytorch", ...
    image: str = ""
    builder: dict[str, Any] = Field(default_factory=dict)
    tensorboard_enabled: bool = False
    storage: dict[str, Any] = Field(default_factory=dict)


class TaskSpec(_Model):
    """A task: a name and its resources. Produced by every manifest front-end."""

    name: str  # DNS-1123 label
    format: ManifestFormat = ManifestFormat.NATIVE
    resources: list[ResourceSpec]
    env: dict[str, str] = Field(default_factory=dict)  # task-level, under each resource's env
    timeout_seconds: int | None = None  # wait for compute at most this long (Kibernetika)
    parameters: list[ParameterSpec] = Field(default_factory=list)
    description: str = ""
    aichor: AIchorSpec | None = None

    def resource(self, name: str) -> ResourceSpec | None:
        return next((r for r in self.resources if r.name == name), None)

    @property
    def replica_count(self) -> int:
        return sum(r.replicas for r in self.resources)


class GitInfo(_Model):
    branch: str | None = None
    commit: str | None = None
    dirty: bool = False
    remote: str | None = None


class Project(_Model):
    id: int
    name: str
    summary: str = ""
    created_at: datetime
    group: str = "default"  # its runs draw on this group's GPU pools
    # The leaderboard's metric and goal; None until the project owner sets them.
    leaderboard: LeaderboardSetting | None = None


class Task(_Model):
    id: int
    project: str
    name: str
    format: ManifestFormat
    manifest: str  # the YAML as submitted
    spec: TaskSpec
    created_at: datetime
    updated_at: datetime
    runs_count: int = 0


class Replica(_Model):
    name: str  # "<resource>-<index>", e.g. worker-1
    resource: str
    index: int
    address: str = ""
    pid: int | None = None
    status: ReplicaStatus = ReplicaStatus.PENDING
    exit_code: int | None = None
    signal: int | None = None
    restarts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    gpus: list[str] = Field(default_factory=list)


class Event(_Model):
    id: int
    time: datetime
    kind: str  # "status", "replica", "info", "warning"
    status: RunStatus | None = None  # the status entered, for kind == "status"
    replica: str | None = None
    reason: str = ""
    message: str = ""


class Placement(_Model):
    """Where one replica of an admitted run runs, and what is reserved for it (see
    :mod:`trainyard.core.scheduling`)."""

    replica: str
    node: str
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: list[str] = Field(default_factory=list)  # UUIDs, in CUDA_VISIBLE_DEVICES order
    shared: bool = False  # start-immediately: GPUs shared with other runs


class Run(_Model):
    id: int
    project: str
    task: str
    build_id: int
    status: RunStatus
    reason: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    manifest: str = ""
    spec: TaskSpec
    git: GitInfo | None = None
    snapshot_id: str | None = None
    executor: str = "local"
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replicas: list[Replica] = Field(default_factory=list)
    archived: bool = False
    # Who submitted the run: the submitting OS user as the CLI reports it, unauthenticated,
    # until users and tokens exist; "" when unknown.
    submitted_by: str = ""
    # Scheduling: higher priority runs are admitted first; start_immediately skips the queue
    # and shares GPUs (DKube). ``placements`` are filled once the run is admitted and kept
    # after it ends; ``queue_position`` (1-based) only while it is queued.
    priority: int = 0
    start_immediately: bool = False
    group: str = "default"
    placements: list[Placement] = Field(default_factory=list)
    queue_position: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.task}#{self.build_id}"
