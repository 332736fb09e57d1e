"""Searching a project's runs: sort keys, table columns, and what a search answers.

A **sort key** is one of the run columns (``id``, ``task``, ``status``, ``updated``,
``created``), ``metric:<key>`` (the metric's last value; ``metric:<key>:min`` and
``metric:<key>:max`` its smallest and largest) or ``param:<key>`` (a logged param: numbers by
value before text, alphabetically). Runs without the key sort last whichever the order; ties
are broken by run id in the same direction. Metric keys may hold ``:``, so a trailing
``:min``, ``:max`` or ``:last`` is always read as the statistic: the last value of a key
``loss:min`` is ``metric:loss:min:last``.

A **column** of the dashboard is a ``metric:`` or ``param:`` key in the same syntax.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.errors import InvalidInputError
from trainyard.core.metrics import MAX_KEY_LENGTH, check_key
from trainyard.core.status import RunStatus

__all__ = [
    "COLUMN_SORTS",
    "SYSTEM_PREFIX",
    "MetricValues",
    "RunSearchPage",
    "RunSummary",
    "SortKey",
    "UnknownKeyError",
    "format_number",
    "is_system_key",
    "parse_column",
    "parse_sort",
]

# Sortable run columns, in the order the help text lists them.
COLUMN_SORTS = ("id", "task", "status", "updated", "created")
_STATS = ("last", "min", "max")
_STAT_SUFFIXES = tuple(f":{s}" for s in _STATS)
# Resource metrics the supervisor samples (``system/cpu_percent``): never offered as columns,
# compare charts or leaderboard metrics.
SYSTEM_PREFIX = "system/"
_SORT_HELP = (
    "use one of " + ", ".join(COLUMN_SORTS) + ", metric:<key> (its last value; "
    "metric:<key>:min or :max), or param:<key>"
)


class UnknownKeyError(InvalidInputError):
    """A well-formed sort on a metric or param that no run of the project has logged (400,
    ``invalid_input``); the message lists the keys the project has."""


def is_system_key(key: str) -> bool:
    return key.startswith(SYSTEM_PREFIX)


@dataclass(frozen=True)
class SortKey:
    """A parsed sort key or column: ``kind`` is ``column``, ``metric`` or ``param``;
    ``stat`` is ``last``, ``min`` or ``max`` for a metric and ``""`` otherwise."""

    kind: str
    key: str
    stat: str = ""

    @property
    def text(self) -> str:
        """The canonical spelling (``metric:acc`` for the last value)."""
        if self.kind == "column":
            return self.key
        if self.kind == "param":
            return f"param:{self.key}"
        if self.stat == "last" and not self.key.endswith(_STAT_SUFFIXES):
            return f"metric:{self.key}"
        return f"metric:{self.key}:{self.stat}"

    @property
    def label(self) -> str:
        """How a table header names it: the key, with the statistic when not the last."""
        if self.kind == "metric" and self.stat != "last":
            return f"{self.key} ({self.stat})"
        return self.key


def parse_sort(text: str) -> SortKey:
    """``text`` as a :class:`SortKey`; InvalidInputError (400) saying what is accepted."""
    raw = text.strip()
    if raw in COLUMN_SORTS:
        return SortKey("column", raw)
    kind, colon, rest = raw.partition(":")
    if colon and kind in ("metric", "param"):
        return _keyed(kind, rest, text, "sort")
    raise InvalidInputError(
        f"sort: unknown sort {_shown(text)}; {_SORT_HELP}", fields={"sort": _shown(text, 80)}
    )


def parse_column(text: str) -> SortKey:
    """A dashboard column (``metric:<key>[:min|:max]`` or ``param:<key>``)."""
    kind, colon, rest = text.strip().partition(":")
    if colon and kind in ("metric", "param"):
        return _keyed(kind, rest, text, "column")
    raise InvalidInputError(
        f"column {_shown(text)} is not metric:<key> or param:<key>",
        fields={"column": _shown(text, 80)},
    )


def _keyed(kind: str, rest: str, text: str, what: str) -> SortKey:
    stat = ""
    if kind == "metric":
        stat = "last"
        head, colon, tail = rest.rpartition(":")
        if colon and tail in _STATS and head:
            rest, stat = head, tail
    if not rest or len(rest) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"{what} {_shown(text)}: the {kind} key must be 1 to {MAX_KEY_LENGTH} characters",
            fields={what: _shown(text, 80)},
        )
    try:
        check_key(rest, kind)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{what} {_shown(text)}: {exc.message}", fields=exc.fields
        ) from None
    return SortKey(kind, rest, stat)


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValues(_Model):
    """A metric of a run as a search shows it: last value (at the highest step), min, max."""

    last: float
    min: float
    max: float
    step: int  # the step of the last value


class RunSummary(_Model):
    """One run in search results: what tables need, without its spec, manifest or replicas
    (``GET /runs/{id}`` has those)."""

    id: int
    ref: str  # project/task#BUILD_ID
    project: str
    task: str
    build_id: int
    status: RunStatus
    submitted_by: str = ""
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    archived: bool = False
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, MetricValues] = Field(default_factory=dict)


class RunSearchPage(_Model):
    """A page of search results and the total matching."""

    items: list[RunSummary]
    total: int
    limit: int
    offset: int
    sort: str
    order: str


def format_number(value: float) -> str:
    """A metric value for tables: integers as such, otherwise 5 significant digits, with an
    exponent for very large or very small magnitudes (``0.91234``, ``1.5e-05``)."""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e6 or magnitude < 1e-3):
        mantissa, _, exponent = f"{value:.3e}".partition("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    if value == int(value):
        return str(int(value))
    return f"{value:.5g}"
