"""Run artifacts: ``PUT /runs/{id}/artifacts/{path}`` (the raw file as the body),
``GET /runs/{id}/artifacts?path=DIR`` (list) and ``GET /runs/{id}/artifacts/{path}``
(download). See ``docs/api.md``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from trainyard.server.routers.deps import Ctx, content_length
from trainyard.server.services import artifacts as service
from trainyard.storage.artifacts import ArtifactEntry

__all__ = ["ArtifactItem", "ArtifactsResponse", "router"]

router = APIRouter(tags=["artifacts"])


class ArtifactItem(BaseModel):
    path: str  # relative to the run's artifacts, '/'-separated
    is_dir: bool
    size: int | None  # bytes; null for a directory


class ArtifactsResponse(BaseModel):
    items: list[ArtifactItem]


def _item(entry: ArtifactEntry) -> ArtifactItem:
    return ArtifactItem(path=entry.path, is_dir=entry.is_dir, size=entry.size)


@router.put(
    "/runs/{run_id}/artifacts/{path:path}",
    response_model=ArtifactItem,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(ctx: Ctx, run_id: int, path: str, request: Request) -> ArtifactItem:
    # Streamed to disk: memory stays flat, the size limit is enforced while reading.
    upload = await run_in_threadpool(
        service.start_upload, ctx, run_id, path, content_length(request)
    )
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(upload.write, chunk)
        entry = await run_in_threadpool(upload.commit)
    finally:
        upload.abort()  # removes the partial file unless committed
    return _item(entry)


@router.get("/runs/{run_id}/artifacts", response_model=ArtifactsResponse)
def list_artifacts(
    ctx: Ctx,
    run_id: int,
    path: Annotated[str, Query(description="a directory (default: the top)")] = "",
    recursive: bool = False,
) -> ArtifactsResponse:
    entries = service.list_artifacts(ctx, run_id, path, recursive=recursive)
    return ArtifactsResponse(items=[_item(e) for e in entries])


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=FileResponse)
def download(ctx: Ctx, run_id: int, path: str) -> FileResponse:
    target = service.artifact_file(ctx, run_id, path)
    return FileResponse(target, media_type="application/octet-stream", filename=target.name)
