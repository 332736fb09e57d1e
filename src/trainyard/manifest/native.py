"""The trainyard task format and the Kibernetika execution template it extends.

One validator reads both. A Kibernetika template (``name`` + ``resources``) is a valid trainyard
manifest; the trainyard additions (task-level ``apiVersion``, ``description``, ``env``,
``timeout``, ``parameters``; per resource ``backoffLimit``, ``daemon``, ``port``) are accepted
in any document, and ``TaskSpec.format`` records which dialect the document is written in.
"""

from __future__ import annotations

import re

from trainyard.core.models import ManifestFormat, ResourceSpec, TaskSpec
from trainyard.manifest.fields import Checker, Fields
from trainyard.manifest.parameters import check_parameters
from trainyard.manifest.resources import MAX_REPLICAS, check_env, check_name, check_resource
from trainyard.manifest.yamlnodes import YMap, YScalar

__all__ = ["API_VERSION", "NATIVE_TASK_FIELDS", "TASK_FIELDS", "check_task", "parse_duration"]

API_VERSION = "trainyard/v1"
KIBERNETIKA_TASK_FIELDS = ("name", "resources")
NATIVE_TASK_FIELDS = ("apiVersion", "description", "env", "timeout", "parameters")
TASK_FIELDS = KIBERNETIKA_TASK_FIELDS + NATIVE_TASK_FIELDS
_AICHOR_HINT = "unknown field; an AIchor manifest starts with `kind: AIchorManifest`"
_TASK_HINTS = {
    "kind": "only `kind: AIchorManifest` is understood; leave `kind` out of a trainyard task",
    "spec": _AICHOR_HINT,
    "builder": _AICHOR_HINT,
    "types": _AICHOR_HINT,
}
_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")


def parse_duration(value: object) -> int:
    """Seconds from ``300``, ``"300"``, ``"300s"``, ``"5m"``, ``"1h30m"``. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 300, 300s, 5m or 1h, got {value}")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip()
        if re.fullmatch(r"[0-9]+", text):
            seconds = int(text)
        else:
            m = _DURATION.match(text)
            if not text or not m:
                raise ValueError(
                    f"'{value}' is not a duration: write seconds (300) or 300s, 5m, 1h, 1h30m"
                )
            h, mins, s = (int(g) if g else 0 for g in m.groups())
            seconds = h * 3600 + mins * 60 + s
    if seconds <= 0:
        raise ValueError("must be greater than 0 seconds")
    return seconds


def _check_timeout(t: Fields) -> int | None:
    node = t.get("timeout")
    if node is None:
        return None
    if not isinstance(node, YScalar) or isinstance(node.value, float):
        t.error("timeout", "expected a whole number of seconds or a duration such as 5m")
        return None
    try:
        return parse_duration(node.value)
    except ValueError as exc:
        t.error("timeout", str(exc))
        return None


def check_task(checker: Checker, root: YMap, fmt: ManifestFormat) -> TaskSpec | None:
    """The whole document as a task; None when it has problems (all reported to ``checker``)."""
    t = checker.fields(root, "", TASK_FIELDS, required=("name", "resources"), hints=_TASK_HINTS)
    if t is None:
        return None
    name = check_name(t, "name", "task")
    api_version = t.string("apiVersion")
    if api_version is not None and api_version != API_VERSION:
        t.error(
            "apiVersion",
            f"unsupported apiVersion '{api_version}'; this trainyard reads {API_VERSION}",
        )
    description = t.string("description") or ""
    env = check_env(checker, t)
    timeout = _check_timeout(t)
    parameters = check_parameters(checker, t)
    resources: list[ResourceSpec] = []
    first_line: dict[str, int] = {}
    items = t.sequence("resources")
    if items is not None:
        count = 0
        for path, node in items:
            count += 1
            spec = check_resource(checker, path, node)
            if spec is None:
                continue
            if spec.name in first_line:
                checker.error(
                    _name_node(node),
                    f"{path}.name",
                    f"duplicate resource name '{spec.name}' (first at line "
                    f"{first_line[spec.name]}); give each resource its own name",
                )
                continue
            first_line[spec.name] = _name_node(node).line
            resources.append(spec)
        if count == 0:
            t.error("resources", "a task needs at least one resource")
        total = sum(spec.replicas for spec in resources)
        if total > MAX_REPLICAS:
            t.error(
                "resources",
                f"{total} replicas in all; a run has at most {MAX_REPLICAS} "
                "(each replica gets its own address)",
            )
    if checker.issues or name is None:
        return None
    return TaskSpec(
        name=name,
        format=fmt,
        resources=resources,
        env=env,
        timeout_seconds=timeout,
        parameters=parameters,
        description=description,
    )


def _name_node(node: object) -> YScalar | YMap:
    assert isinstance(node, YMap)
    value = node.get("name")
    return value if isinstance(value, YScalar) else node
