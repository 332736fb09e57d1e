"""``POST /snapshots``: upload a code snapshot (a .tar.gz as the raw request body)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from trainyard.server.routers.deps import Ctx, content_length
from trainyard.server.routers.schemas import SnapshotResponse
from trainyard.server.services import snapshots as service

router = APIRouter(tags=["snapshots"])


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
    upload = await run_in_threadpool(service.start_upload, ctx, content_length(request))
    try:
        async for chunk in request.stream():
            if chunk:
                upload.write(chunk)
        info = await run_in_threadpool(service.finish_upload, ctx, upload)
    finally:
        upload.abort()  # removes the partial file unless the upload was committed
    return SnapshotResponse(id=info.id, size=info.size)
