"""Printing a run's logs: pages for `trainyard logs`, the live stream for `-f` and `run --wait`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from trainyard.cli.output import LinePrinter, status_text
from trainyard.cli.state import CliState
from trainyard.client import LogEntry, StatusChange, StreamEnd, TrainyardClient
from trainyard.core.models import Run
from trainyard.core.status import TERMINAL_STATUSES, RunStatus

__all__ = ["follow_logs", "print_log_pages"]


def print_log_pages(
    client: TrainyardClient,
    run: Run,
    printer: LinePrinter,
    *,
    replicas: Sequence[str] | None = None,
    tail: int | None = None,
) -> str:
    """Print what the run has logged so far; returns the cursor just after it."""
    page = client.runs.logs(run.id, replicas=replicas, tail=tail)
    while True:
        for line in page.lines:
            printer.write(line.replica, line.text, line.time)
        printer.flush()
        # `tail` asks for the last lines only: one page. Otherwise read until nothing new comes.
        if tail is not None or page.complete or not page.lines:
            return page.cursor
        page = client.runs.logs(run.id, replicas=replicas, cursor=page.cursor)


def follow_logs(
    state: CliState,
    client: TrainyardClient,
    run: Run,
    printer: LinePrinter,
    *,
    replicas: Sequence[str] | None = None,
    cursor: str | None = None,
) -> RunStatus:
    """Stream the run's logs until it ends; returns its final status.

    Status changes are reported on stderr so stdout stays the program's output.
    """
    last_status: RunStatus | None = None
    for item in client.runs.stream_logs(run.id, replicas=replicas, cursor=cursor):
        if isinstance(item, LogEntry):
            printer.write(item.replica, item.text, item.time)
            continue
        printer.flush()
        if isinstance(item, StatusChange):
            # The stream repeats the current status when it (re)connects: show changes only.
            # The final status is the caller's to report, with the run's reason.
            if item.status != last_status and item.status not in TERMINAL_STATUSES:
                line = Text.assemble(f"{run.ref}: ", status_text(item.status))
                if item.reason:
                    line.append(f" ({item.reason})")
                state.err.print(line)
            last_status = item.status
        elif isinstance(item, StreamEnd):
            return item.status
    printer.flush()  # pragma: no cover - the stream always ends with StreamEnd or an error
    return last_status or run.status
