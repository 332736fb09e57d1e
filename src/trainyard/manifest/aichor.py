"""AIchor manifests (``kind: AIchorManifest``): checked fully, mapped onto a ``TaskSpec``.

``spec.types`` depends on the operator. ``kuberay`` has ``Head`` (required), ``Job`` (optional)
and ``Workers`` (a list of named pools, at least one) — AIchor's published example. The
Kubeflow-style operators name single replica types with a ``count``: ``pytorch`` and
``xgboost`` take ``Master`` and ``Worker``; ``tf`` takes ``Chief``, ``PS``, ``Worker``,
``Evaluator``; ``jax`` takes ``Worker``. Every operator needs at least one worker.

Sizes: CPU = ``cpus``; memory = ``cpus × ramRatio`` GiB, exactly; ``shmSizeGB`` in GiB;
requests and limits are both set to those amounts, as AIchor reserves what it is asked for.

For ``kuberay``, the head carries ``spec.command`` (Ray runs the entrypoint on the head); the
worker pools and the job get :data:`RAY_WORKER_COMMAND` / :data:`RAY_JOB_COMMAND`, markers the
Ray backend replaces with its own processes (they are not shell commands). For the other
operators every replica runs ``spec.command``, as the Kubeflow operators do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from trainyard.core.models import (
    AIchorSpec,
    ManifestFormat,
    ResourceAmounts,
    ResourceSpec,
    TaskSpec,
)
from trainyard.manifest.fields import Checker, Fields
from trainyard.manifest.resources import (
    MAX_REPLICAS,
    check_name,
    check_relative_path,
    check_template,
)
from trainyard.manifest.yamlnodes import YMap, YNode, to_plain

__all__ = [
    "AICHOR_FIELDS",
    "DEFAULT_AICHOR_NAME",
    "OPERATORS",
    "RAY_JOB_COMMAND",
    "RAY_WORKER_COMMAND",
    "check_aichor",
    "sanitize_name",
]

RAY_WORKER_COMMAND = "@trainyard/ray-worker"
RAY_JOB_COMMAND = "@trainyard/ray-job"
DEFAULT_AICHOR_NAME = "aichor-experiment"
AICHOR_FIELDS = ("kind", "apiVersion", "name", "builder", "spec")
_SPEC_FIELDS = ("operator", "image", "command", "tensorboard", "storage", "types")
_RESOURCE_FIELDS = ("cpus", "ramRatio", "shmSizeGB", "machineName", "accelerators")
_GIB = 2**30
_API_VERSION = re.compile(r"^0\.2(\.\d+)?$")

# Operator -> (replica type -> resource name), in resource order (rank 0 comes first).
OPERATORS: dict[str, dict[str, str]] = {
    "kuberay": {"Head": "head", "Job": "job", "Workers": ""},
    "pytorch": {"Master": "master", "Worker": "worker"},
    "xgboost": {"Master": "master", "Worker": "worker"},
    "tf": {"Chief": "chief", "PS": "ps", "Worker": "worker", "Evaluator": "evaluator"},
    "jax": {"Worker": "worker"},
}


def sanitize_name(text: str) -> str:
    """``"CPU_Workers 1"`` -> ``"cpu-workers-1"``: a DNS-1123 label, or "" if nothing is left."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")
    return name[:63].rstrip("-")


@dataclass(frozen=True)
class _Sized:
    """What the ``resources`` of one replica type come to."""

    amounts: ResourceAmounts
    shm_bytes: int | None
    product: str | None


