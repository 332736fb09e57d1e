"""The tracking SDK that training code imports (as ``trainyard.init``, ``trainyard.log_metric``…).

Light on purpose: it imports the standard library, httpx, pydantic, :mod:`trainyard.client`
and :mod:`trainyard.core`, never the server. Logging never blocks the training loop: points
go to an in-memory buffer that a daemon thread sends in batches; what the server cannot take
waits in a spool on disk. See ``docs/sdk.md``.
"""

from trainyard.sdk.active import (
    active,
    finish,
    init,
    log_artifact,
    log_metric,
    log_metrics,
    log_params,
)
from trainyard.sdk.context import RunContext
from trainyard.sdk.tracker import DEFAULT_FINISH_TIMEOUT, Tracker

__all__ = [
    "DEFAULT_FINISH_TIMEOUT",
    "RunContext",
    "Tracker",
    "active",
    "finish",
    "init",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_params",
]
