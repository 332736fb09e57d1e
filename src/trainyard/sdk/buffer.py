"""The in-memory buffer that ``log_metric`` appends to: the only work done in the training
loop.

A point is a tuple ``(key, value, step, time)`` appended to a list under a lock; nothing
else happens per call (no validation beyond ``float(value)``, no I/O). The sender thread
takes the whole list at once (:meth:`MetricBuffer.take`) and is woken early when a full
batch is waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from time import time as _now
from typing import Any, SupportsFloat, SupportsIndex

from trainyard.client.metrics import PointTuple
from trainyard.core.errors import ConflictError

__all__ = ["ClosedBuffer", "MetricBuffer"]


class MetricBuffer:
    """Points waiting to be sent, and the next step of each key.

    A point logged without a step gets the key's next step: one past the largest step
    logged for that key in this process (explicitly or not), from 0 — the server's rule for
    a point that comes without a step.
    """

    def __init__(self, batch_size: int) -> None:
        self._lock = threading.Lock()
        self._points: list[PointTuple] = []
        self._next_step: dict[str, int] = {}
        self._batch_size = batch_size
        # Set when a full batch is waiting, so the sender does not wait for its next tick.
        self.wake = threading.Event()

    def add(self, key: str, value: SupportsFloat, step: SupportsIndex | None = None) -> None:
        number = float(value)
        now = _now()
        with self._lock:
            after = self._next_step.get(key, 0)
            at = after if step is None else int(step)
            if at >= after:
                self._next_step[key] = at + 1
            points = self._points
            points.append((key, number, at, now))
            if len(points) == self._batch_size:
                self.wake.set()

    def add_many(self, metrics: Mapping[str, Any], step: SupportsIndex | None = None) -> None:
        items = [(key, float(value)) for key, value in metrics.items()]
        at_step = None if step is None else int(step)
        now = _now()
        with self._lock:
            points = self._points
            before = len(points)
            for key, number in items:
                after = self._next_step.get(key, 0)
                at = after if at_step is None else at_step
                if at >= after:
                    self._next_step[key] = at + 1
                points.append((key, number, at, now))
            if before < self._batch_size <= len(points):
                self.wake.set()

    def take(self) -> list[PointTuple]:
        """Every point buffered so far, oldest first; the buffer is left empty."""
        with self._lock:
            points = self._points
            self._points = []
        return points

    def __len__(self) -> int:
        return len(self._points)


class ClosedBuffer:
    """Stands in for the buffer of a tracker that was finished (or inherited by a forked
    process): logging to it raises, rather than keeping points that nothing would send."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def add(self, key: str, value: SupportsFloat, step: SupportsIndex | None = None) -> None:
        raise ConflictError(self.reason)

    def add_many(self, metrics: Mapping[str, Any], step: SupportsIndex | None = None) -> None:
        raise ConflictError(self.reason)
