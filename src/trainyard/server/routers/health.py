"""``GET /health``."""

from __future__ import annotations

from fastapi import APIRouter

from trainyard import __version__
from trainyard.server.routers.deps import Ctx
from trainyard.server.routers.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
def health(ctx: Ctx) -> HealthResponse:
    return HealthResponse(status="ok", version=__version__, executor=ctx.executor.name)
