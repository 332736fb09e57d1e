"""The compare page (DKube's "Compare Models"): 2 to 10 runs of a project side by side.

The server renders the legend (a colour per run), the params table with the rows that differ
marked, and the metric summaries; ``static/compare.js`` draws the overlay charts (reading each
run's history from the tracking API) and the parallel coordinates from the JSON the page
carries. Ids that are not runs of the project are named on the page, never an error page.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from trainyard.core.errors import NotFoundError
from trainyard.core.metrics import MetricSummary
from trainyard.core.models import Run
from trainyard.core.run_search import format_number, is_system_key
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import compare as compare_service
from trainyard.server.services.compare import MAX_COMPARE, MIN_COMPARE, Comparison
from trainyard.server.services.context import ServiceContext

__all__ = ["PALETTE", "router"]

router = APIRouter(include_in_schema=False)

# Ten colours told apart in light and dark themes (Tableau 10), one per compared run.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_MAX_ID = 2**63


def _parse_ids(texts: list[str]) -> tuple[list[int], list[str]]:
    """The run ids asked for (in order, once each) and the texts that are not ids."""
    ids: list[int] = []
    bad: list[str] = []
    for text in texts:
        for part in text.split(","):
            word = part.strip().lstrip("#")
            if not word:
                continue
            if word.isdigit() and int(word) < _MAX_ID:
                if int(word) not in ids:
                    ids.append(int(word))
            else:
                bad.append(part.strip()[:40])
    return ids, bad


def _task_param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _labels(runs: list[Run]) -> list[str]:
    """``#3`` when every run is of one task, else ``train #3``."""
    one_task = len({r.task for r in runs}) == 1
    return [f"#{r.build_id}" if one_task else f"{r.task} #{r.build_id}" for r in runs]


def _param_rows(c: Comparison) -> list[dict[str, Any]]:
    """One row per logged param key, then per task parameter; ``differs`` when the runs do
    not all have the same value (a run without it counts as different)."""
    rows: list[dict[str, Any]] = []
    sources = (
        ("logged", [c.params.get(r.id, {}) for r in c.runs]),
        ("task", [{k: _task_param(v) for k, v in r.parameters.items()} for r in c.runs]),
    )
    for source, per_run in sources:
        for key in sorted({k for values in per_run for k in values}):
            values = [values.get(key) for values in per_run]
            rows.append(
                {"key": key, "source": source, "values": values, "differs": len(set(values)) > 1}
            )
    return rows


def _metric_rows(c: Comparison, keys: list[str]) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        per_run: list[MetricSummary | None] = [c.metrics.get(r.id, {}).get(key) for r in c.runs]
        cells: list[dict[str, str] | None] = []
        for s in per_run:
            if s is None:
                cells.append(None)
                continue
            cells.append(
                {
                    "last": format_number(s.last_value),
                    "min": format_number(s.min_value),
                    "max": format_number(s.max_value),
                    "title": f"last {s.last_value!r} at step {s.last_step} · {s.count} points",
                }
            )
        rows.append({"key": key, "cells": cells})
    return rows


def _view(c: Comparison) -> dict[str, Any]:
    runs = c.runs
    labels = _labels(runs)
    keys = sorted({k for r in runs for k in c.metrics.get(r.id, {}) if not is_system_key(k)})
    # A chart for each key at least two of the runs logged: one run alone overlays nothing.
    counts = {k: sum(1 for r in runs if k in c.metrics.get(r.id, {})) for k in keys}
    chart_keys = [k for k in keys if counts[k] >= 2]
    params = _param_rows(c)
    board = c.project.leaderboard
    # The leaderboard's metric, else the one most of the runs logged (then alphabetically).
    by_use = sorted(keys, key=lambda k: (-counts[k], k))
    default_metric = board.metric if board and board.metric in keys else next(iter(by_use), "")
    legend = [
        {
            "id": r.id,
            "ref": r.ref,
            "label": label,
            "colour": PALETTE[i % len(PALETTE)],
            "status": r.status.value,
            "user": r.submitted_by,
        }
        for i, (r, label) in enumerate(zip(runs, labels, strict=True))
    ]
    data = {
        "project": c.project.name,
        "runs": [
            {
                **item,
                "metrics": {
                    k: {"last": s.last_value, "min": s.min_value, "max": s.max_value}
                    for k, s in c.metrics.get(r.id, {}).items()
                    if not is_system_key(k)
                },
            }
            for item, r in zip(legend, runs, strict=True)
        ],
        "chart_keys": chart_keys,
        "metric_keys": keys,
        "axes": [
            {"key": p["key"], "source": p["source"], "values": p["values"]}
            for p in params
            if p["differs"] or len(params) <= 8
        ],
        "default_metric": default_metric,
        "goal": board.goal.value if board else None,
        "leaderboard_metric": board.metric if board else None,
    }
    return {
        "legend": legend,
        "param_rows": params,
        "differing": sum(1 for p in params if p["differs"]),
        "metric_rows": _metric_rows(c, keys),
        "only_one": [k for k in keys if counts[k] == 1],
        "chart_keys": chart_keys,
        "data": data,
    }


def _without(ids: list[int], drop: int) -> str:
    return "?" + urlencode([("runs", str(i)) for i in ids if i != drop])


def _render(
    request: Request,
    ctx: ServiceContext,
    project: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    from trainyard.server.web.pages import _page

    full = {
        "project": project,
        "min_runs": MIN_COMPARE,
        "max_runs": MAX_COMPARE,
        "nav": "runs",
        "dashboard": f"/projects/{project}/runs",
        **context,
    }
    return _page(request, ctx, "compare.html", full, project=project, status_code=status_code)


@router.get("/projects/{project}/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    ctx: Ctx,
    project: str,
    runs: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
) -> HTMLResponse:
    from trainyard.server.web.pages import _not_found

    ids, bad = _parse_ids(runs)
    if len(ids) > MAX_COMPARE:
        chips = [{"id": i, "remove": _without(ids, i)} for i in ids]
        return _render(
            request,
            ctx,
            project,
            {"too_many": len(ids), "chips": chips, "bad": bad, "missing": [], "view": None},
            status_code=400,
        )
    try:
        comparison = compare_service.compare_runs(ctx, project, ids)
    except NotFoundError as exc:
        return _not_found(request, ctx, exc)
    enough = len(comparison.runs) >= MIN_COMPARE
    context = {
        "too_many": 0,
        "bad": bad,
        "missing": comparison.missing,
        "found": comparison.runs,
        "view": _view(comparison) if enough else None,
    }
    return _render(request, ctx, project, context)
