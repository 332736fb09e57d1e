"""Backends that run a run's replicas: the :class:`Executor` interface and its implementations."""

from trainyard.executors.base import (
    Executor,
    ExecutorError,
    LaunchRequest,
    LogChunk,
    LogLine,
    ObservedEvent,
    ReplicaLaunch,
    ReplicaObservation,
    RunObservation,
)

__all__ = [
    "Executor",
    "ExecutorError",
    "LaunchRequest",
    "LogChunk",
    "LogLine",
    "ObservedEvent",
    "ReplicaLaunch",
    "ReplicaObservation",
    "RunObservation",
]
