"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trainyard.core.errors import InvalidInputError
from trainyard.server.services.context import ServiceContext

__all__ = ["Ctx", "content_length", "get_ctx"]


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def content_length(request: Request) -> int | None:
    """The request's Content-Length (None without one): uploads refuse an oversized body
    before reading it."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError("Content-Length header is not a number") from None
