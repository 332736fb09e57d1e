"""``/runs/{run_id}/logs``: pages with a cursor, and the live stream (server-sent events).

The stream polls the executor every ``_POLL`` seconds while the run is active (a log read
is a couple of ``pread`` calls). Each ``log`` event carries the cursor just after its line
(also as the SSE ``id``, so a browser's EventSource resumes by itself through
``Last-Event-ID``); ``status`` is sent first and on every change; ``end`` once the run is
over and every line was sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import LogPageResponse
from trainyard.server.services import logs as service
from trainyard.server.services.context import ServiceContext

router = APIRouter(tags=["logs"])

_POLL = 0.15
_KEEPALIVE = 15.0
_MAX_BYTES = 16 << 20

Replicas = Annotated[list[str], Query(alias="replica", description="repeatable; default all")]


def _line(record: service.LogRecord) -> dict[str, Any]:
    return {
        # The same form as every other time in the API (pydantic's): "...Z".
        "time": record.time.isoformat().replace("+00:00", "Z") if record.time else None,
        "replica": record.replica,
        "text": record.text,
    }


@router.get("/runs/{run_id}/logs", response_model=LogPageResponse)
def read_logs(
    ctx: Ctx,
    run_id: int,
    replica: Replicas = [],  # noqa: B006 - FastAPI copies query defaults
    cursor: str | None = None,
    max_bytes: Annotated[int, Query(ge=1, le=_MAX_BYTES)] = service.DEFAULT_MAX_BYTES,
    tail: Annotated[int | None, Query(ge=0, le=service.MAX_TAIL)] = None,
    before: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_BEFORE_LINES)] = 1000,
) -> dict[str, Any]:
    if before is not None:
        page = service.read_logs_before(
            ctx, run_id, before=before, replicas=replica or None, limit=limit
        )
    else:
        page = service.read_logs(
            ctx, run_id, replicas=replica or None, cursor=cursor, max_bytes=max_bytes, tail=tail
        )
    return {
        "lines": [_line(r) for r in page.lines],
        "cursor": page.encoded_cursor,
        "replicas": page.replicas,
        "complete": page.complete,
        "before_cursor": page.encoded_before,
        "start": page.at_start,
    }


def _sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head + f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _stream(
    ctx: ServiceContext, run_id: int, replicas: list[str] | None, cursor: str | None
) -> AsyncIterator[str]:
    last_status: tuple[str, str] | None = None
    last_sent = time.monotonic()
    while True:
        page = await run_in_threadpool(
            service.read_logs, ctx, run_id, replicas=replicas, cursor=cursor
        )
        parts: list[str] = []
        status = (page.status.value, page.reason)
        if status != last_status:
            parts.append(_sse("status", {"status": status[0], "reason": status[1]}))
            last_status = status
        offsets = dict(page.start)
        for record in page.lines:
            offsets[record.replica] = record.end
            line_cursor = service.encode_cursor(offsets)
            parts.append(_sse("log", {**_line(record), "cursor": line_cursor}, line_cursor))
        cursor = page.encoded_cursor
        if page.complete:
            parts.append(_sse("end", {"status": page.status.value}))
            yield "".join(parts)
            return
        now = time.monotonic()
        if parts:
            yield "".join(parts)
            last_sent = now
        elif now - last_sent >= _KEEPALIVE:
            yield ": keepalive\n\n"
            last_sent = now
        if not page.lines:  # caught up: wait for more; otherwise read the next page now
            await asyncio.sleep(_POLL)


@router.get(
    "/runs/{run_id}/logs/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def stream_logs(
    ctx: Ctx,
    request: Request,
    run_id: int,
    replica: Replicas = [],  # noqa: B006 - FastAPI copies query defaults
    cursor: str | None = None,
) -> StreamingResponse:
    # A reconnecting EventSource sends the id of the last event it got.
    cursor = cursor or request.headers.get("last-event-id") or None
    # Validate before the 200 goes out, so mistakes get a proper 4xx error body.
    service.check_log_request(ctx, run_id, replicas=replica or None, cursor=cursor)
    return StreamingResponse(
        _stream(ctx, run_id, replica or None, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
