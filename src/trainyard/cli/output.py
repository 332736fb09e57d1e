"""How the CLI shows things: status colours, ages, replica prefixes, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from trainyard.core.models import Event, Run
from trainyard.core.scheduling import Gpu
from trainyard.core.status import ReplicaStatus, RunStatus

__all__ = [
    "LinePrinter",
    "format_age",
    "format_duration",
    "format_time",
    "gpu_holders",
    "gpu_names",
    "print_json",
    "replica_names",
    "replicas_summary",
    "requested_gpus",
    "run_json",
    "status_text",
]

STATUS_STYLES: dict[str, str] = {
    RunStatus.QUEUED: "yellow",
    RunStatus.STARTING: "cyan",
    RunStatus.RUNNING: "blue",
    RunStatus.COMPLETE: "green",
    RunStatus.STOPPING: "magenta",
    RunStatus.STOPPED: "magenta",
    RunStatus.ERROR: "red",
    ReplicaStatus.PENDING: "yellow",
    ReplicaStatus.SUCCEEDED: "green",
    ReplicaStatus.FAILED: "red",
}
_REPLICA_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")


def status_text(status: str) -> Text:
    return Text(str(status), style=STATUS_STYLES.get(status, ""))


def format_duration(seconds: float) -> str:
    """``42`` -> ``42s``, ``200`` -> ``3m``, ``7300`` -> ``2h``, ``200000`` -> ``2d``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def format_age(when: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return format_duration((now - when).total_seconds())


def format_time(when: datetime | None) -> str:
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _log_time(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def run_json(run: Run) -> dict[str, Any]:
    """A run as the API sends it: the model plus its ``ref``."""
    return {**run.model_dump(mode="json"), "ref": run.ref}


def print_json(data: Any) -> None:
    # Plain stdout, not Rich: scripts parse this, so no wrapping or highlighting.
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def replica_names(run: Run) -> list[str]:
    """Every replica's name, from the run's replicas or, before launch, from its spec."""
    if run.replicas:
        return [r.name for r in run.replicas]
    return [f"{res.name}-{i}" for res in run.spec.resources for i in range(res.replicas)]


def replicas_summary(run: Run) -> str:
    """``"2/3 running"`` while active; ``"3/3 succeeded"``, ``"1/3 failed"`` once finished."""
    total = len(run.replicas) or run.spec.replica_count
    counts: dict[str, int] = {}
    for replica in run.replicas:
        counts[replica.status] = counts.get(replica.status, 0) + 1
    if run.status == RunStatus.COMPLETE:
        return f"{counts.get(ReplicaStatus.SUCCEEDED, 0)}/{total} succeeded"
    if run.status == RunStatus.ERROR and counts.get(ReplicaStatus.FAILED):
        return f"{counts[ReplicaStatus.FAILED]}/{total} failed"
    if run.status == RunStatus.STOPPED:
        return f"{counts.get(ReplicaStatus.STOPPED, 0)}/{total} stopped"
    return f"{counts.get(ReplicaStatus.RUNNING, 0)}/{total} running"


def requested_gpus(run: Run) -> int:
    """GPUs the run asks for: per-replica limit (or request) times replicas, summed."""
    return sum(
        (res.limits.gpu or res.requests.gpu or 0) * res.replicas for res in run.spec.resources
    )


def gpu_holders(gpu: Gpu) -> str:
    """Who holds a GPU: ``"vision/train#3 worker-0, vision/dbg#1 worker-0 (shared)"``."""
    return ", ".join(
        f"{use.run} {use.replica}" + (" (shared)" if use.shared else "") for use in gpu.used_by
    )


def gpu_names(uuids: Sequence[str], gpus: Sequence[Gpu]) -> str:
    """GPUs as ``NODE:INDEX`` (what `trainyard node ls` shows), by UUID when unknown."""
    by_uuid = {g.uuid: f"{g.node}:{g.index}" for g in gpus}
    return ", ".join(by_uuid.get(u, u) for u in uuids)


def event_what(event: Event) -> Text:
    if event.kind == "status" and event.status is not None:
        return status_text(event.status)
    return Text(event.kind, style="yellow" if event.kind == "warning" else "")


class LinePrinter:
    """Writes log lines as ``worker-1 | text``, one colour per replica when on a terminal.

    Lines go straight to stdout (not through Rich) so a user program's own text, including its
    ANSI colours, comes out unchanged and fast.
    """

    def __init__(self, console: Console, names: Sequence[str], *, timestamps: bool = False) -> None:
        self._console = console
        self._timestamps = timestamps
        self._width = max((len(n) for n in names), default=0)
        self._prefixes: dict[str, str] = {}
        for name in names:
            self._prefix(name)

    def _prefix(self, replica: str) -> str:
        prefix = self._prefixes.get(replica)
        if prefix is None:
            self._width = max(self._width, len(replica))
            colour = _REPLICA_COLOURS[len(self._prefixes) % len(_REPLICA_COLOURS)]
            plain = f"{replica:<{self._width}} | "
            # Rendered once per replica through the console, so colour follows its detection
            # (terminal, NO_COLOR, FORCE_COLOR) while the lines themselves bypass Rich.
            with self._console.capture() as captured:
                self._console.print(Text(plain, style=colour), end="", soft_wrap=True)
            prefix = captured.get()
            self._prefixes[replica] = prefix
        return prefix

    def write(self, replica: str, text: str, when: datetime | None = None) -> None:
        stamp = ""
        if self._timestamps:
            stamp = (_log_time(when) if when else "-") + " "
        sys.stdout.write(f"{stamp}{self._prefix(replica)}{text}\n")

    def flush(self) -> None:
        sys.stdout.flush()
