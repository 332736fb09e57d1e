"""The task pages: the list, one task (highlighted YAML, resources, a Run form), a new task.

Runs and tasks are created from the browser through the JSON API (fetch), so the pages only
read. The YAML highlighter is ours and tiny: it escapes every piece before wrapping it in a
span, so a manifest can never inject markup.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from trainyard.core.errors import NotFoundError
from trainyard.core.models import ParameterSpec, ParameterType, ResourceSpec, Task
from trainyard.core.quantity import format_cpu, format_memory
from trainyard.server.routers.deps import Ctx
from trainyard.server.services import projects as project_service
from trainyard.server.services import tasks as task_service
from trainyard.server.services.context import ServiceContext

__all__ = ["highlight_yaml", "router"]

router = APIRouter(include_in_schema=False)

# A mapping key at the start of a line (after indentation and list dashes), then ":" and a
# space or the end of the line; "http://x" is not a key because "//" follows the colon.
_KEY = re.compile(
    r"""^(?P<lead>\s*(?:-\s+)*)(?P<key>"[^"]*"|'[^']*'|[^\s#'"{\[\]},&*!|>%@`-][^#]*?|-[^\s#][^#]*?)"""
    r"""(?P<colon>\s*:)(?=\s|$)"""
)
_DASH = re.compile(r"^(\s*(?:-\s+)+)")
_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "~"}


def _render(
    request: Request, ctx: ServiceContext, name: str, context: dict[str, Any], project: str
) -> HTMLResponse:
    # pages.py includes this router at its end, so it is imported here, when a page is served.
    from trainyard.server.web.pages import _page

    return _page(request, ctx, name, {**context, "nav": "tasks"}, project=project)


def _missing(request: Request, ctx: ServiceContext, exc: NotFoundError) -> HTMLResponse:
    from trainyard.server.web.pages import _not_found

    return _not_found(request, ctx, exc)


def _span(css: str, text: str) -> Markup:
    return Markup('<span class="{}">{}</span>').format(css, text)


def _split_comment(text: str) -> tuple[str, str]:
    """``text`` and its trailing comment: a ``#`` at the start or after a space, outside
    quotes."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and (i == 0 or text[i - 1] in " \t:-[{,"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i], text[i:]
    return text, ""


def _value(text: str) -> Markup:
    """A scalar value: quoted strings, numbers and YAML words coloured; the rest plain."""
    body = text.strip()
    if not body:
        return escape(text)
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'":
        css = "y-s"
    elif _NUMBER.fullmatch(body):
        css = "y-n"
    elif body.lower() in _WORDS:
        css = "y-w"
    else:
        return escape(text)
    return escape(lead) + _span(css, body) + escape(trail)


def _highlight_line(line: str) -> Markup:
    code, comment = _split_comment(line)
    out = Markup()
    match = _KEY.match(code)
    if match:
        out += escape(match["lead"]) + _span("y-k", match["key"]) + escape(match["colon"])
        rest = code[match.end() :]
    else:
        dash = _DASH.match(code)
        lead = dash.group(1) if dash else ""
        out += escape(lead)
        rest = code[len(lead) :]
    out += _value(rest)
    if comment:
        out += _span("y-c", comment)
    return out


def highlight_yaml(text: str) -> list[Markup]:
    """One escaped, highlighted line of markup per line of ``text`` (keys, strings,
    comments, numbers)."""
    return [_highlight_line(line) for line in text.splitlines()]


def _resource_row(res: ResourceSpec) -> dict[str, Any]:
    return {
        "name": res.name,
        "replicas": res.replicas,
        "cpu": format_cpu(res.requests.cpu_millis) if res.requests.cpu_millis else "–",
        "memory": format_memory(res.requests.memory_bytes) if res.requests.memory_bytes else "–",
        "gpu": str(res.requests.gpu or res.limits.gpu or "–"),
        "command": res.command,
        "restart": res.restart_policy.value,
        "daemon": res.is_daemon,
    }


def _shape(task: Task) -> str:
    """``worker×2, ps×1``: what the task launches."""
    return ", ".join(f"{r.name}×{r.replicas}" for r in task.spec.resources)


def _text(value: Any) -> str:
    """A default or choice as the form shows it (lists comma-separated, as they are parsed)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _field(p: ParameterSpec) -> dict[str, Any]:
    """How one parameter is asked for: its input kind, step, default and choices."""
    if p.choices is not None:
        kind = "select"
    elif p.type is ParameterType.BOOL:
        kind = "checkbox"
    elif p.type in (ParameterType.INT, ParameterType.FLOAT):
        kind = "number"
    else:
        kind = "text"
    return {
        "name": p.name,
        "type": p.type.value,
        "kind": kind,
        "step": "1" if p.type is ParameterType.INT else "any",
        "value": _text(p.default),
        "checked": p.default is True,
        "choices": [_text(c) for c in p.choices or []],
        "required": p.required and p.default is None,
        "description": p.description,
    }


@router.get("/projects/{project}/tasks", response_class=HTMLResponse)
def tasks_page(request: Request, ctx: Ctx, project: str) -> HTMLResponse:
    try:
        tasks = task_service.list_tasks(ctx, project)
    except NotFoundError as exc:
        return _missing(request, ctx, exc)
    rows = [{"task": t, "shape": _shape(t)} for t in tasks]
    return _render(request, ctx, "tasks.html", {"project": project, "rows": rows}, project)


@router.get("/projects/{project}/tasks/new", response_class=HTMLResponse)
def new_task_page(request: Request, ctx: Ctx, project: str) -> HTMLResponse:
    try:
        project_service.get_project(ctx, project)
    except NotFoundError as exc:
        return _missing(request, ctx, exc)
    return _render(request, ctx, "task_new.html", {"project": project}, project)


@router.get("/projects/{project}/tasks/{task}", response_class=HTMLResponse)
def task_page(request: Request, ctx: Ctx, project: str, task: str) -> HTMLResponse:
    try:
        info = task_service.get_task(ctx, project, task)
    except NotFoundError as exc:
        return _missing(request, ctx, exc)
    context = {
        "project": project,
        "task": info,
        "yaml_lines": highlight_yaml(info.manifest),
        "resources": [_resource_row(r) for r in info.spec.resources],
        "fields": [_field(p) for p in info.spec.parameters],
    }
    return _render(request, ctx, "task.html", context, project)
