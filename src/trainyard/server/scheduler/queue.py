"""The launcher: runs scheduling passes and launches the runs they admit.

A background thread that sleeps on an event. :meth:`Launcher.wake` (called by every
submission, by the end of a run, and by pool changes) sets it, so a new run is placed within
milliseconds instead of on the next poll; a slow poll (``scheduler.poll_interval``) still
picks up what another server sharing the database freed, and ends runs whose queue
``timeout`` has passed. Each pass (:func:`~trainyard.server.services.scheduling.schedule_pass`)
is one short write transaction that moves the admitted runs ``queued -> starting`` with their
placements; the launches happen after it commits (see
:mod:`trainyard.server.services.launches`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from trainyard.server.services.context import ServiceContext
from trainyard.server.services.launches import launch_run
from trainyard.server.services.scheduling import heartbeat, pass_needed, schedule_pass

__all__ = ["Launcher", "claim_next"]

log = logging.getLogger(__name__)
_HEARTBEAT_SECONDS = 30.0


def claim_next(ctx: ServiceContext, instance_id: str) -> int | None:
    """Admit at most one queued run onto this server's node; its id, or None. The run is in
    ``starting`` and in ``ctx.launching``: the caller launches it."""
    nodes = [ctx.node_name] if ctx.node_name else []
    admitted = schedule_pass(ctx, instance_id, nodes, limit=1)
    return admitted[0] if admitted else None


class Launcher:
    """Background thread placing and launching queued runs. ``start()``/``stop()``;
    ``wake()`` is cheap and safe from any thread."""

    def __init__(self, ctx: ServiceContext, *, poll_interval: float | None = None) -> None:
        self.ctx = ctx
        self.instance_id = uuid.uuid4().hex
        self.poll_interval = (
            poll_interval if poll_interval is not None else ctx.settings.scheduler.poll_interval
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self._seen: tuple[Any, ...] | None = None
        self._last_pass_empty = False

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
            woken = self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                # Woken: something changed here (a submission, a run ended, pools moved).
                # A poll only passes when the database says something changed elsewhere
                # (another server) or a queue timeout is due.
                if woken:
                    self.drain(fresh=True)
                    self._seen = None  # the next poll takes a fingerprint (and passes once)
                else:
                    needed, seen = pass_needed(self.ctx, self._seen)
                    if needed:
                        self.drain()
                        self._seen = seen if self._last_pass_empty else None
                self._heartbeat()
            except Exception:
                # A database hiccup must not kill the launcher; the next wake or poll retries.
                log.exception("launcher pass failed")

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self.ctx.node_name and now - self._last_heartbeat >= _HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            heartbeat(self.ctx.db, self.ctx.node_name)

    def drain(self, *, fresh: bool = False) -> int:
        """Schedule and launch until a pass admits nothing (or the launcher is stopping).
        ``fresh``: just woken by a change (most often a submission), so the first pass goes
        straight to its write transaction."""
        launched = 0
        check_empty = not fresh
        while not self._stopping.is_set():
            admitted = self._pass(check_empty=check_empty)
            check_empty = True
            if not admitted:
                break
            for run_id in admitted:
                launch_run(self.ctx, run_id, first_launch=True)
                launched += 1
        return launched

    def _pass(self, *, check_empty: bool = True) -> list[int]:
        nodes = [self.ctx.node_name] if self.ctx.node_name else []
        try:
            admitted = schedule_pass(self.ctx, self.instance_id, nodes, check_empty=check_empty)
        except Exception:
            log.exception("scheduling pass failed")
            admitted = []
            self._last_pass_empty = False  # failed: retry on the next poll
            return admitted
        self._last_pass_empty = not admitted
        return admitted
