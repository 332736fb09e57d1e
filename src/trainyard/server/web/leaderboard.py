"""The leaderboard page (DKube's): each user's best run by the project's evaluation metric,
with rank, value, params and links; and, until a metric is set, how to set it (a form that
calls ``PUT /api/v1/projects/{project}/leaderboard``, and the CLI line)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from trainyard.core.errors import NotFoundError
from trainyard.core.run_search import format_number
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import leaderboard as leaderboard_service
from trainyard.server.services.compare import MAX_COMPARE
from trainyard.server.web.queries import project_keys

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_PARAMS_SHOWN = 6  # params shown as chips in a row; the rest are counted


@router.get("/projects/{project}/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request, ctx: Ctx, project: str) -> HTMLResponse:
    from trainyard.server.web.pages import _not_found, _page

    try:
        keys = project_keys(ctx, project)
        board = leaderboard_service.get_leaderboard(ctx, project)
    except NotFoundError as exc:
        return _not_found(request, ctx, exc)
    top = [e.run_id for e in board.entries[:MAX_COMPARE]]
    rows = [
        {
            "entry": e,
            "value": format_number(e.value),
            "params": sorted(e.params.items())[:_PARAMS_SHOWN],
            "more": max(0, len(e.params) - _PARAMS_SHOWN),
            "all_params": " · ".join(f"{k}={v}" for k, v in sorted(e.params.items())),
        }
        for e in board.entries
    ]
    context = {
        "project": project,
        "board": board,
        "setting": keys.project.leaderboard,
        "metric_keys": keys.metrics,
        "rows": rows,
        "compare_link": (
            f"/projects/{project}/compare?" + urlencode([("runs", str(i)) for i in top])
            if len(top) >= 2
            else None
        ),
        "nav": "project",
    }
    return _page(request, ctx, "leaderboard.html", context, project=project)
