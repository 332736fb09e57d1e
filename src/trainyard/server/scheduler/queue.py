"""The launcher: takes queued runs in submission order and launches them.

A background thread that sleeps on an event. :meth:`Launcher.wake` (called by every
submission) sets it, so a new run is claimed within microseconds instead of on the next poll;
a slow poll (``poll_interval``) still picks up runs queued by another server sharing the
database. Claiming is one short write transaction (``queued -> starting``, event "launching on
local"); the launch itself runs after it commits (see :mod:`trainyard.server.services.launches`).
"""

from __future__ import annotations

import logging
import threading
import uuid

from trainyard.core.status import RunStatus
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.launches import launch_run
from trainyard.server.services.runs import transition
from trainyard.server.store import runs as store
from trainyard.server.store.tables import utcnow

__all__ = ["Launcher", "claim_next"]

log = logging.getLogger(__name__)


def claim_next(ctx: ServiceContext, instance_id: str) -> int | None:
    """Move the oldest queued run to ``starting`` and mark it in flight; its id, or None."""
    run_id: int | None = None
    try:
        with ctx.db.write() as session:
            row = store.get_next_queued(session)
            if row is None:
                return None
            transition(session, row, RunStatus.STARTING, f"launching on {ctx.executor.name}")
            row.claimed_by = instance_id
            row.claimed_at = utcnow()
            run_id = row.id
            # In flight before the commit makes `starting` visible: the reconciler must never
            # see this run starting, unlaunched and not in flight (it would launch it too).
            ctx.launching.add(run_id)
    except BaseException:
        if run_id is not None:
            ctx.launching.discard(run_id)
        raise
    return run_id


class Launcher:
    """Background thread launching queued runs. ``start()``/``stop()``; ``wake()`` is cheap
    and safe from any thread."""

    def __init__(self, ctx: ServiceContext, *, poll_interval: float = 1.0) -> None:
        self.ctx = ctx
        self.instance_id = uuid.uuid4().hex
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="trainyard-launcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                self.drain()
            except Exception:
                # A database hiccup must not kill the launcher; the next wake or poll retries.
                log.exception("launcher pass failed")

    def drain(self) -> int:
        """Launch queued runs until none is left (or the launcher is stopping)."""
        launched = 0
        while not self._stopping.is_set():
            run_id = self._claim()
            if run_id is None:
                break
            launch_run(self.ctx, run_id, first_launch=True)
            launched += 1
        return launched

    def _claim(self) -> int | None:
        try:
            return claim_next(self.ctx, self.instance_id)
        except Exception:
            log.exception("claiming a queued run failed")
            return None
