"""Tracking: ``/runs/{id}/metrics`` (log a batch, list summaries, one history) and
``/runs/{id}/params``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.metrics import MetricPoint, MetricSeries, MetricSummary
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import metrics as service

router = APIRouter(tags=["tracking"])


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


@router.post("/runs/{run_id}/metrics", response_model=MetricBatchResponse)
def log_metrics(ctx: Ctx, run_id: int, body: MetricBatchRequest) -> MetricBatchResponse:
    """Store a batch of points, all or none."""
    accepted, duplicate = service.log_batch(ctx, run_id, body.points, batch_id=body.batch_id)
    return MetricBatchResponse(accepted=accepted, duplicate=duplicate)


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
) -> MetricSeries:
    """One metric's points by step: ``[[step, time, value], ...]``."""
    return service.get_history(
        ctx, run_id, key, max_points=max_points, min_step=min_step, max_step=max_step
    )


@router.post("/runs/{run_id}/params", response_model=ParamsResponse)
def log_params(ctx: Ctx, run_id: int, body: ParamsRequest) -> ParamsResponse:
    """Log params (text once stored; a key cannot change value)."""
    params: dict[str, Any] = dict(body.params)
    return ParamsResponse(params=service.log_params(ctx, run_id, params))


@router.get("/runs/{run_id}/params", response_model=ParamsResponse)
def list_params(ctx: Ctx, run_id: int) -> ParamsResponse:
    return ParamsResponse(params=service.list_params(ctx, run_id))
