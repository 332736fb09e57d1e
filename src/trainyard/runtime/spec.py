"""``launch.json``: what the supervisor runs, parsed without pydantic (start-up must be fast).

The executor writes it (``trainyard.executors.local``); the format is documented in
``docs/local-backend.md``. Unknown keys are ignored so an older supervisor can read a newer file.
"""

from __future__ import annotations

import json

# typing costs ~3 ms at start-up; mypy still sees these names.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["LaunchSpec", "ReplicaSpec", "load_launch_spec"]

LAUNCH_VERSION = 1
# Smaller quotas would leave no room for the marker line that says the quota was reached.
MIN_LOG_QUOTA_BYTES = 1024
# Resource samples more often than this would cost the supervisor's loop noticeable time.
MIN_RESOURCE_INTERVAL = 0.1


class ReplicaSpec:
    """One replica to run (the ``replicas[]`` entries of ``launch.json``)."""

    __slots__ = (
        "address",
        "backoff_limit",
        "command",
        "daemon",
        "env",
        "gpus",
        "index",
        "memory_limit_bytes",
        "name",
        "resource",
        "restart_policy",
        "work_dir",
    )

    def __init__(
        self,
        *,
        name: str,
        resource: str,
        index: int,
        address: str,
        command: str,
        work_dir: str,
        env: dict[str, str],
        memory_limit_bytes: int | None,
        restart_policy: str,
        backoff_limit: int,
        daemon: bool,
        gpus: list[str] | None = None,
    ) -> None:
        self.name = name
        self.resource = resource
        self.index = index
        self.address = address
        self.command = command
        self.work_dir = work_dir
        self.env = env
        self.memory_limit_bytes = memory_limit_bytes
        self.restart_policy = restart_policy
        self.backoff_limit = backoff_limit
        self.daemon = daemon
        # The UUIDs of its GPUs, in CUDA_VISIBLE_DEVICES order (resource metrics read them).
        self.gpus = gpus or []


class LaunchSpec:
    """The whole of ``launch.json``."""

    __slots__ = (
        "code_dir",
        "log_quota_bytes",
        "max_line_bytes",
        "replicas",
        "resource_interval",
        "restart_backoff_seconds",
        "run_id",
        "run_ref",
        "sample_interval",
        "stop_grace_seconds",
    )

    def __init__(
        self,
        *,
        run_id: int,
        run_ref: str,
        code_dir: str,
        replicas: list[ReplicaSpec],
        stop_grace_seconds: float,
        max_line_bytes: int,
        sample_interval: float,
        restart_backoff_seconds: float,
        log_quota_bytes: int,
        resource_interval: float = 5.0,
    ) -> None:
        self.run_id = run_id
        self.run_ref = run_ref
        self.code_dir = code_dir
        self.replicas = replicas
        self.stop_grace_seconds = stop_grace_seconds
        self.max_line_bytes = max_line_bytes
        self.sample_interval = sample_interval
        self.restart_backoff_seconds = restart_backoff_seconds
        self.log_quota_bytes = log_quota_bytes
        self.resource_interval = resource_interval


def _replica(raw: dict[str, Any]) -> ReplicaSpec:
    limit = raw.get("memory_limit_bytes")
    return ReplicaSpec(
        name=str(raw["name"]),
        resource=str(raw["resource"]),
        index=int(raw["index"]),
        address=str(raw.get("address", "")),
        command=str(raw["command"]),
        work_dir=str(raw["work_dir"]),
        env={str(k): str(v) for k, v in dict(raw.get("env", {})).items()},
        memory_limit_bytes=int(limit) if limit is not None else None,
        restart_policy=str(raw.get("restart_policy", "Never")),
        backoff_limit=int(raw.get("backoff_limit", 3)),
        daemon=bool(raw.get("daemon", False)),
        gpus=[str(g) for g in raw.get("gpus") or []],
    )


def load_launch_spec(path: str) -> LaunchSpec:
    """Parse ``launch.json``. Raises ``ValueError`` (with the reason) on a malformed file."""
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read())
        return LaunchSpec(
            run_id=int(raw["run_id"]),
            run_ref=str(raw.get("run_ref", raw["run_id"])),
            code_dir=str(raw.get("code_dir", "")),
            replicas=[_replica(r) for r in raw["replicas"]],
            stop_grace_seconds=float(raw.get("stop_grace_seconds", 10.0)),
            max_line_bytes=max(1024, int(raw.get("max_line_bytes", 1 << 20))),
            sample_interval=max(0.05, float(raw.get("sample_interval", 0.5))),
            restart_backoff_seconds=max(0.0, float(raw.get("restart_backoff_seconds", 1.0))),
            log_quota_bytes=max(MIN_LOG_QUOTA_BYTES, int(raw.get("log_quota_bytes", 1 << 30))),
            resource_interval=max(MIN_RESOURCE_INTERVAL, float(raw.get("resource_interval", 5.0))),
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is not a valid launch file: {exc!r}") from exc
