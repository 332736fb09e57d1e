"""What every service needs, built once by the app and passed down (no globals)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from trainyard.core.settings import Settings
from trainyard.executors.base import Executor
from trainyard.server.store import Database

__all__ = ["InFlight", "ServiceContext"]


class InFlight:
    """Run ids this process is launching right now (thread-safe).

    The launcher adds a run before committing its claim and removes it once the launch is
    recorded or has failed, so the reconciler never launches the same run a second time while
    the first launch is still extracting code or spawning.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def add(self, run_id: int) -> bool:
        """Mark ``run_id`` as being launched; False if it already was."""
        with self._lock:
            if run_id in self._ids:
                return False
            self._ids.add(run_id)
            return True

    def discard(self, run_id: int) -> None:
        with self._lock:
            self._ids.discard(run_id)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._ids


def _no_wake() -> None:
    return None


@dataclass
class ServiceContext:
    """Settings, database, executor and the hooks the services call.

    ``server_url`` is the address replicas use to reach this server (TRAINYARD_SERVER_URL in
    their environment); ``wake_launcher`` is called after a run is queued so the launcher
    starts it at once instead of on its next poll, and ``wake_reconciler`` after a launch or
    a stop so the reconciler follows the run closely from then on.
    """

    settings: Settings
    db: Database
    executor: Executor
    server_url: str
    wake_launcher: Callable[[], None] = _no_wake
    wake_reconciler: Callable[[], None] = _no_wake
    launching: InFlight = field(default_factory=InFlight)
    # The node this server's executor launches on (registered at start); the scheduler
    # places runs only there.
    node_name: str = ""
