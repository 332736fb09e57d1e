"""One entry of ``resources:`` in a trainyard or Kibernetika task, checked field by field."""

from __future__ import annotations

import re
from collections.abc import Callable

from trainyard.core.models import ResourceAmounts, ResourceSpec, RestartPolicy, VolumeSpec
from trainyard.core.quantity import format_cpu, format_memory, parse_cpu, parse_memory
from trainyard.manifest.fields import (
    DNS_LABEL_HINT,
    NUL_MESSAGE,
    Checker,
    Fields,
    describe,
    is_dns_label,
)
from trainyard.manifest.templates import template_problems
from trainyard.manifest.yamlnodes import YMap, YNode, YScalar, YSeq, to_plain

__all__ = [
    "MAX_REPLICAS",
    "NATIVE_RESOURCE_FIELDS",
    "RESOURCE_FIELDS",
    "check_env",
    "check_name",
    "check_relative_path",
    "check_resource",
    "check_template",
]

# Locally every replica gets its own 127.x.y.z address, so one resource has at most 254.
MAX_REPLICAS = 254
KIBERNETIKA_RESOURCE_FIELDS = (
    "name",
    "replicas",
    "command",
    "workDir",
    "images",
    "resources",
    "env",
    "restartPolicy",
    "default_volume_mapping",
    "volumes",
)
NATIVE_RESOURCE_FIELDS = ("backoffLimit", "daemon", "port")
RESOURCE_FIELDS = KIBERNETIKA_RESOURCE_FIELDS + NATIVE_RESOURCE_FIELDS
_RESOURCE_HINTS = {
    "args": "unknown field; append the arguments to 'command' (one shell string)",
    "image": "unknown field; write images: {cpu: IMAGE, gpu: IMAGE}",
    "maxRestartCount": "unknown field; with restartPolicy: OnFailure, use 'backoffLimit'",
    "default_mount_path": "not supported: each volume is mounted at its own mountPath",
    "nodes": "not supported: trainyard places replicas itself",
    "allocationPolicy": "not supported: trainyard places replicas itself",
}
_AMOUNT_FIELDS = ("cpu", "memory", "gpu")
_AMOUNT_HINTS = {"nvidia.com/gpu": "unknown field; write it as 'gpu'"}
_VOLUME_SOURCES = {
    "hostPath": ("path",),
    "nfs": ("server", "path"),
    "gitRepo": ("repository", "revision", "accountId"),
    "s3bucket": ("bucket", "server", "accountId"),
    "emptyDir": ("medium", "sizeLimit"),
}
_VOLUME_FIELDS = ("name", "mountPath", "subPath", "readOnly", "clusterStorage", *_VOLUME_SOURCES)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEADING_VARIABLE = re.compile(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)")


def check_name(fields: Fields, key: str, what: str) -> str | None:
    """A required DNS-1123 label under ``key``."""
    name = fields.string(key, nonempty=True)
    if name is not None and not is_dns_label(name):
        fields.error(key, f"'{name}' is not a valid {what} name: {DNS_LABEL_HINT}")
        return None
    return name


def check_template(checker: Checker, node: YNode | None, path: str, text: str | None) -> None:
    """Report each ``{{ … }}`` in ``text`` that is not a ``{{ .name }}`` placeholder."""
    if node is None or text is None:
        return
    for problem in template_problems(text):
        checker.error(node, path, problem)


def check_relative_path(fields: Fields, key: str, *, allow_variables: bool = False) -> str | None:
    """A path that stays inside the directory it is relative to (no absolute path, no `..` out).

    With ``allow_variables``, a leading ``$VAR`` or ``${VAR}`` (``$SRC_DIR/src``) is allowed and
    the rest is checked; the runtime checks the expanded path again.
    """
    text = fields.string(key)
    if text is None:
        return None
    variable = _LEADING_VARIABLE.match(text) if allow_variables else None
    rest = text[variable.end() :] if variable else text
    if not variable and text.startswith("/"):
        fields.error(key, f"'{text}' must be relative to the task's code directory, not absolute")
        return None
    depth = 0
    for part in rest.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                fields.error(key, f"'{text}' leads outside the task's code directory")
                return None
        elif part not in ("", "."):
            depth += 1
    if "\0" in text:
        fields.error(key, "must not contain a NUL character")
        return None
    return text