def _sized(r: Fields) -> _Sized | None:
    cpus = r.number("cpus", positive=True)
    ratio = r.number("ramRatio", positive=True)
    shm = r.number("shmSizeGB")
    r.string("machineName", nonempty=True)  # a placement hint, for the Ray backend
    gpus, product = 0, None
    acc = r.mapping("accelerators", ("gpu",))
    gpu = acc.mapping("gpu", ("count", "product", "type"), required=("count",)) if acc else None
    if gpu is not None:
        gpus = gpu.integer("count", minimum=0) or 0
        product = gpu.string("product", nonempty=True)
        gpu.string("type", nonempty=True)
    if cpus is None or ratio is None:
        return None
    amounts = ResourceAmounts(
        cpu_millis=_ceil(cpus * 1000),
        memory_bytes=_ceil(cpus * ratio * _GIB),
        gpu=gpus or None,
    )
    # shmSizeGB: 0 (the seed's worker) means "the default /dev/shm".
    return _Sized(amounts, _ceil(shm * _GIB) if shm else None, product)


def _ceil(value: Decimal) -> int:
    whole = int(value)
    return whole if value == whole else whole + 1


def _replica_type(
    checker: Checker,
    node: YNode,
    path: str,
    *,
    name: str,
    command: str,
    image: str,
    extra: tuple[str, ...],
) -> ResourceSpec | None:
    """One entry of ``types``; ``extra`` is ``("count",)``, ``("name", "count")`` or ()."""
    keys = (*extra, "resources")
    t = checker.fields(node, path, keys, required=keys)
    if t is None:
        return None
    count = t.integer("count", minimum=1, maximum=MAX_REPLICAS) if "count" in extra else 1
    r = t.mapping("resources", _RESOURCE_FIELDS, required=("cpus", "ramRatio"))
    sized = _sized(r) if r is not None else None
    if sized is None or count is None:
        return None
    return ResourceSpec(
        name=name,
        replicas=count,
        command=command,
        images={"cpu": image, "gpu": image},
        requests=sized.amounts.model_copy(),
        limits=sized.amounts,
        shm_size_bytes=sized.shm_bytes,
        gpu_product=sized.product,
    )


def _check_storage(checker: Checker, spec: Fields) -> dict[str, object]:
    storage = spec.mapping("storage", ("sharedVolume", "attachExistingPVCs"))
    if storage is None:
        return {}
    shared = storage.mapping(
        "sharedVolume", ("mountPoint", "sizeGB"), required=("mountPoint", "sizeGB")
    )
    if shared is not None:
        _mount_point(shared)
        shared.integer("sizeGB", minimum=1)
    pvcs = storage.sequence("attachExistingPVCs")
    for path, item in pvcs or ():
        pvc = checker.fields(item, path, ("name", "mountPoint"), required=("name", "mountPoint"))
        if pvc is not None:
            check_name(pvc, "name", "volume claim")
            _mount_point(pvc)
    node = spec.get("storage")
    plain = to_plain(node) if node is not None else {}
    return plain if isinstance(plain, dict) else {}


def _mount_point(fields: Fields) -> None:
    mount = fields.string("mountPoint", nonempty=True)
    if mount is not None and (not mount.startswith("/") or ".." in mount.split("/")):
        fields.error("mountPoint", f"'{mount}' must be an absolute path without '..'")


def _check_builder(checker: Checker, root: Fields) -> dict[str, str]:
    b = root.mapping("builder", ("image", "dockerfile", "context"), required=("image",))
    if b is None:
        return {}
    image = b.string("image", nonempty=True)
    dockerfile = check_relative_path(b, "dockerfile")
    context = check_relative_path(b, "context")
    return {
        "image": image or "",
        "dockerfile": dockerfile or "./Dockerfile",
        "context": context or ".",
    }


def _task_name(root: Fields, default_name: str | None) -> str | None:
    if root.has("name"):
        return check_name(root, "name", "task")
    return sanitize_name(default_name or "") or DEFAULT_AICHOR_NAME


