"""Tracking: ``/runs/{id}/metrics`` (log a batch, list summaries, one history) and
``/runs/{id}/params``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from trainyard.core.errors import InvalidInputError
from trainyard.core.metrics import MetricPoint, MetricSeries, MetricSummary
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import metrics as service

router = APIRouter(tags=["tracking"])
_FIELDS = frozenset({"key", "value", "step", "time"})


class MetricBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_id: str | None = Field(
        default=None,
        description="idempotency key: a batch sent again with the same id is not applied twice",
    )
    points: list[MetricPoint] = Field(description="at most 10,000 points")


class MetricBatchResponse(BaseModel):
    accepted: int
    duplicate: bool


class ParamsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, str | int | float | bool | None]


class ParamsResponse(BaseModel):
    params: dict[str, str]


class MetricsResponse(BaseModel):
    items: list[MetricSummary]


@router.post(
    "/runs/{run_id}/metrics",
    response_model=MetricBatchResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MetricBatchRequest.model_json_schema()}},
        }
    },
)
async def log_metrics(ctx: Ctx, run_id: int, request: Request) -> MetricBatchResponse:
    """Store a batch of points, all or none (body: ``MetricBatchRequest``).

    The body is decoded here rather than validated into one model per point: ingest is the
    hot path, and the service checks every field with the point's index in the message."""
    body = _json_object(await request.body())
    points = body.get("points")
    if not isinstance(points, list):
        raise InvalidInputError('the body needs "points": a list of {key, value, step, time}')
    unknown = set(body) - {"points", "batch_id"}
    if unknown:
        raise InvalidInputError(f"unknown fields: {', '.join(sorted(unknown))}")
    batch_id = body.get("batch_id")
    if batch_id is not None and not isinstance(batch_id, str):
        raise InvalidInputError("batch_id must be a string")
    rows = []
    for i, p in enumerate(points):
        if not isinstance(p, dict) or "key" not in p or "value" not in p or p.keys() - _FIELDS:
            raise InvalidInputError(
                f"points[{i}] must be an object with key and value (and optionally step, "
                "time), nothing else",
                fields={"index": i},
            )
        rows.append((p["key"], p["value"], p.get("step"), p.get("time")))
    accepted, duplicate = await run_in_threadpool(
        service.log_rows, ctx, run_id, rows, batch_id=batch_id
    )
    return MetricBatchResponse(accepted=accepted, duplicate=duplicate)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object")
    return data


@router.get("/runs/{run_id}/metrics", response_model=MetricsResponse)
def list_metrics(ctx: Ctx, run_id: int) -> MetricsResponse:
    """Every metric of the run with its summary (count, last, min, max)."""
    return MetricsResponse(items=service.list_metrics(ctx, run_id))


@router.get("/runs/{run_id}/metrics/{key:path}", response_model=MetricSeries)
def get_history(
    ctx: Ctx,
    run_id: int,
    key: str,
    max_points: int | None = Query(default=None, description="downsample to at most this many"),
    min_step: int | None = None,
    max_step: int | None = None,
    min_time: float | None = Query(
        default=None, description="epoch seconds: only points at or after this time"
    ),
    max_time: float | None = Query(
        default=None, description="epoch seconds: only points at or before this time"
    ),
    interval: int | None = Query(
        default=None,
        description="seconds (1-86400): one point per interval of epoch time, "
        "[largest step, interval start, mean]",
    ),
) -> MetricSeries:
    """One metric's points by step: ``[[step, time, value], ...]``; aggregated per
    ``interval`` (in time order) when it is given."""
    return service.get_history(
        ctx,
        run_id,
        key,
        max_points=max_points,
        min_step=min_step,
        max_step=max_step,
        min_time=min_time,
        max_time=max_time,
        interval=interval,
    )


@router.post("/runs/{run_id}/params", response_model=ParamsResponse)
def log_params(ctx: Ctx, run_id: int, body: ParamsRequest) -> ParamsResponse:
    """Log params (text once stored; a key cannot change value)."""
    params: dict[str, Any] = dict(body.params)
    return ParamsResponse(params=service.log_params(ctx, run_id, params))


@router.get("/runs/{run_id}/params", response_model=ParamsResponse)
def list_params(ctx: Ctx, run_id: int) -> ParamsResponse:
    return ParamsResponse(params=service.list_params(ctx, run_id))