def check_env(checker: Checker, fields: Fields, key: str = "env") -> dict[str, str]:
    """``env`` as a mapping (``NAME: value``) or a Kubernetes-style list of ``{name, value}``."""
    node = fields.get(key)
    env: dict[str, str] = {}
    if node is None:
        return env
    path = fields.sub(key)
    entries: list[tuple[str, YNode, str, YNode | None]] = []  # name, where, path, value node
    if isinstance(node, YMap):
        for k, v in node.entries:
            entries.append((k.raw, k, f"{path}.{k.raw}", v))
    elif isinstance(node, YSeq):
        for i, item in enumerate(node.items):
            item_path = f"{path}[{i}]"
            item_fields = checker.fields(
                item,
                item_path,
                ("name", "value"),
                required=("name",),
                hints={"valueFrom": "not supported: give the value itself"},
            )
            if item_fields is None:
                continue
            name_node = item_fields.get("name")
            name = item_fields.text("name")
            if name is None or name_node is None:
                continue
            if name in env or any(e[0] == name for e in entries):
                item_fields.error("name", f"duplicate variable '{name}'")
                continue
            entries.append((name, name_node, f"{item_path}.value", item_fields.node.get("value")))
    else:
        checker.error(node, path, f"expected a mapping of NAME: value, got {describe(node)}")
        return env
    for name, name_node, value_path, value in entries:
        if not _ENV_NAME.match(name):
            checker.error(
                name_node,
                value_path.removesuffix(".value"),
                f"'{name}' is not a valid variable name: use letters, digits and '_', "
                "not starting with a digit",
            )
            continue
        if value is None or (isinstance(value, YScalar) and value.value is None):
            env[name] = ""  # `NAME:` with no value, as Kubernetes reads it
            continue
        if not isinstance(value, YScalar):
            checker.error(value, value_path, f"expected a string, got {describe(value)}")
            continue
        # Numbers and booleans keep the text written: `DEBUG: yes` is "yes", not "True".
        text = value.value if isinstance(value.value, str) else value.raw
        if "\x00" in text:
            checker.error(value, value_path, NUL_MESSAGE)
            continue
        check_template(checker, value, value_path, text)
        env[name] = text
    return env


def _parse_amount(fields: Fields, key: str, parse: Callable[[str], int]) -> int | None:
    node = fields.get(key)
    if node is None:
        return None
    if not isinstance(node, YScalar) or isinstance(node.value, bool):
        fields.error(key, f"expected a quantity such as 100m, 2, 64Mi or 8Gi, got {describe(node)}")
        return None
    text = node.raw if isinstance(node.value, int | float) else str(node.value)
    try:
        return parse(text)
    except ValueError as exc:
        fields.error(key, str(exc) + _quantity_hint(text))
        return None


def _quantity_hint(text: str) -> str:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtTpPeE])(i?)[bB]?\s*", text)
    if not m:
        return ""
    number, unit, binary = m.groups()
    upper = "k" if unit in "kK" and not binary else unit.upper()
    suggestions = (
        [f"{number}{upper}i"] if binary else [f"{number}{upper}", f"{number}{unit.upper()}i"]
    )
    return "; did you mean " + " or ".join(f"'{s}'" for s in suggestions) + "?"


def _parse_gpu(fields: Fields, key: str) -> int | None:
    node = fields.get(key)
    if node is None:
        return None
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            fields.error(key, "must not be negative")
            return None
        return value
    fields.error(key, f"expected a whole number of GPUs, got {describe(node)}")
    return None


def _amounts(fields: Fields, key: str) -> tuple[Fields | None, ResourceAmounts]:
    sub = fields.mapping(key, _AMOUNT_FIELDS, hints=_AMOUNT_HINTS)
    if sub is None:
        return None, ResourceAmounts()
    return sub, ResourceAmounts(
        cpu_millis=_parse_amount(sub, "cpu", parse_cpu),
        memory_bytes=_parse_amount(sub, "memory", parse_memory),
        gpu=_parse_gpu(sub, "gpu"),
    )


def _check_amounts(fields: Fields) -> tuple[ResourceAmounts, ResourceAmounts]:
    """``resources: {requests, limits}``. A limit alone is also the request (Kubernetes)."""
    hint = "unknown field; put it under 'requests' or 'limits'"
    res = fields.mapping(
        "resources", ("requests", "limits"), hints=dict.fromkeys(_AMOUNT_FIELDS, hint)
    )
    if res is None:
        return ResourceAmounts(), ResourceAmounts()
    request_fields, requests = _amounts(res, "requests")
    limit_fields, limits = _amounts(res, "limits")
    show: dict[str, Callable[[int], str]] = {
        "cpu_millis": format_cpu,
        "memory_bytes": format_memory,
        "gpu": str,
    }
    for attr, key in (("cpu_millis", "cpu"), ("memory_bytes", "memory"), ("gpu", "gpu")):
        request, limit = getattr(requests, attr), getattr(limits, attr)
        if limit == 0 and attr != "gpu" and limit_fields is not None:
            limit_fields.error(key, "a limit of 0 leaves the replica nothing; raise or remove it")
        elif request is not None and limit is not None and request > limit:
            assert request_fields is not None
            fmt = show[attr]
            request_fields.error(key, f"request {fmt(request)} is more than the limit {fmt(limit)}")
        elif request is None and limit is not None:
            setattr(requests, attr, limit)
    return requests, limits


