"""MLflow's artifact proxy, the part the client uses to log and read a run's files:
``PUT``/``GET /api/2.0/mlflow-artifacts/artifacts/{path}`` and
``GET /api/2.0/mlflow-artifacts/artifacts?path=DIR`` (list), also under ``/ajax-api``.

Files live under ``$TRAINYARD_HOME/storage/mlflow-artifacts/``; runs get the artifact URI
``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts``, which the client resolves to these
routes. Paths are relative, made of plain segments (no ``..``, ``.``, empty segment,
backslash or NUL), and must stay inside that directory once symlinks are resolved.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from trainyard.core.settings import Settings
from trainyard.server.routers.mlflow import MlflowRoute
from trainyard.server.services.mlflow import not_found
from trainyard.server.services.mlflow_search import invalid

__all__ = ["PREFIXES", "artifact_root", "resolve", "router"]

PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
_CHUNK = 1 << 20

router = APIRouter(tags=["mlflow"], route_class=MlflowRoute)


def artifact_root(settings: Settings) -> Path:
    return settings.storage_dir / "mlflow-artifacts"


def resolve(root: Path, path: str) -> Path:
    """``root``/``path`` after checking that ``path`` is a safe relative path and that the
    result, symlinks resolved, stays inside ``root``; INVALID_PARAMETER_VALUE otherwise."""
    parts = path.strip("/").split("/") if path.strip("/") else []
    if (
        path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise invalid(f"invalid artifact path {path!r}: use a relative path without '..'")
    real_root = os.path.realpath(root)
    target = root.joinpath(*parts)
    real = os.path.realpath(target)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise invalid(f"invalid artifact path {path!r}: it leaves the artifact store")
    return target


def _root(request: Request) -> Path:
    settings: Settings = request.app.state.ctx.settings
    root = artifact_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    return root


@router.put("/artifacts/{path:path}")
async def upload(request: Request, path: str) -> dict[str, Any]:
    root = _root(request)
    target = resolve(root, path)
    if not path.strip("/"):
        raise invalid("an artifact upload needs a file path")
    await anyio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
    resolve(root, path)  # again, now that the directories exist
    if target.is_dir():
        raise invalid(f"artifact path {path!r} is a directory")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    f = await anyio.to_thread.run_sync(tmp.open, "wb")
    try:
        try:
            async for chunk in request.stream():
                await anyio.to_thread.run_sync(f.write, chunk)
        finally:
            await anyio.to_thread.run_sync(f.close)
        await anyio.to_thread.run_sync(os.replace, tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {}


@router.get("/artifacts/{path:path}", response_model=None)
def download(request: Request, path: str) -> Response:
    target = resolve(_root(request), path)
    if not target.is_file():
        raise not_found(f"artifact {path!r} not found")
    return FileResponse(target, media_type="application/octet-stream")


@router.get("/artifacts")
def list_artifacts(request: Request, path: str = "") -> dict[str, Any]:
    target = resolve(_root(request), path)
    if target.is_file():
        return {
            "files": [{"path": target.name, "is_dir": False, "file_size": target.stat().st_size}]
        }
    if not target.is_dir():
        return {"files": []}
    files = []
    for entry in sorted(target.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") and entry.name.endswith(".part"):
            continue
        if entry.is_dir():
            files.append({"path": entry.name, "is_dir": True})
        else:
            files.append({"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size})
    return {"files": files}
