"""The MLflow-compatible tracking REST API, mounted at ``/api/2.0/mlflow`` and
``/ajax-api/2.0/mlflow`` (see docs/mlflow.md).

Bodies are read by hand rather than by pydantic so that every refusal, including a
malformed request, answers in MLflow's error shape ``{"error_code", "message"}``
(:class:`MlflowRoute`); the ``/api/v1`` routes keep trainyard's own error format. Endpoints
trainyard does not implement answer 404 ``ENDPOINT_NOT_FOUND``, which the MLflow client
handles for its optional calls.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from trainyard.core.errors import UserError
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import mlflow as service
from trainyard.server.services.mlflow_search import MlflowApiError, invalid

__all__ = ["PREFIXES", "MlflowRoute", "router"]

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
log = logging.getLogger("trainyard.server")


def error_response(exc: Exception) -> JSONResponse | None:
    """The MLflow-shaped reply for ``exc``, or None for an unexpected exception."""
    mapped = service.to_mlflow_error(exc)
    if mapped is None and isinstance(exc, UserError):
        mapped = MlflowApiError(
            "INVALID_PARAMETER_VALUE" if exc.http_status < 500 else "INTERNAL_ERROR",
            exc.message,
            exc.http_status,
        )
    if mapped is None and isinstance(exc, RequestValidationError):
        mapped = invalid(f"invalid request: {exc.errors()[:1]}")
    if mapped is None:
        return None
    return JSONResponse(mapped.body(), status_code=mapped.http_status)


class MlflowRoute(APIRoute):
    """A route whose errors answer in MLflow's shape (an unexpected one as a 500
    ``INTERNAL_ERROR`` with a request id, its traceback logged under that id)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Exception as exc:
                reply = error_response(exc)
                if reply is not None:
                    return reply
                request_id = uuid.uuid4().hex[:12]
                log.exception(
                    "internal error (request id %s) in %s %s",
                    request_id,
                    request.method,
                    request.url.path,
                )
                return JSONResponse(
                    {
                        "error_code": "INTERNAL_ERROR",
                        "message": f"internal error (request id {request_id})",
                    },
                    status_code=500,
                )

        return handler


router = APIRouter(tags=["mlflow"], route_class=MlflowRoute)


