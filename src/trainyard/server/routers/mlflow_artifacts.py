"""MLflow's artifact proxy, the part the client uses to log and read a run's files:
``PUT``/``GET /api/2.0/mlflow-artifacts/artifacts/{path}`` and
``GET /api/2.0/mlflow-artifacts/artifacts?path=DIR`` (list), also under ``/ajax-api``.

Files live under ``$TRAINYARD_HOME/storage/mlflow-artifacts/``; runs get the artifact URI
``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts``, which the client resolves to these
routes. Storage (safe paths, atomic writes, the size limit, a full disk) is
:mod:`trainyard.storage.artifacts`; errors answer in MLflow's shape (413 and 507 kept).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from trainyard.server.routers.deps import content_length
from trainyard.server.routers.mlflow import MlflowRoute
from trainyard.server.services.artifacts import mlflow_store
from trainyard.server.services.mlflow import not_found

__all__ = ["PREFIXES", "router"]

PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")

router = APIRouter(tags=["mlflow"], route_class=MlflowRoute)


@router.put("/artifacts/{path:path}")
async def upload(request: Request, path: str) -> dict[str, Any]:
    ctx = request.app.state.ctx
    store = await run_in_threadpool(mlflow_store, ctx)
    upload = await run_in_threadpool(
        store.begin, path, ctx.settings.runs.artifact_max_bytes, content_length(request)
    )
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(upload.write, chunk)
        await run_in_threadpool(upload.commit)
    finally:
        upload.abort()  # removes the partial file unless committed
    return {}


@router.get("/artifacts/{path:path}", response_model=None)
def download(request: Request, path: str) -> Response:
    store = mlflow_store(request.app.state.ctx)
    target = store.resolve(path)
    if not target.is_file():
        raise not_found(f"artifact {path!r} not found")
    return FileResponse(target, media_type="application/octet-stream")


@router.get("/artifacts")
def list_artifacts(request: Request, path: str = "") -> dict[str, Any]:
    entries = mlflow_store(request.app.state.ctx).list(path)
    files: list[dict[str, Any]] = []
    for entry in entries:
        name = entry.path.rsplit("/", 1)[-1]
        if entry.is_dir:
            files.append({"path": name, "is_dir": True})
        else:
            files.append({"path": name, "is_dir": False, "file_size": entry.size})
    return {"files": files}
