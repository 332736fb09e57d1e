"""Errors to HTTP: every failure answers ``{"error": {"code", "message", "fields"}}``.

- :class:`UserError` → its ``http_status`` and ``to_dict()``;
- request validation (pydantic) → 400 ``invalid_input`` with ``"<field>: <reason>"``;
- unknown routes and methods → 404 ``not_found`` / 405 ``method_not_allowed``;
- anything else → 500 ``internal`` with a request id, the traceback logged under that id
  (:class:`InternalErrorMiddleware`; the client never sees internals).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainyard.core.errors import UserError

__all__ = ["InternalErrorMiddleware", "error_body", "install_error_handlers"]

log = logging.getLogger("trainyard.server")

_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unsupported",
}


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _user_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UserError)
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        errors.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type"))})
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    # "body.limit" reads worse than "limit": drop the source unless it is all there is.
    where = ".".join(first["loc"][1:]) or ".".join(first["loc"]) or "request"
    return JSONResponse(
        error_body("invalid_input", f"{where}: {first['msg']}", {"errors": errors}),
        status_code=400,
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path} (the API is at /docs)"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UserError, _user_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(InternalErrorMiddleware)


class InternalErrorMiddleware:
    """Turns an unexpected exception into a 500 with a request id, logging the traceback.

    Pure ASGI (no BaseHTTPMiddleware), so streaming responses pass through untouched. If the
    response had already started, the connection is closed by the server as usual.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception(
                "internal error (request id %s) in %s %s",
                request_id,
                scope.get("method"),
                scope.get("path"),
            )
            if started:
                raise
            body = json.dumps(
                error_body(
                    "internal",
                    f"internal error (request id {request_id})",
                    {"request_id": request_id},
                )
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