def _check_types(
    checker: Checker, spec: Fields, operator: str, command: str, image: str
) -> list[ResourceSpec]:
    types = OPERATORS[operator]
    required = ("Head", "Workers") if operator == "kuberay" else ("Worker",)
    t = spec.mapping("types", tuple(types), required=required)
    if t is None:
        return []
    resources: list[ResourceSpec] = []
    for type_name, resource_name in types.items():
        node = t.get(type_name)
        if node is None:
            continue
        path = t.sub(type_name)
        if type_name == "Workers":
            resources.extend(_ray_workers(checker, t, image))
            continue
        if operator == "kuberay":
            cmd = command if type_name == "Head" else RAY_JOB_COMMAND
            extra: tuple[str, ...] = ()
        else:
            cmd, extra = command, ("count",)
        spec_ = _replica_type(
            checker, node, path, name=resource_name, command=cmd, image=image, extra=extra
        )
        if spec_ is not None:
            resources.append(spec_)
    return resources


def _ray_workers(checker: Checker, types: Fields, image: str) -> list[ResourceSpec]:
    items = types.sequence("Workers")
    if items is None:
        return []
    taken = {"head": "types.Head", "job": "types.Job"}
    out: list[ResourceSpec] = []
    count = 0
    for path, node in items:
        count += 1
        pool_name = ""
        if isinstance(node, YMap):
            # Only the name here: _replica_type checks the keys of the entry.
            pool = Fields(checker, node, path)
            pool_name = pool.string("name", nonempty=True) or ""
            name = sanitize_name(pool_name)
            if pool_name and not name:
                pool.error("name", f"'{pool_name}' has no letters or digits to name a resource")
            elif name in taken:
                pool.error(
                    "name",
                    f"'{pool_name}' becomes the resource name '{name}', already used by "
                    f"{taken[name]}; rename the pool",
                )
            elif name:
                taken[name] = path
        spec = _replica_type(
            checker,
            node,
            path,
            name=sanitize_name(pool_name) or "worker",
            command=RAY_WORKER_COMMAND,
            image=image,
            extra=("name", "count"),
        )
        if spec is not None:
            out.append(spec)
    if count == 0:
        types.error("Workers", "at least one worker pool must be set")
    return out


def check_aichor(checker: Checker, root: YMap, default_name: str | None) -> TaskSpec | None:
    """The whole document as an AIchor manifest; None when it has problems (all reported)."""
    a = checker.fields(root, "", AICHOR_FIELDS, required=("kind", "apiVersion", "builder", "spec"))
    if a is None:
        return None
    api_version = a.text("apiVersion")
    if api_version is not None and not _API_VERSION.match(api_version):
        a.error(
            "apiVersion",
            f"unsupported AIchor apiVersion '{api_version}'; trainyard reads 0.2.x",
        )
    name = _task_name(a, default_name)
    builder = _check_builder(checker, a)
    spec = a.mapping("spec", _SPEC_FIELDS, required=("operator", "image", "command", "types"))
    if spec is None:
        return None
    operator = spec.string("operator", nonempty=True)
    if operator is not None and operator not in OPERATORS:
        spec.error(
            "operator",
            f"unknown operator '{operator}'; use one of: {', '.join(OPERATORS)}",
        )
        operator = None
    image = spec.string("image", nonempty=True) or ""
    command = spec.string("command", nonempty=True)
    check_template(checker, spec.get("command"), spec.sub("command"), command)
    tensorboard = spec.mapping("tensorboard", ("enabled",))
    tensorboard_enabled = bool(tensorboard.boolean("enabled")) if tensorboard else False
    storage = _check_storage(checker, spec)
    resources: list[ResourceSpec] = []
    if operator is not None and command is not None:
        resources = _check_types(checker, spec, operator, command, image)
    if checker.issues or name is None or operator is None:
        return None
    return TaskSpec(
        name=name,
        format=ManifestFormat.AICHOR,
        resources=resources,
        aichor=AIchorSpec(
            api_version=api_version or "",
            operator=operator,
            image=image,
            builder=builder,
            tensorboard_enabled=tensorboard_enabled,
            storage=storage,
        ),
    )
