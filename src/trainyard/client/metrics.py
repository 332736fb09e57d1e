"""Tracking: ``/runs/{id}/metrics`` (log a batch, summaries, one history) and
``/runs/{id}/params``.

See :mod:`trainyard.core.metrics` for the objects and the rules on keys and values. Training
code does not call these directly: the SDK (``trainyard.init``, ``trainyard.log_metric``)
buffers points and sends them in batches from a background thread.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from trainyard.client.http import Transport
from trainyard.core.metrics import MetricPoint, MetricSeries, MetricSummary, check_value

__all__ = ["BatchResult", "MetricsAPI", "ParamValue", "PointTuple", "encode_batch"]

ParamValue = str | int | float | bool | None
# (key, value, step, time): the compact form of a point the SDK buffers.
PointTuple = tuple[str, float, int | None, float | None]


@dataclass(frozen=True)
class BatchResult:
    """What the server did with a batch: ``accepted`` points stored, or none because a batch
    with the same id was stored before (``duplicate``)."""

    accepted: int
    duplicate: bool


def encode_batch(points: Sequence[MetricPoint | PointTuple], batch_id: str | None) -> bytes:
    """The JSON body of a batch. Written by hand: ``json.dumps`` of one dict per point costs
    about twice as much, and the SDK's sender spends that time in the training process.
    InvalidInputError for a value that JSON cannot carry (NaN, infinity)."""
    quoted: dict[str, str] = {}
    parts: list[str] = []
    append = parts.append
    isfinite = math.isfinite
    for point in points:
        if isinstance(point, MetricPoint):
            point = (point.key, point.value, point.step, point.time)
        key, value, step, time = point
        number = float(value)
        if not isfinite(number):
            check_value(key, number, step)  # raises, naming the key and step
        name = quoted.get(key)
        if name is None:
            name = quoted[key] = json.dumps(str(key))
        at = "null" if step is None else int(step)
        when = "null" if time is None else repr(float(time))
        append(f'{{"key":{name},"value":{number!r},"step":{at},"time":{when}}}')
    head = "" if batch_id is None else f'"batch_id":{json.dumps(batch_id)},'
    return f'{{{head}"points":[{",".join(parts)}]}}'.encode()


def _known(model: type[BaseModel], data: Any) -> Any:
    """``data`` without the fields ``model`` does not know (a newer server may send more)."""
    if not isinstance(data, dict):
        return data
    return {k: v for k, v in data.items() if k in model.model_fields}


class MetricsAPI:
    """Metrics and params that runs log about themselves."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def log_batch(
        self,
        run_id: int,
        points: Sequence[MetricPoint | PointTuple],
        *,
        batch_id: str | None = None,
        timeout: float | None = None,
    ) -> BatchResult:
        """Store ``points`` (at most 10,000), all or none. A ``step`` of None is the series'
        next step, a ``time`` of None the server's time. ``batch_id`` (up to 64 characters)
        makes the call idempotent: sending the same batch again stores nothing and answers
        ``duplicate``, so a retry after a lost reply is safe.

        Raises InvalidInputError for a bad key or value or too many points, NotFoundError for
        the run, ConflictError once the run has finished.
        """
        data = self._t.request(
            "POST",
            f"/runs/{int(run_id)}/metrics",
            content=encode_batch(points, batch_id),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        return BatchResult(
            accepted=int(data.get("accepted", 0)), duplicate=bool(data.get("duplicate", False))
        )

    def list(self, run_id: int) -> builtins.list[MetricSummary]:
        """Every metric of the run with its summary (count, last value and step, min, max)."""
        data = self._t.get(f"/runs/{int(run_id)}/metrics")
        return [MetricSummary.model_validate(_known(MetricSummary, item)) for item in data["items"]]

    def history(
        self,
        run_id: int,
        key: str,
        *,
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
        min_time: float | None = None,
        max_time: float | None = None,
        interval: int | None = None,
    ) -> MetricSeries:
        """The points of metric ``key`` by step, those in [min_step, max_step] and
        [min_time, max_time] (epoch seconds) if given; with ``interval`` (seconds), the mean
        of each interval; with ``max_points``, downsampled to at most that many. NotFoundError
        names the run's metrics when it has no ``key``."""
        data = self._t.get(
            f"/runs/{int(run_id)}/metrics/{quote(key, safe='')}",
            params={
                "max_points": max_points,
                "min_step": min_step,
                "max_step": max_step,
                "min_time": min_time,
                "max_time": max_time,
                "interval": interval,
            },
        )
        return MetricSeries.model_validate(_known(MetricSeries, data))

    def log_params(
        self, run_id: int, params: Mapping[str, ParamValue], *, timeout: float | None = None
    ) -> dict[str, str]:
        """Log params; returns them as stored (text). Logging a key again with the same
        value is fine; another value raises ConflictError (params are immutable)."""
        data = self._t.request(
            "POST", f"/runs/{int(run_id)}/params", json={"params": dict(params)}, timeout=timeout
        )
        return {str(k): str(v) for k, v in dict(data.get("params") or {}).items()}

    def params(self, run_id: int) -> dict[str, str]:
        """The run's params, as stored (text)."""
        data = self._t.get(f"/runs/{int(run_id)}/params")
        return {str(k): str(v) for k, v in dict(data.get("params") or {}).items()}