def _restart_policy(fields: Fields) -> RestartPolicy:
    text = fields.string("restartPolicy")
    if text is None:
        return RestartPolicy.NEVER
    if text in (p.value for p in RestartPolicy):
        return RestartPolicy(text)
    if text == "Always":
        fields.error(
            "restartPolicy",
            "Always makes no sense for a batch task: a replica that finished would be started "
            "again forever; use Never or OnFailure",
        )
    else:
        close = [p.value for p in RestartPolicy if p.value.lower() == text.lower()]
        hint = f"did you mean '{close[0]}'?" if close else "use Never or OnFailure"
        fields.error("restartPolicy", f"unknown policy '{text}'; {hint}")
    return RestartPolicy.NEVER


def _check_volumes(checker: Checker, fields: Fields) -> list[VolumeSpec]:
    items = fields.sequence("volumes")
    volumes: list[VolumeSpec] = []
    if items is None:
        return volumes
    seen: set[str] = set()
    for path, item in items:
        v = checker.fields(item, path, _VOLUME_FIELDS, required=("name",))
        if v is None:
            continue
        name = check_name(v, "name", "volume")
        if name is not None and name in seen:
            v.error("name", f"duplicate volume '{name}'")
        mount_path = v.string("mountPath", nonempty=True)
        if mount_path is not None and (
            not mount_path.startswith("/") or "/../" in mount_path + "/"
        ):
            v.error("mountPath", f"'{mount_path}' must be an absolute path without '..'")
        sub_path = v.string("subPath")
        if sub_path is not None and ".." in sub_path.split("/"):
            v.error("subPath", f"'{sub_path}' must not contain '..'")
        source: dict[str, object] = {}
        kinds = [k for k in ("clusterStorage", *_VOLUME_SOURCES) if v.has(k)]
        if len(kinds) > 1:
            v.error(kinds[1], f"a volume has one source; it already has '{kinds[0]}'")
        for kind in kinds[:1]:
            if kind == "clusterStorage":
                storage = v.string(kind, nonempty=True)
                if storage is not None:
                    source[kind] = storage
            else:
                sub = v.mapping(kind, _VOLUME_SOURCES[kind])
                node = v.get(kind)
                if sub is not None and node is not None:
                    source[kind] = to_plain(node)
        read_only = v.boolean("readOnly")
        if name is not None:
            seen.add(name)
            volumes.append(
                VolumeSpec(
                    name=name,
                    mount_path=mount_path,
                    sub_path=sub_path,
                    read_only=bool(read_only),
                    source=source,
                )
            )
    return volumes


def _check_command(checker: Checker, r: Fields) -> str | None:
    node = r.get("command")
    if isinstance(node, YSeq):
        r.error(
            "command",
            "expected one shell string, got a list; write it on one line, "
            "e.g. command: python train.py --steps 10",
        )
        return None
    command = r.string("command", nonempty=True)
    check_template(checker, node, r.sub("command"), command)
    return command


def check_resource(checker: Checker, path: str, node: YNode) -> ResourceSpec | None:
    """One resource of a trainyard/Kibernetika task; None if it has problems (all reported)."""
    r = checker.fields(
        node, path, RESOURCE_FIELDS, required=("name", "command"), hints=_RESOURCE_HINTS
    )
    if r is None:
        return None
    before = len(checker.issues)
    name = check_name(r, "name", "resource")
    replicas = r.integer("replicas", minimum=1)
    if replicas is not None and replicas > MAX_REPLICAS:
        r.error("replicas", f"must be ≤ {MAX_REPLICAS} (each replica gets its own address)")
        replicas = None
    command = _check_command(checker, r)
    work_dir = check_relative_path(r, "workDir", allow_variables=True)
    check_template(checker, r.get("workDir"), r.sub("workDir"), work_dir)
    images: dict[str, str] = {}
    img = r.mapping("images", ("cpu", "gpu"))
    if img is not None:
        for kind in ("cpu", "gpu"):
            image = img.string(kind, nonempty=True)
            if image is not None:
                images[kind] = image
    requests, limits = _check_amounts(r)
    env = check_env(checker, r)
    restart_policy = _restart_policy(r)
    backoff_limit = r.integer("backoffLimit", minimum=0)
    daemon = r.boolean("daemon")
    port = r.integer("port", minimum=1, maximum=65535)
    default_volume_mapping = r.boolean("default_volume_mapping")
    volumes = _check_volumes(checker, r)
    if len(checker.issues) > before or name is None or command is None:
        return None
    return ResourceSpec(
        name=name,
        replicas=replicas if replicas is not None else 1,
        command=command,
        work_dir=work_dir or "",
        images=images,
        env=env,
        requests=requests,
        limits=limits,
        restart_policy=restart_policy,
        backoff_limit=backoff_limit if backoff_limit is not None else 3,
        daemon=bool(daemon),
        port=port,
        default_volume_mapping=bool(default_volume_mapping),
        volumes=volumes,
    )
