"""``Tracker``: logs metrics and params of one run, from one process.

``log_metric`` only appends to the in-memory :class:`~trainyard.sdk.buffer.MetricBuffer`;
the :class:`~trainyard.sdk.sender.Sender` thread sends batches in the background and keeps
what the server does not take in the :class:`~trainyard.sdk.spool.Spool`. ``log_params``
sends at once (params are few), and hands its params to the sender when the server is away.
``finish`` sends what is left within a bounded time.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, SupportsFloat, SupportsIndex

from trainyard.client.artifacts import ArtifactsAPI
from trainyard.client.errors import ServerUnreachableError
from trainyard.client.http import Transport
from trainyard.client.metrics import MetricsAPI, ParamValue
from trainyard.core.errors import ConflictError, InsufficientStorageError, InvalidInputError
from trainyard.core.metrics import check_key, param_text
from trainyard.sdk.buffer import ClosedBuffer, MetricBuffer
from trainyard.sdk.context import RunContext
from trainyard.sdk.sender import Sender, is_transient
from trainyard.sdk.spool import Entry, Spool

__all__ = ["DEFAULT_FINISH_TIMEOUT", "Tracker"]

logger = logging.getLogger("trainyard.sdk")

DEFAULT_FINISH_TIMEOUT = 10.0
DEFAULT_ARTIFACT_TIMEOUT = 60.0


def _param_value(key: str, value: Any) -> ParamValue:
    """The value to send for a param: as given for str/int/float/bool/None (a subclass, such
    as numpy's float64, as its base type), the text of a float that JSON cannot carry
    (NaN, inf). InvalidInputError for any other type, or an over-long value."""
    text = param_text(key, value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else text
    if isinstance(value, int):
        return int(value)
    return text


class Tracker:
    """Logging to one run. Made by :func:`trainyard.init`; ``with`` finishes it at the end.

    Thread-safe: any thread may log. Logging after :meth:`finish` raises ConflictError.
    """

    def __init__(
        self,
        context: RunContext,
        *,
        flush_interval: float = 0.5,
        batch_size: int = 1000,
        request_timeout: float = 10.0,
        params_timeout: float = 5.0,
    ) -> None:
        self.context = context
        self._transport = Transport(context.server_url, token=context.token)
        self._api = MetricsAPI(self._transport)
        self._artifacts = ArtifactsAPI(self._transport)
        self._params_timeout = params_timeout
        buffer = MetricBuffer(batch_size)
        self._buffer: MetricBuffer | ClosedBuffer = buffer
        self._sender = Sender(
            api=self._api,
            run_id=context.run_id,
            server_url=context.server_url,
            buffer=buffer,
            spool=Spool(context.spool_dir, context.server_tag, context.owner),
            flush_interval=flush_interval,
            batch_size=batch_size,
            request_timeout=request_timeout,
        )
        self.finished = False
        self._sender.start()

    @property
    def run_id(self) -> int:
        return self.context.run_id

    @property
    def server_url(self) -> str:
        return self.context.server_url

    def log_metric(self, key: str, value: SupportsFloat, step: SupportsIndex | None = None) -> None:
        """Record ``value`` for metric ``key`` at ``step`` (default: the key's next step, from
        0). Returns at once; the point is sent in the background."""
        self._buffer.add(key, value, step)

    def log_metrics(self, metrics: Mapping[str, Any], step: SupportsIndex | None = None) -> None:
        """Record several metrics at the same ``step`` (default: each key's next step)."""
        self._buffer.add_many(metrics, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's hyper-parameters (str, int, float, bool or None each), sent now.

        Raises InvalidInputError for a bad key or value (nothing is sent), ConflictError when
        a key was logged before with another value (params never change) or the run has
        finished, NotFoundError when the run does not exist. When the server cannot be
        reached, the params are kept and sent later, like metrics.
        """
        if self.finished:
            raise ConflictError(_FINISHED)
        values = {check_key(str(k), "param"): _param_value(str(k), v) for k, v in params.items()}
        if not values:
            return
        entry = Entry(params=values)
        if self._sender.in_outage:
            self._sender.queue_params(entry)  # behind what is already waiting; no blocking
            return
        try:
            self._api.log_params(self.run_id, values, timeout=self._params_timeout)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._sender.queue_params(entry)

    def log_artifact(
        self,
        local_path: str | os.PathLike[str],
        artifact_path: str | None = None,
        *,
        timeout: float = DEFAULT_ARTIFACT_TIMEOUT,
    ) -> list[str]:
        """Upload a file, or every file under a directory (keeping its layout), into the
        run's artifacts (its output directory on the server), under the directory
        ``artifact_path`` if given, like MLflow's ``log_artifact``. Returns the stored paths.

        Blocks until stored: the file may change or go away right after. While the server is
        unreachable it retries for up to ``timeout`` seconds, then raises
        ServerUnreachableError (nothing is dropped silently; the local file is untouched).
        Raises FileNotFoundError for a missing local path, InvalidInputError for a bad
        ``artifact_path``, PayloadTooLargeError past the server's size limit,
        InsufficientStorageError when its disk is full, ConflictError once the run has
        finished.
        """
        if self.finished:
            raise ConflictError(_FINISHED)
        local = Path(local_path)
        if not local.exists():
            raise FileNotFoundError(
                f"cannot log artifact {str(local)!r}: no such file or directory"
            )
        prefix = (artifact_path or "").strip("/")
        if local.is_dir():
            files = sorted(p for p in local.rglob("*") if p.is_file())
            pairs = [(p, "/".join((prefix, *p.relative_to(local).parts)).strip("/")) for p in files]
        else:
            pairs = [(local, f"{prefix}/{local.name}" if prefix else local.name)]
        stored: list[str] = []
        for path, name in pairs:
            stored.append(self._upload(path, name, timeout))
        return stored

    def _upload(self, path: Path, name: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            try:
                return self._artifacts.upload(self.run_id, path, name).path
            except (InsufficientStorageError, InvalidInputError):
                raise  # a full disk or a bad path does not get better by retrying soon
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    if isinstance(exc, ServerUnreachableError):
                        raise ServerUnreachableError(
                            f"artifact {name!r} of run {self.run_id} was not uploaded: "
                            f"{self.server_url} could not be reached for {timeout:g} s "
                            f"({exc}); the file is still at {path}: log it again when the "
                            "server is back"
                        ) from exc
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _end_owned_run(self, timeout: float) -> None:
        """A run ``init(project=, name=)`` created ends with the tracker: ``complete``."""
        try:
            self._transport.request(
                "POST",
                f"/runs/{self.run_id}/finish",
                json={"status": "complete"},
                timeout=max(1.0, min(timeout, 10.0)),
            )
        except Exception as exc:  # the server is gone: the run stays running, say so
            logger.warning(
                "trainyard: run %d could not be marked complete on %s (%s); end it with "
                "POST /api/v1/runs/%d/finish",
                self.run_id,
                self.server_url,
                exc,
                self.run_id,
            )

    def finish(self, timeout: float = DEFAULT_FINISH_TIMEOUT) -> None:
        """Send what is buffered and stop the sender, waiting at most ``timeout`` seconds.
        What could not be sent stays in the spool, and a warning says how much and where.
        Idempotent; called at interpreter exit for the active run."""
        if self.finished:
            return
        self.finished = True
        self._buffer = ClosedBuffer(_FINISHED)
        sender = self._sender
        stopped = sender.stop(timeout)
        spool = sender.spool
        if not spool.empty:
            where = (
                f"in memory only (the spool {spool.path} could not be written), and are lost"
                if spool.in_memory
                else f"in {spool.path}; a later process of this run (a restarted replica) "
                "that calls trainyard.init() sends them"
            )
            logger.warning(
                "trainyard: %d points%s of run %d could not be sent to %s within %g s; they "
                "are kept %s",
                spool.points,
                f" and {spool.params} params" if spool.params else "",
                self.run_id,
                self.server_url,
                timeout,
                where,
            )
        if self.context.owned:
            self._end_owned_run(timeout)
        if not stopped:
            logger.warning(
                "trainyard: the metrics sender of run %d did not stop in time; points it "
                "still holds may be lost",
                self.run_id,
            )
        if sender.dropped:
            logger.warning(
                "trainyard: %d points of run %d were refused by the server and dropped: %s",
                sender.dropped,
                self.run_id,
                sender.dropped_reason,
            )
        if sender.skipped:
            logger.warning(
                "trainyard: %d points of run %d were not sent: invalid keys or values that "
                "are not finite",
                sender.skipped,
                self.run_id,
            )
        spool.close()
        if stopped:
            self._transport.close()

    def detach(self, reason: str) -> None:
        """Make this tracker unusable without sending anything (in a forked child: the
        sender thread and the connections belong to the parent)."""
        self.finished = True
        self._buffer = ClosedBuffer(reason)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "active"
        return f"<Tracker run {self.run_id} at {self.server_url} ({state})>"


_FINISHED = (
    "this trainyard tracker was finished and logs nothing more; call trainyard.init() again "
    "to log to a run"
)
