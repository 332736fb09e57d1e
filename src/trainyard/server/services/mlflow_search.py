"""MLflow search syntax, the part trainyard supports: ``filter`` strings of clauses joined by
``AND`` and ``order_by`` entries, parsed here and applied to runs loaded in memory.

Supported clauses: ``metrics.KEY OP NUMBER`` (OP one of ``= != > >= < <=``),
``params.KEY`` / ``tags.KEY`` with ``= != LIKE ILIKE`` and a quoted string, and
``attributes.NAME`` for ``status``, ``run_name``, ``run_id``, ``user_id`` (strings) and
``start_time``, ``end_time`` (numbers, epoch milliseconds). A key with spaces or dots is
quoted with backticks or double quotes (``metrics.`val acc```). Anything else (``OR``,
``IN``, parentheses, datasets) is refused with :class:`MlflowApiError` naming the part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Clause",
    "MlflowApiError",
    "OrderKey",
    "RunView",
    "matches",
    "parse_filter",
    "parse_order_by",
    "sort_runs",
]


class MlflowApiError(Exception):
    """An error answered in MLflow's shape: ``{"error_code", "message"}``."""

    def __init__(self, error_code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.http_status = http_status

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> MlflowApiError:
    return MlflowApiError("INVALID_PARAMETER_VALUE", message, 400)


_PREFIXES = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "parameters": "param",
    "parameter": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
_STRING_ATTRIBUTES = {"status", "run_name", "run_id", "user_id", "name"}
_NUMBER_ATTRIBUTES = {"start_time", "end_time"}
_NUMBER_OPS = {"=", "!=", ">", ">=", "<", "<="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE"}
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<bq>`[^`]*`)|(?P<op>>=|<=|!=|<>|=|>|<)"""
    r"""|(?P<word>[A-Za-z0-9_\-.:/+]+)|(?P<other>\S))"""
)
_HELP = (
    "supported: clauses such as metrics.acc > 0.5, params.lr = '0.1', tags.team = 'vision', "
    "attributes.status = 'FINISHED' joined by AND"
)


@dataclass(frozen=True)
class Clause:
    kind: str  # metric, param, tag, attribute
    key: str
    op: str
    value: str | float


@dataclass(frozen=True)
class OrderKey:
    kind: str
    key: str
    descending: bool


@dataclass
class RunView:
    """What filters and orderings read of a run."""

    run_id: int
    status: str
    run_name: str
    user_id: str
    start_time: int
    end_time: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:  # pragma: no cover - the pattern matches any char
            break
        kind = m.lastgroup or "other"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    return token[1:-1]


def _identifier(
    tokens: list[tuple[str, str]], i: int, source: str, entity: str
) -> tuple[str, str, int]:
    """(kind, key, next index) for the identifier at ``tokens[i]``."""
    if i >= len(tokens):
        raise invalid(f"unsupported {source}: it ends where a name was expected; {_HELP}")
    kind, text = tokens[i]
    if kind == "bq" or kind == "str":
        prefix, key, i = "attributes", _unquote(text), i + 1
    elif kind == "word":
        head, dot, rest = text.partition(".")
        if not dot:
            prefix, key = "attributes", text
        else:
            prefix, key = head, rest
        i += 1
        if dot and not rest and i < len(tokens) and tokens[i][0] in ("bq", "str"):
            key = _unquote(tokens[i][1])
            i += 1
    else:
        raise invalid(f"unsupported {source} near {text!r}; {_HELP}")
    kind_name = _PREFIXES.get(prefix.lower())
    if kind_name is None:
        raise invalid(
            f"unsupported {source}: {prefix!r} is not metrics, params, tags or attributes; {_HELP}"
        )
    if not key:
        raise invalid(f"unsupported {source}: an empty {kind_name} name; {_HELP}")
    if entity == "experiments":
        if kind_name != "attribute" or key != "name":
            raise invalid(
                f"unsupported experiment filter on {prefix}.{key}: trainyard searches "
                "experiments by name only (name = 'x', name LIKE 'x%')"
            )
    elif kind_name == "attribute":
        key = {"run_uuid": "run_id", "created": "start_time", "Created": "start_time"}.get(key, key)
        if key not in (_STRING_ATTRIBUTES - {"name"}) | _NUMBER_ATTRIBUTES:
            raise invalid(
                f"unsupported attribute {key!r} in {source}: use status, run_name, run_id, "
                "user_id, start_time or end_time"
            )
    return kind_name, key, i


def parse_filter(text: str | None, entity: str = "runs") -> list[Clause]:
    """The clauses of ``text`` (empty: no clause); MlflowApiError naming what is
    unsupported."""
    if not text or not text.strip():
        return []
    source = "filter"
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0
    while True:
        kind, key, i = _identifier(tokens, i, source, entity)
        if i >= len(tokens):
            raise invalid(f"unsupported filter: {key!r} has no comparison; {_HELP}")
        op_kind, op = tokens[i]
        op = op.upper()
        if op == "<>":
            op = "!="
        if op_kind not in ("op", "word") or op not in _NUMBER_OPS | _STRING_OPS:
            raise invalid(f"unsupported filter operator {tokens[i][1]!r} after {key!r}; {_HELP}")
        i += 1
        if i >= len(tokens):
            raise invalid(f"unsupported filter: no value after {key!r} {op}; {_HELP}")
        value_kind, raw = tokens[i]
        i += 1
        numeric = kind == "metric" or (kind == "attribute" and key in _NUMBER_ATTRIBUTES)
        value: str | float
        if numeric:
            if op not in _NUMBER_OPS:
                raise invalid(f"unsupported filter: {op} on the number {key!r}; use = != > >= < <=")
            try:
                value = float(_unquote(raw) if value_kind == "str" else raw)
            except ValueError:
                raise invalid(
                    f"unsupported filter: {key!r} compares with a number, not {raw}"
                ) from None
        else:
            if op not in _STRING_OPS:
                raise invalid(
                    f"unsupported filter: {op} on the string {key!r}; use = != LIKE ILIKE"
                )
            if value_kind != "str":
                raise invalid(
                    f"unsupported filter: the value of {key!r} must be a quoted string, not {raw}"
                )
            value = _unquote(raw)
        clauses.append(Clause(kind, key, op, value))
        if i >= len(tokens):
            return clauses
        joiner = tokens[i][1]
        if joiner.upper() != "AND":
            raise invalid(f"unsupported filter: {joiner!r} (only AND joins clauses); {_HELP}")
        i += 1


def parse_order_by(items: list[str]) -> list[OrderKey]:
    keys: list[OrderKey] = []
    for item in items:
        tokens = _tokens(item)
        kind, key, i = _identifier(tokens, 0, f"order_by {item!r}", "runs")
        descending = False
        if i < len(tokens):
            word = tokens[i][1].upper()
            if word not in ("ASC", "DESC") or i + 1 != len(tokens):
                raise invalid(
                    f"unsupported order_by {item!r}: write NAME, NAME ASC or NAME DESC "
                    "(e.g. metrics.acc DESC)"
                )
            descending = word == "DESC"
        keys.append(OrderKey(kind, key, descending))
    return keys


def _attribute(run: RunView, key: str) -> Any:
    return {
        "status": run.status,
        "run_name": run.run_name,
        "run_id": str(run.run_id),
        "user_id": run.user_id,
        "start_time": run.start_time,
        "end_time": run.end_time,
    }[key]


def _field(run: RunView, kind: str, key: str) -> Any:
    if kind == "metric":
        return run.metrics.get(key)
    if kind == "param":
        return run.params.get(key)
    if kind == "tag":
        return run.tags.get(key)
    return _attribute(run, key)


def like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return (
        re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)
        is not None
    )


def compare(op: str, actual: Any, expected: str | float) -> bool:
    if actual is None:
        return False
    if op == "LIKE" or op == "ILIKE":
        return like(str(expected), str(actual), ignore_case=op == "ILIKE")
    if isinstance(expected, str):
        actual = str(actual)
    result: bool = {
        "=": actual == expected,
        "!=": actual != expected,
        ">": actual > expected,
        ">=": actual >= expected,
        "<": actual < expected,
        "<=": actual <= expected,
    }[op]
    return result


def matches(run: RunView, clauses: list[Clause]) -> bool:
    return all(compare(c.op, _field(run, c.kind, c.key), c.value) for c in clauses)


def sort_runs(runs: list[RunView], keys: list[OrderKey]) -> list[RunView]:
    """Runs ordered by ``keys`` (missing values last either way), then newest start first,
    then by id, as MLflow does."""
    out = sorted(runs, key=lambda r: r.run_id)
    out.sort(key=lambda r: r.start_time, reverse=True)
    for key in reversed(keys):
        present = [r for r in out if _field(r, key.kind, key.key) is not None]
        missing = [r for r in out if _field(r, key.kind, key.key) is None]
        present.sort(key=lambda r: _field(r, key.kind, key.key), reverse=key.descending)
        out = present + missing
    return out
