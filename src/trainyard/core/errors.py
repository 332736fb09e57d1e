"""The trainyard exception tree.

::

    TrainyardError                      root of everything we raise on purpose
    ├── UserError                       the caller can fix it; has a stable ``code``; HTTP 4xx
    │   ├── InvalidInputError           400  bad value in a request or on the command line
    │   │   ├── ManifestError           400  malformed manifest; ``issues`` carry line:col
    │   │   └── ParameterError          400  a run parameter is missing or ill-typed
    │   ├── UnauthorizedError           401
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404  an object does not exist (or is not visible)
    │   ├── ConflictError               409  the object exists already, or is in the wrong state
    │   │   └── IllegalTransitionError  409  a run status change that the state machine forbids
    │   ├── PayloadTooLargeError        413  e.g. a code snapshot over the size limit
    │   ├── UnsupportedError            422  understood but cannot be done by this deployment
    │   └── InsufficientStorageError    507  the disk is full
    └── InternalError                   a bug or an unexpected failure of a dependency; HTTP 500

Every ``UserError`` has ``code`` (stable, snake_case), ``message`` (names the object and the fix)
and ``fields`` (machine-readable details). The server sends ``{"error": {code, message, fields}}``
and the client re-raises the same class from ``code`` (see :func:`error_class_for_code`).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConflictError",
    "IllegalTransitionError",
    "InsufficientStorageError",
    "InternalError",
    "InvalidInputError",
    "ManifestError",
    "ManifestIssue",
    "NotFoundError",
    "ParameterError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "TrainyardError",
    "UnauthorizedError",
    "UnsupportedError",
    "UserError",
    "error_class_for_code",
]


class TrainyardError(Exception):
    """Root of every exception trainyard raises on purpose."""


class InternalError(TrainyardError):
    """Something that is not the caller's fault went wrong."""


class UserError(TrainyardError):
    """An error the caller can fix. Subclasses set ``code`` and ``http_status``."""

    code: ClassVar[str] = "user_error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = dict(fields or {})

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class InvalidInputError(UserError):
    code = "invalid_input"
    http_status = 400


class ManifestIssue:
    """One problem in a manifest: where it is and what is wrong."""

    __slots__ = ("column", "filename", "line", "message", "path")

    def __init__(self, filename: str, line: int, column: int, path: str, message: str) -> None:
        self.filename = filename
        self.line = line  # 1-based
        self.column = column  # 1-based
        self.path = path  # e.g. "resources[1].replicas"; "" for the whole document
        self.message = message

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"ManifestIssue({self!s})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class ManifestError(InvalidInputError):
    """A manifest cannot be used. ``issues`` lists every problem found, in document order."""

    code = "invalid_manifest"

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = list(issues)
        message = "\n".join(str(i) for i in self.issues) or "invalid manifest"
        super().__init__(message, fields={"issues": [i.to_dict() for i in self.issues]})


class ParameterError(InvalidInputError):
    code = "invalid_parameter"


class UnauthorizedError(UserError):
    code = "unauthorized"
    http_status = 401


class PermissionDeniedError(UserError):
    code = "permission_denied"
    http_status = 403


class NotFoundError(UserError):
    code = "not_found"
    http_status = 404


class ConflictError(UserError):
    code = "conflict"
    http_status = 409


class IllegalTransitionError(ConflictError):
    code = "illegal_transition"


class PayloadTooLargeError(UserError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedError(UserError):
    code = "unsupported"
    http_status = 422


class InsufficientStorageError(UserError):
    code = "insufficient_storage"
    http_status = 507


def _all_subclasses(cls: type[UserError]) -> list[type[UserError]]:
    out: list[type[UserError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class_for_code(code: str) -> type[UserError]:
    """The ``UserError`` subclass whose ``code`` is ``code`` (``UserError`` when unknown)."""
    for sub in _all_subclasses(UserError):
        if sub.code == code:
            return sub
    return UserError
