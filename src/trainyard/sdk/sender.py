"""The sender: a daemon thread that moves points from the buffer to the server.

Every ``flush_interval`` seconds (sooner when a full batch is waiting) it takes the whole
buffer, cuts it into batches of at most ``batch_size`` points, each with a ``batch_id`` that
it keeps for good, and sends them in order. What becomes of a batch depends on the reply:

- accepted, or a duplicate (a retry of a batch the server already has): done;
- a transient failure (no connection, a timeout, HTTP 408, 429 or 5xx): the batch and every
  later one go to the :class:`~trainyard.sdk.spool.Spool`; a warning says once per outage how
  many points are pending and where. The spool is retried, oldest first, with a backoff of
  ``flush_interval`` doubling up to 5 s; new batches join it until it has been delivered;
- any other 4xx can never succeed: the batch is dropped and the server's message logged (once
  per kind of error). A run that is gone (404) or has finished (409) takes nothing more, so
  later batches are dropped without being sent.

Points that the server would refuse are left out before sending, with a warning once per
key: a key it does not accept, or a value that is not finite (NaN, inf).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from trainyard.client.errors import ServerUnreachableError
from trainyard.client.metrics import MetricsAPI, PointTuple
from trainyard.core.errors import (
    ConflictError,
    InternalError,
    InvalidInputError,
    NotFoundError,
    UserError,
)
from trainyard.core.metrics import INT64, check_key
from trainyard.sdk.buffer import MetricBuffer
from trainyard.sdk.spool import Entry, Spool

__all__ = ["Sender", "is_transient"]

logger = logging.getLogger("trainyard.sdk")

MAX_BACKOFF = 5.0


def is_transient(exc: BaseException) -> bool:
    """Whether a failed request may succeed if sent again later."""
    if isinstance(exc, ServerUnreachableError | InternalError):
        return True
    if isinstance(exc, UserError):
        status = exc.fields.get("status")
        return exc.http_status >= 500 or exc.http_status in (408, 429) or status in (408, 429)
    return False


def _reason(exc: BaseException) -> str:
    """A short account of a transient failure: the connection error itself when there is
    one (the client's message also advises on starting a server, which is beside the point
    inside a run)."""
    cause = exc.__cause__
    if isinstance(exc, ServerUnreachableError) and cause is not None:
        return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    return str(exc)


class Sender:
    """Sends what :class:`MetricBuffer` holds (and params queued by the tracker) to the
    server from a daemon thread; see the module docstring for what happens on failure."""

    def __init__(
        self,
        *,
        api: MetricsAPI,
        run_id: int,
        server_url: str,
        buffer: MetricBuffer,
        spool: Spool,
        flush_interval: float = 0.5,
        batch_size: int = 1000,
        request_timeout: float = 10.0,
    ) -> None:
        self._api = api
        self._run_id = run_id
        self._server_url = server_url
        self._buffer = buffer
        self.spool = spool
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._request_timeout = request_timeout
        self._lock = threading.Lock()
        self._params: list[Entry] = []  # params the tracker could not send, for the spool
        self._closing = False
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._main, name="trainyard-sender", daemon=True)
        # Outage state (sender thread only).
        self._outage_since: float | None = None
        self._backoff = flush_interval
        self._retry_at = 0.0
        self._last_failure = ""
        # What could not be sent, and why (sender thread only).
        self._run_closed: str | None = None
        self._valid_keys: set[str] = set()
        self._warned_keys: set[tuple[str, str]] = set()
        self._logged_errors: set[str] = set()
        self.skipped = 0  # points never sent: invalid key or non-finite value
        self.dropped = 0  # points the server refused for good
        self.dropped_reason = ""
        self.sent = 0  # points the server stored

    # ---------------------------------------------------------------- public, any thread

    def start(self) -> None:
        self._thread.start()

    @property
    def in_outage(self) -> bool:
        """Whether earlier requests are waiting in the spool (the server is away)."""
        return self._outage_since is not None

    def queue_params(self, entry: Entry) -> None:
        """Hand over params whose sending failed: they join the spool on the next tick."""
        with self._lock:
            self._params.append(entry)
        self._buffer.wake.set()

    def stop(self, timeout: float) -> bool:
        """Send what is left, for at most ``timeout`` seconds; what cannot be sent by then
        stays in the spool. False if the thread did not end in time."""
        self._deadline = time.monotonic() + max(0.0, timeout)
        self._closing = True
        self._buffer.wake.set()
        if self._thread.is_alive():
            # A request never outlives the deadline; the margin covers writing the spool.
            self._thread.join(max(0.0, timeout) + 5.0)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- the thread

    def _main(self) -> None:
        try:
            self.spool.adopt_orphans()
        except Exception:
            logger.exception("trainyard: could not read the spool files of earlier processes")
        while not self._closing:
            self._buffer.wake.wait(self._flush_interval)
            self._buffer.wake.clear()
            if self._closing:
                break
            try:
                self._tick(final=False)
            except Exception:
                logger.exception("trainyard: the metrics sender failed; it goes on")
        # The last flush: until everything is delivered or the deadline has passed.
        pause = 0.1
        while True:
            try:
                self._tick(final=True)
            except Exception:
                logger.exception("trainyard: the last flush of metrics failed")
            left = self._deadline - time.monotonic()
            if self.spool.empty or left < pause:
                break
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _take(self) -> list[Entry]:
        with self._lock:
            entries, self._params = self._params, []
        points = self._clean(self._buffer.take())
        size = self._batch_size
        entries.extend(Entry(points=points[i : i + size]) for i in range(0, len(points), size))
        return entries

    def _tick(self, *, final: bool) -> None:
        entries = self._take()
        try:
            self._send(entries, final=final)
        except Exception:
            # Whatever went wrong (the spool's disk, a bug), the points are not lost: those
            # taken in this tick are kept, and a batch sent twice is stored once.
            logger.exception("trainyard: sending metrics failed; they are kept for later")
            self.spool.append(entries)

    def _send(self, entries: list[Entry], *, final: bool) -> None:
        deadline = self._deadline if final else None
        if not self.spool.empty:
            if not final and time.monotonic() < self._retry_at:
                self.spool.append(entries)
                return
            if not self.spool.drain(lambda entry: self._deliver(entry, deadline)):
                self.spool.append(entries)
                self._failed()
                return
            self._recovered()
        for i, entry in enumerate(entries):
            if not self._deliver(entry, deadline):
                self.spool.append(entries[i:])
                self._failed()
                return

    # ---------------------------------------------------------------- one request

    def _deliver(self, entry: Entry, deadline: float | None) -> bool:
        """Send one entry: True when done with it (stored, or refused for good), False when
        it should be sent again later."""
        if self._run_closed is not None and entry.params is None:
            self._drop(entry, self._run_closed)
            return True
        timeout = self._request_timeout
        if self._closing:  # finish() is waiting: no request may outlive its deadline
            deadline = self._deadline
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < 0.05:
                self._last_failure = "no time left before exit"
                return False
            timeout = min(timeout, left)
        try:
            if entry.params is not None:
                self._api.log_params(self._run_id, entry.params, timeout=timeout)
            else:
                result = self._api.log_batch(
                    self._run_id, entry.points, batch_id=entry.batch_id, timeout=timeout
                )
                self.sent += result.accepted
        except Exception as exc:
            if is_transient(exc):
                self._last_failure = _reason(exc)
                return False
            self._refused(entry, exc)
        return True

    def _refused(self, entry: Entry, exc: Exception) -> None:
        message = exc.message if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        what = "params" if entry.params is not None else "metrics"
        if entry.params is None and isinstance(exc, NotFoundError | ConflictError):
            # The run is gone or finished: nothing logged to it can ever be stored.
            self._run_closed = message
            logger.error(
                "trainyard: the server refused metrics for run %d: %s. Points logged to it "
                "from now on are dropped",
                self._run_id,
                message,
            )
        else:
            kind = f"{what}:{exc.code if isinstance(exc, UserError) else type(exc).__name__}"
            if kind not in self._logged_errors:
                self._logged_errors.add(kind)
                logger.error(
                    "trainyard: the server refused %s of run %d, which are dropped: %s",
                    what,
                    self._run_id,
                    message,
                )
        self._drop(entry, message)

    def _drop(self, entry: Entry, reason: str) -> None:
        self.dropped += len(entry.points) if entry.params is None else len(entry.params)
        self.dropped_reason = reason

    # ---------------------------------------------------------------- outages

    def _failed(self) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            self._backoff = self._flush_interval
            logger.warning(
                "trainyard: cannot send metrics to %s (%s); %d points%s are kept in %s and "
                "are sent when the server answers again",
                self._server_url,
                self._last_failure,
                self.spool.points,
                f" and {self.spool.params} params" if self.spool.params else "",
                self.spool.path,
            )
        else:
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self._retry_at = now + self._backoff

    def _recovered(self) -> None:
        if self._outage_since is not None:
            logger.info(
                "trainyard: the server at %s answers again after %.1f s; pending points sent",
                self._server_url,
                time.monotonic() - self._outage_since,
            )
        self._outage_since = None
        self._backoff = self._flush_interval
        self._retry_at = 0.0

    # ---------------------------------------------------------------- points the server refuses

    def _clean(self, points: list[PointTuple]) -> list[PointTuple]:
        """``points`` without those the server would refuse (the whole batch with them)."""
        valid = self._valid_keys
        out: list[PointTuple] = []
        append = out.append
        isfinite = math.isfinite
        for point in points:
            key, value, step, _ = point
            if (type(key) is not str or key not in valid) and not self._check_key(key):
                self._skip(key, "key", f"metric key {key!r} is invalid")
            elif not isfinite(value):
                self._skip(key, "value", f"metric {key!r}: value {value} at step {step}")
            elif step is not None and not -INT64 <= step < INT64:
                self._skip(key, "step", f"metric {key!r}: step {step} does not fit in 64 bits")
            else:
                append(point)
        return out

    def _check_key(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            check_key(key)
        except InvalidInputError:
            return False
        self._valid_keys.add(key)
        return True

    def _skip(self, key: object, why: str, message: str) -> None:
        self.skipped += 1
        name = key if isinstance(key, str) else repr(key)
        if (name, why) in self._warned_keys:
            return
        self._warned_keys.add((name, why))
        hint = {
            "key": "use letters, digits and '_', '-', '.', '/', ' ', ':' (at most 250)",
            "value": "the server stores finite numbers only (skip the step, or clip)",
            "step": "use a step between -2**63 and 2**63 - 1",
        }[why]
        logger.warning(
            "trainyard: %s: such points are not sent (%s); this is said once per key",
            message,
            hint,
        )
