"""Error replies become the same trainyard exception class the server raised."""

from __future__ import annotations

import httpx
import pytest

from trainyard.client import ServerUnreachableError
from trainyard.client.errors import error_from_response, unreachable
from trainyard.core.errors import (
    ConflictError,
    IllegalTransitionError,
    InternalError,
    ManifestError,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    UnsupportedError,
    UserError,
)

REQUEST = httpx.Request("GET", "http://127.0.0.1:9/api/v1/runs/9")


def reply(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=REQUEST, **kwargs)  # type: ignore[arg-type]


def body(code: str, message: str, fields: dict[str, object] | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (409, "illegal_transition", IllegalTransitionError),
        (400, "invalid_parameter", ParameterError),
        (413, "payload_too_large", PayloadTooLargeError),
        (422, "unsupported", UnsupportedError),
        (400, "some_future_code", UserError),
    ],
)
def test_code_selects_the_class(status: int, code: str, cls: type[UserError]) -> None:
    exc = error_from_response(reply(status, json=body(code, "run 9 not found", {"id": 9})))
    assert type(exc) is cls
    assert isinstance(exc, UserError)
    assert exc.message == "run 9 not found" and exc.fields == {"id": 9}


def test_manifest_error_is_rebuilt_from_its_issues() -> None:
    issues = [
        {
            "filename": "task.yaml",
            "line": 14,
            "column": 7,
            "path": "resources[1].replicas",
            "message": "must be ≥ 1",
        },
        {"filename": "task.yaml", "line": 2, "column": 1, "path": "", "message": "bad"},
    ]
    exc = error_from_response(
        reply(400, json=body("invalid_manifest", "whatever", {"issues": issues}))
    )
    assert isinstance(exc, ManifestError)
    assert [str(i) for i in exc.issues] == [
        "task.yaml:14:7: resources[1].replicas: must be ≥ 1",
        "task.yaml:2:1: bad",
    ]


def test_internal_error_keeps_the_request_id_message() -> None:
    exc = error_from_response(
        reply(500, json=body("internal", "internal error (request id abc)", {"request_id": "abc"}))
    )
    assert isinstance(exc, InternalError) and "request id abc" in str(exc)


def test_reply_without_error_body_is_described() -> None:
    exc = error_from_response(reply(502, text="<html>Bad Gateway</html>"))
    assert isinstance(exc, InternalError)
    assert "HTTP 502" in str(exc) and "/api/v1/runs/9" in str(exc)
    not_found = error_from_response(reply(404, text="nope"))
    assert type(not_found) is NotFoundError and "HTTP 404" in not_found.message


def test_unreachable_names_the_url_and_the_fixes() -> None:
    exc = unreachable("http://127.0.0.1:9", httpx.ConnectError("refused"))
    assert isinstance(exc, ServerUnreachableError) and isinstance(exc, UserError)
    assert exc.code == "server_unreachable"
    assert "http://127.0.0.1:9" in exc.message
    assert "trainyard server" in exc.message and "TRAINYARD_SERVER_URL" in exc.message
