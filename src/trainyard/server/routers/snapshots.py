"""``POST /snapshots``: upload a code snapshot (a .tar.gz as the raw request body)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from trainyard.core.errors import InvalidInputError
from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import SnapshotResponse
from trainyard.server.services import snapshots as service

router = APIRouter(tags=["snapshots"])


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError("Content-Length header is not a number") from None


@router.post(
    "/snapshots",
    response_model=SnapshotResponse,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_snapshot(ctx: Ctx, request: Request) -> SnapshotResponse:
    # Streamed to disk chunk by chunk: memory stays flat whatever the size, and the size
    # limit is enforced while reading, not after.
    upload = await run_in_threadpool(service.start_upload, ctx, _content_length(request))
    try:
        async for chunk in request.stream():
            if chunk:
                upload.write(chunk)
        info = await run_in_threadpool(service.finish_upload, ctx, upload)
    finally:
        upload.abort()  # removes the partial file unless the upload was committed
    return SnapshotResponse(id=info.id, size=info.size)
