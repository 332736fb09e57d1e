"""The active tracker of this process, behind ``trainyard.init`` and ``trainyard.log_metric``.

``init`` makes it (and registers one flush at interpreter exit), the module-level
``log_*`` functions log to it, ``finish`` ends it. A forked child process does not inherit
it: the sender thread and the connections stay with the parent, so the child calls
``trainyard.init()`` again to log.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from typing import Any, SupportsFloat, SupportsIndex

from trainyard.core.errors import ConflictError
from trainyard.sdk.context import resolve_context
from trainyard.sdk.tracker import DEFAULT_FINISH_TIMEOUT, Tracker

__all__ = [
    "active",
    "finish",
    "init",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_params",
]

_active: Tracker | None = None
_lock = threading.Lock()
_exit_hook = False

_NO_RUN = (
    "no active trainyard run in this process: call trainyard.init() first (a process forked "
    "from one that called it calls it again)"
)


def init(
    project: str | None = None,
    name: str | None = None,
    *,
    run_id: int | str | None = None,
    server_url: str | None = None,
    token: str | None = None,
) -> Tracker:
    """Start logging to the run this code runs in and return its :class:`Tracker`.

    Inside a run, everything comes from the environment (``TRAINYARD_RUN_ID``,
    ``TRAINYARD_SERVER_URL``, ``TRAINYARD_TOKEN``); ``run_id``, ``server_url`` and ``token``
    override it. Outside a run, ``name`` (and ``project``, default ``default``) creates a run
    of its own on the server (an external run, like ``mlflow.start_run``) that ``finish``
    marks complete: that one call waits for the server; without a name it raises
    UnsupportedError. Inside a run they are ignored (the run exists already). Calling
    ``init`` again for the same run returns the same tracker; for another run, the previous
    one is finished first. Otherwise sends nothing and never blocks.
    """
    global _active, _exit_hook
    context = resolve_context(
        project=project, name=name, run_id=run_id, server_url=server_url, token=token
    )
    with _lock:
        previous = _active
        if previous is not None and not previous.finished and previous.context == context:
            return previous
        _active = None
    if previous is not None:
        previous.finish()
    tracker = Tracker(context)
    with _lock:
        _active = tracker
        if not _exit_hook:
            atexit.register(_finish_at_exit)
            _exit_hook = True
    return tracker


def active() -> Tracker | None:
    """The tracker that the module-level functions log to, if any."""
    return _active


def log_metric(key: str, value: SupportsFloat, step: SupportsIndex | None = None) -> None:
    """Record ``value`` for metric ``key`` at ``step`` (default: the key's next step, from 0).

    Costs about a microsecond: the point is appended to a buffer that a background thread
    sends. Raises ConflictError when :func:`init` was not called.
    """
    tracker = _active
    if tracker is None:
        raise ConflictError(_NO_RUN)
    tracker.log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, Any], step: SupportsIndex | None = None) -> None:
    """Record several metrics at the same ``step`` (default: each key's next step)."""
    tracker = _active
    if tracker is None:
        raise ConflictError(_NO_RUN)
    tracker.log_metrics(metrics, step)


def log_params(params: Mapping[str, Any]) -> None:
    """Record the run's hyper-parameters; see :meth:`Tracker.log_params`."""
    tracker = _active
    if tracker is None:
        raise ConflictError(_NO_RUN)
    tracker.log_params(params)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[str]:
    """Upload a file or a directory into the run's artifacts (its output directory); see
    :meth:`Tracker.log_artifact`. Returns the stored paths."""
    tracker = _active
    if tracker is None:
        raise ConflictError(_NO_RUN)
    return tracker.log_artifact(local_path, artifact_path)


def finish(timeout: float = DEFAULT_FINISH_TIMEOUT) -> None:
    """Send what is left and stop logging, waiting at most ``timeout`` seconds; what could
    not be sent stays in the spool (a warning says where). Does nothing without a run."""
    global _active
    with _lock:
        tracker, _active = _active, None
    if tracker is not None:
        tracker.finish(timeout)


def _finish_at_exit() -> None:
    tracker = _active
    if tracker is not None and not tracker.finished:
        tracker.finish()


def _after_fork_in_child() -> None:
    global _active, _lock
    _lock = threading.Lock()  # the parent's may have been held at the fork
    tracker, _active = _active, None
    if tracker is not None:
        tracker.detach(_NO_RUN)


os.register_at_fork(after_in_child=_after_fork_in_child)