async def _args(request: Request) -> dict[str, Any]:
    """The request's arguments: the query string of a GET (repeated keys as lists), the
    JSON object of any other method."""
    if request.method == "GET":
        out: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in out:
                prev = out[key]
                out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                out[key] = value
        return out
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise invalid(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    return data


Args = Annotated[dict[str, Any], Depends(_args)]


def _str(args: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{name}'")
        return None
    if isinstance(value, list):
        value = value[-1]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid(f"parameter '{name}' must be a string, not {type(value).__name__}")
    return str(value)


def _int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise invalid(f"parameter '{name}' must be an integer, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"parameter '{name}' must be an integer, not {value!r}") from None


def _float(value: Any, name: str) -> float:
    """A metric value: a JSON number, or the strings protobuf writes for NaN and infinities
    (refused later as not finite)."""
    if isinstance(value, bool) or value is None:
        raise invalid(f"metric {name!r}: value {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid(f"metric {name!r}: value {value!r} is not a number") from None


def _list(args: dict[str, Any], name: str) -> list[Any]:
    value = args.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _pairs(items: list[Any], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise invalid(f"each {what} must be an object with a string 'key'")
        value = item.get("value", "")
        out[item["key"]] = "" if value is None else str(value)
    return out


def _metric(item: Any) -> service.MetricIn:
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise invalid("each metric must be an object with a string 'key'")
    key = item["key"]
    if "value" not in item:
        raise invalid(f"metric {key!r} has no value")
    step = _int(item, "step")
    return service.MetricIn(
        key=key,
        value=_float(item["value"], key),
        timestamp_ms=_int(item, "timestamp"),
        step=step if step is not None else 0,
    )


def _run_id(args: dict[str, Any]) -> str:
    value = _str(args, "run_id") or _str(args, "run_uuid")
    if value is None:
        raise invalid("Missing value for required parameter 'run_id'")
    return value


# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------


@router.post("/experiments/create")
def create_experiment(ctx: Ctx, args: Args) -> dict[str, Any]:
    name = _str(args, "name", required=True)
    assert name is not None
    return {"experiment_id": service.create_experiment(ctx, name)}


@router.get("/experiments/get")
def get_experiment(ctx: Ctx, args: Args) -> dict[str, Any]:
    eid = _str(args, "experiment_id", required=True)
    assert eid is not None
    return {"experiment": service.get_experiment(ctx, eid)}


@router.get("/experiments/get-by-name")
def get_experiment_by_name(ctx: Ctx, args: Args) -> dict[str, Any]:
    name = _str(args, "experiment_name", required=True)
    assert name is not None
    return {"experiment": service.get_experiment_by_name(ctx, name)}


@router.post("/experiments/search")
@router.get("/experiments/search")
def search_experiments(ctx: Ctx, args: Args) -> dict[str, Any]:
    return service.search_experiments(
        ctx,
        filter_string=_str(args, "filter"),
        view_type=_str(args, "view_type"),
        max_results=_int(args, "max_results"),
        page_token=_str(args, "page_token"),
    )


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(ctx: Ctx, args: Args) -> dict[str, Any]:
    run = service.create_run(
        ctx,
        experiment_id=_str(args, "experiment_id"),
        user_id=_str(args, "user_id") or "",
        run_name=_str(args, "run_name"),
        tags=_pairs(_list(args, "tags"), "tag"),
    )
    return {"run": run}


@router.get("/runs/get")
def get_run(ctx: Ctx, args: Args) -> dict[str, Any]:
    return {"run": service.get_run(ctx, _run_id(args))}


@router.post("/runs/update")
def update_run(ctx: Ctx, args: Args) -> dict[str, Any]:
    info = service.update_run(
        ctx, _run_id(args), status=_str(args, "status"), run_name=_str(args, "run_name")
    )
    return {"run_info": info}


@router.post("/runs/delete")
def delete_run(ctx: Ctx, args: Args) -> dict[str, Any]:
    service.delete_run(ctx, _run_id(args))
    return {}


@router.post("/runs/restore")
def restore_run(ctx: Ctx, args: Args) -> dict[str, Any]:
    service.restore_run(ctx, _run_id(args))
    return {}


@router.post("/runs/search")
@router.get("/runs/search")
def search_runs(ctx: Ctx, args: Args) -> dict[str, Any]:
    return service.search_runs(
        ctx,
        experiment_ids=[str(e) for e in _list(args, "experiment_ids")],
        filter_string=_str(args, "filter"),
        run_view_type=_str(args, "run_view_type"),
        max_results=_int(args, "max_results"),
        order_by=[str(o) for o in _list(args, "order_by")],
        page_token=_str(args, "page_token"),
    )


@router.post("/runs/log-metric")
def log_metric(ctx: Ctx, args: Args) -> dict[str, Any]:
    service.log_batch(ctx, _run_id(args), metrics=[_metric(args)])
    return {}


@router.post("/runs/log-parameter")
def log_param(ctx: Ctx, args: Args) -> dict[str, Any]:
    key = _str(args, "key", required=True)
    assert key is not None
    service.log_batch(ctx, _run_id(args), params={key: _str(args, "value") or ""})
    return {}


@router.post("/runs/set-tag")
def set_tag(ctx: Ctx, args: Args) -> dict[str, Any]:
    key = _str(args, "key", required=True)
    assert key is not None
    service.log_batch(ctx, _run_id(args), tags={key: _str(args, "value") or ""})
    return {}


@router.post("/runs/delete-tag")
def delete_tag(ctx: Ctx, args: Args) -> dict[str, Any]:
    key = _str(args, "key", required=True)
    assert key is not None
    service.delete_tag(ctx, _run_id(args), key)
    return {}


@router.post("/runs/log-batch")
def log_batch(ctx: Ctx, args: Args) -> dict[str, Any]:
    service.log_batch(
        ctx,
        _run_id(args),
        metrics=[_metric(m) for m in _list(args, "metrics")],
        params=_pairs(_list(args, "params"), "param"),
        tags=_pairs(_list(args, "tags"), "tag"),
    )
    return {}


@router.get("/metrics/get-history")
def get_metric_history(ctx: Ctx, args: Args) -> dict[str, Any]:
    key = _str(args, "metric_key", required=True)
    assert key is not None
    return {"metrics": service.get_metric_history(ctx, _run_id(args), key)}


@router.post("/logged-models/search")
def search_logged_models(args: Args) -> dict[str, Any]:
    """Logged models are not supported: none ever exists, so every search is empty (the
    client searches them when it lists a run's artifacts)."""
    return {"models": []}


@router.api_route(
    "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def not_implemented(request: Request, rest: str) -> JSONResponse:
    """Every other MLflow endpoint: 404 ENDPOINT_NOT_FOUND, logged."""
    log.info("MLflow API: %s %s is not implemented by trainyard", request.method, rest)
    return JSONResponse(
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": f"trainyard does not implement the MLflow endpoint {request.method} "
            f"{request.url.path} (see docs/mlflow.md for what it supports)",
        },
        status_code=404,
    )
