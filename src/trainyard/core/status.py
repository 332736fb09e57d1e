"""Run statuses (DKube's words) and the one transition function every change goes through."""

from __future__ import annotations

from enum import StrEnum

from trainyard.core.errors import IllegalTransitionError

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ReplicaStatus",
    "RunStatus",
    "aichor_word",
    "check_transition",
]


class RunStatus(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


class ReplicaStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETE, RunStatus.STOPPED, RunStatus.ERROR})
ACTIVE_STATUSES = frozenset(set(RunStatus) - TERMINAL_STATUSES)

# queued -> starting -> running -> complete; stopping -> stopped; error from anywhere active.
_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.STARTING, RunStatus.STOPPED, RunStatus.ERROR}),
    RunStatus.STARTING: frozenset(
        {RunStatus.RUNNING, RunStatus.STOPPING, RunStatus.ERROR, RunStatus.COMPLETE}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETE, RunStatus.STOPPING, RunStatus.ERROR}),
    RunStatus.STOPPING: frozenset({RunStatus.STOPPED, RunStatus.ERROR}),
    RunStatus.COMPLETE: frozenset(),
    RunStatus.STOPPED: frozenset(),
    RunStatus.ERROR: frozenset(),
}

_AICHOR = {
    RunStatus.QUEUED: "Processing",
    RunStatus.STARTING: "Processing",
    RunStatus.RUNNING: "Processing",
    RunStatus.STOPPING: "Processing",
    RunStatus.COMPLETE: "Succeeded",
    RunStatus.STOPPED: "Cancelled",
    RunStatus.ERROR: "Failed",
}


def check_transition(run_ref: str, current: RunStatus, new: RunStatus) -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> new`` is allowed.

    A run that finishes fast may go ``starting -> complete`` without being seen running.
    """
    if new not in _ALLOWED[current]:
        raise IllegalTransitionError(
            f"run '{run_ref}' cannot go from {current.value} to {new.value}",
            fields={"run": run_ref, "from": current.value, "to": new.value},
        )


def aichor_word(status: RunStatus) -> str:
    """AIchor's name for a status: Processing, Succeeded, Cancelled or Failed."""
    return _AICHOR[status]
