"""Errors the client adds to :mod:`trainyard.core.errors`, and the mapping of HTTP replies to them.

::

    UserError (core)
    └── ServerUnreachableError   no server answered at the configured URL

Every other error comes from the server's ``{"error": {"code", "message", "fields"}}`` body and is
re-raised as the core class for its ``code`` (see :func:`error_from_response`), so the same
exception class that the server raised reaches the caller.
"""

from __future__ import annotations

from typing import Any

import httpx

from trainyard.core.errors import (
    ConflictError,
    InsufficientStorageError,
    InternalError,
    InvalidInputError,
    ManifestError,
    ManifestIssue,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    TrainyardError,
    UnauthorizedError,
    UnsupportedError,
    UserError,
    error_class_for_code,
)

__all__ = ["ServerUnreachableError", "error_from_response", "unreachable"]


class ServerUnreachableError(UserError):
    """Nothing (or nothing that speaks HTTP) answered at the server URL."""

    code = "server_unreachable"
    http_status = 503


# Used when a reply has no error body (a proxy's HTML page, an old server): the class the status
# would have had on a trainyard server.
_CLASS_FOR_STATUS: dict[int, type[UserError]] = {
    400: InvalidInputError,
    401: UnauthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnsupportedError,
    507: InsufficientStorageError,
}


def unreachable(base_url: str, exc: httpx.TransportError) -> ServerUnreachableError:
    """The error for a request to ``base_url`` that failed below HTTP (refused, reset, timeout)."""
    if isinstance(exc, httpx.ConnectError):
        what = "nothing is listening there"
    elif isinstance(exc, httpx.TimeoutException):
        what = f"no answer in time ({type(exc).__name__})"
    else:
        what = f"the connection failed ({type(exc).__name__}: {exc})"
    return ServerUnreachableError(
        f"cannot reach the trainyard server at {base_url}: {what}. Start one with "
        "`trainyard server`, or point TRAINYARD_SERVER_URL (or --server) at a running server.",
        fields={"url": base_url},
    )


def _manifest_error(fields: dict[str, Any], message: str) -> ManifestError:
    issues: list[ManifestIssue] = []
    for raw in fields.get("issues") or []:
        if not isinstance(raw, dict):
            continue
        issues.append(
            ManifestIssue(
                filename=str(raw.get("filename", "")),
                line=int(raw.get("line", 0) or 0),
                column=int(raw.get("column", 0) or 0),
                path=str(raw.get("path", "")),
                message=str(raw.get("message", "")),
            )
        )
    if not issues:
        # A ManifestError without issues would lose the server's words: keep them as one issue.
        issues.append(ManifestIssue("manifest", 0, 0, "", message))
    return ManifestError(issues)


def error_from_response(response: httpx.Response) -> TrainyardError:
    """The exception an error reply stands for. ``response`` must be read already."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code: str = error["code"]
        message = str(error.get("message") or code)
        raw_fields = error.get("fields")
        fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
        if code == "internal":
            return InternalError(message)
        cls = error_class_for_code(code)
        if cls is ManifestError:
            return _manifest_error(fields, message)
        return cls(message, fields=fields)
    # No trainyard error body: describe the reply as it came.
    text = response.text.strip().replace("\n", " ")[:200]
    where = f"{response.request.method} {response.request.url}"
    if response.status_code >= 500:
        return InternalError(f"{where} failed with HTTP {response.status_code}: {text}")
    fallback = _CLASS_FOR_STATUS.get(response.status_code, UserError)
    return fallback(
        f"{where} failed with HTTP {response.status_code}: {text or response.reason_phrase}",
        fields={"status": response.status_code},
    )
