"""The replica environment contract: what every replica of a run finds in its environment.

:func:`build_launch_request` turns a resolved :class:`~trainyard.core.models.TaskSpec` into a
:class:`~trainyard.executors.base.LaunchRequest` whose replicas carry their complete
environment, so a backend only has to execute it. The table of variables is in
``docs/env-contract.md``.

Precedence, lowest first: the server's environment (``base_env``, minus ``TRAINYARD_*``
settings, which may hold credentials), the task's ``env``, the resource's ``env``, then the
contract variables. The contract wins for its own names; the user wins for every other name.
Two names are merged rather than replaced: ``PYTHONPATH`` (the run's code and ``lib`` dirs are
prepended to the user's or server's value) and ``PATH`` (the directory of the interpreter
trainyard runs with is prepended, so ``python`` in a command is that interpreter).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from trainyard.core.errors import InvalidInputError
from trainyard.core.models import ResourceSpec, TaskSpec, VolumeSpec
from trainyard.executors.base import LaunchRequest, ReplicaLaunch

__all__ = [
    "CONTRACT_NAMES",
    "DEFAULT_TF_PORT",
    "LEADER_RESOURCES",
    "MASTER_PORT_BASE",
    "build_launch_request",
    "expand_vars",
    "master_port",
    "nodes_variable",
    "replica_address",
    "volume_variable",
]

# Resources whose first replica is rank 0 (PyTorch env:// rendezvous), in this order.
LEADER_RESOURCES = ("master", "chief", "head")
DEFAULT_TF_PORT = 2222
# torch's TCPStore listens on every address (not only MASTER_ADDR), so one fixed port would
# make two concurrent DDP runs collide. Each run gets its own port in 29500..31499, which is
# below Linux's ephemeral range (32768+) so outgoing connections never take it.
MASTER_PORT_BASE = 29500
_MASTER_PORT_SPAN = 2000
_MAX_REPLICAS = 254
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# Names the contract owns: set last, so a user's value for them is ignored.
CONTRACT_NAMES = frozenset(
    {
        "BUILD_ID",
        "REPLICA_INDEX",
        "GPU_COUNT",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "PYTHONPATH",
        "SRC_DIR",
        "LIB_DIR",
        "TRAINING_DIR",
        "TRAINYARD_INPUT_DIR",
        "TRAINYARD_OUTPUT_DIR",
        "AICHOR_INPUT_DATASET",
        "AICHOR_OUTPUT_DATASET",
        "AICHOR_INPUT_PATH",
        "AICHOR_OUTPUT_PATH",
        "MASTER_ADDR",
        "MASTER_PORT",
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "TF_CONFIG",
        "TRAINYARD_RUN_ID",
        "TRAINYARD_RUN_REF",
        "TRAINYARD_PROJECT",
        "TRAINYARD_TASK",
        "TRAINYARD_REPLICA",
        "TRAINYARD_SERVER_URL",
        "TRAINYARD_TOKEN",
        "PYTHONUNBUFFERED",
    }
)

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VAR_RE = re.compile(rf"\$(?:\{{(?P<braced>{_NAME})\}}|(?P<plain>{_NAME}))")


def replica_address(run_id: int, ordinal: int) -> str:
    """The loopback address of replica number ``ordinal`` (0-based, across all resources).

    ``127.(1 + (run_id // 256) % 254).(run_id % 256).(ordinal + 1)``: never ``127.0.x.x`` (the
    server lives on 127.0.0.1) and distinct for every replica of runs whose ids differ modulo
    65024. Raises ``ValueError`` when ``ordinal`` is not in 0..253 or ``run_id`` is negative.
    """
    if run_id < 0:
        raise ValueError(f"run id {run_id} must not be negative")
    if not 0 <= ordinal < _MAX_REPLICAS:
        raise ValueError(
            f"replica ordinal {ordinal} is out of range: a local run has at most "
            f"{_MAX_REPLICAS} replicas (one loopback address each); use fewer replicas"
        )
    return f"127.{1 + (run_id // 256) % 254}.{run_id % 256}.{ordinal + 1}"


def master_port(run_id: int) -> int:
    """``MASTER_PORT`` of a run: ``29500 + run_id % 2000`` (see :data:`MASTER_PORT_BASE`)."""
    return MASTER_PORT_BASE + run_id % _MASTER_PORT_SPAN


def nodes_variable(resource: str) -> str:
    """``worker`` -> ``WORKER_NODES``; ``param-server`` -> ``PARAM_SERVER_NODES``."""
    return resource.upper().replace("-", "_") + "_NODES"


def volume_variable(volume: str) -> str:
    """``data`` -> ``DATA_DIR``; ``my-data`` -> ``MY_DATA_DIR``."""
    return volume.upper().replace("-", "_") + "_DIR"


# A volume without a source is the project source of the same name (Kibernetika). The local
# backend has three: the code snapshot, the run's lib dir and the project's training dir,
# which the contract already exports as SRC_DIR, LIB_DIR and TRAINING_DIR.
_PROJECT_SOURCES = frozenset({"src", "lib", "training"})


def _volume_dirs(resource: ResourceSpec) -> dict[str, str]:
    """``<NAME>_DIR`` for each volume of ``resource``: where its data is on this machine.

    The local backend mounts nothing, so the variable is the real path: a hostPath's ``path``
    joined with ``subPath``. Any other source is refused here, before anything starts.
    """
    dirs: dict[str, str] = {}
    for volume in resource.volumes:
        what = f"resource '{resource.name}' volume '{volume.name}'"
        variable = volume_variable(volume.name)
        fields = {"resource": resource.name, "volume": volume.name}
        if not volume.source and volume.name in _PROJECT_SOURCES:
            continue  # the contract's own SRC_DIR, LIB_DIR or TRAINING_DIR
        kind = _volume_kind(volume)
        if kind != "hostPath":
            raise InvalidInputError(
                f"{what}: its source ({kind}) cannot be provided by the local backend, which "
                "supports hostPath only for now; use hostPath: {path: /absolute/dir} or "
                "remove the volume",
                fields={**fields, "kind": kind},
            )
        if variable in CONTRACT_NAMES:
            raise InvalidInputError(
                f"{what}: its variable ${variable} is already set by the replica environment "
                "contract; rename the volume",
                fields={**fields, "variable": variable},
            )
        dirs[variable] = _host_path(volume, what, fields)
    return dirs


def _volume_kind(volume: VolumeSpec) -> str:
    if not volume.source:
        return "project source"
    return next(iter(volume.source))


def _host_path(volume: VolumeSpec, what: str, fields: dict[str, str]) -> str:
    settings = volume.source["hostPath"]
    path = settings.get("path") if isinstance(settings, Mapping) else None
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInputError(
            f"{what}: hostPath needs an absolute 'path' (got {path!r}); "
            "write hostPath: {path: /absolute/dir}",
            fields=dict(fields),
        )
    sub_path = volume.sub_path or ""
    if sub_path.startswith("/") or ".." in sub_path.split("/"):
        raise InvalidInputError(
            f"{what}: subPath '{sub_path}' must be a relative path without '..'",
            fields={**fields, "sub_path": sub_path},
        )
    return os.path.normpath(os.path.join(path, sub_path)) if sub_path else os.path.normpath(path)


def expand_vars(text: str, env: Mapping[str, str], *, what: str) -> str:
    """Expand ``$NAME`` and ``${NAME}`` from ``env``; an unknown name is an error about
    ``what``."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("plain")
        if name not in env:
            raise InvalidInputError(
                f"{what}: unknown variable ${name}; use a variable of the replica environment "
                "such as $SRC_DIR, or a path relative to the project",
                fields={"variable": name},
            )
        return env[name]

    return _VAR_RE.sub(repl, text)


def _rank_order(spec: TaskSpec) -> list[ResourceSpec]:
    """Resources in rank order: the leader resource first, then the others as written."""
    leader = next(
        (r for name in LEADER_RESOURCES for r in spec.resources if r.name == name),
        spec.resources[0],
    )
    return [leader, *(r for r in spec.resources if r is not leader)]


def _resolve_work_dir(resource: ResourceSpec, env: Mapping[str, str], code_dir: Path) -> str:
    what = f"resource '{resource.name}' workDir '{resource.work_dir}'"
    expanded = expand_vars(resource.work_dir, env, what=what)
    root = code_dir.resolve()
    target = (root / expanded).resolve() if expanded else root
    if not target.is_relative_to(root):
        raise InvalidInputError(
            f"{what} resolves to {target}, outside the run's code directory; "
            "use a path inside the project, e.g. 'src' or '$SRC_DIR/src'",
            fields={"resource": resource.name, "work_dir": resource.work_dir},
        )
    return str(target)


def _gpu_count(resource: ResourceSpec) -> int:
    return max(resource.requests.gpu or 0, resource.limits.gpu or 0)


def _image(resource: ResourceSpec) -> str | None:
    """Kibernetika's images{cpu,gpu}: the gpu image when the resource asks for GPUs."""
    if _gpu_count(resource) and resource.images.get("gpu"):
        return resource.images["gpu"]
    return resource.images.get("cpu") or resource.images.get("gpu")


def _prepend_path(first: str, rest: str | None) -> str:
    if not rest:
        return first
    if rest == first or rest.startswith(first + os.pathsep):
        return rest
    return first + os.pathsep + rest


def check_launchable(spec: TaskSpec) -> None:
    """Raise :class:`InvalidInputError` now for what :func:`build_launch_request` would refuse
    at launch (unknown variables in ``workDir``, a ``workDir`` outside the code, volumes this
    backend cannot provide, too many replicas), so that the server refuses such a run at submit
    instead of starting it into an error. No side effects: it builds in a temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="trainyard-check-") as tmp:
        root = Path(tmp)
        (root / "code").mkdir()
        try:
            build_launch_request(
                run_id=1,
                run_ref=f"check/{spec.name}#1",
                project="check",
                task=spec.name,
                build_id=1,
                spec=spec,
                code_dir=root / "code",
                run_dir=root / "run",
                training_dir=root / "training",
                server_url="http://127.0.0.1",
                base_env={},
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc


def build_launch_request(
    *,
    run_id: int,
    run_ref: str,
    project: str,
    task: str,
    build_id: int,
    spec: TaskSpec,
    code_dir: Path,
    run_dir: Path,
    training_dir: Path,
    server_url: str,
    token: str = "",
    python_executable: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
    stop_grace_seconds: float = 10.0,
    gpus: Mapping[str, list[str]] | None = None,
) -> LaunchRequest:
    """The :class:`LaunchRequest` of a run: every replica with its complete environment.

    ``spec`` must be resolved (placeholders filled). Creates the run's ``lib``, ``input`` and
    ``output`` directories and ``training_dir``. Raises :class:`InvalidInputError` when a
    ``workDir`` names an unknown variable or resolves outside ``code_dir``, or when a volume
    is not one this backend can provide (hostPath only, besides the ``src``, ``lib`` and
    ``training`` project sources), and ``ValueError`` when the run has more replicas than a
    local run can address.
    """
    if not spec.resources:
        raise InvalidInputError(f"task '{spec.name}' has no resources; add at least one")
    # Checked before anything is created: a refused volume leaves no trace.
    volume_dirs = {resource.name: _volume_dirs(resource) for resource in spec.resources}
    code_dir = Path(code_dir).absolute()
    run_dir = Path(run_dir).absolute()
    training_dir = Path(training_dir).absolute()
    lib_dir = run_dir / "lib"
    input_dir = run_dir / "input"
    output_dir = run_dir / "output"
    for d in (lib_dir, input_dir, output_dir, training_dir):
        d.mkdir(parents=True, exist_ok=True)
    gpus = gpus or {}

    # Addresses follow the manifest's order; ranks follow the leader-first order.
    addresses: dict[str, list[str]] = {}
    ordinal = 0
    for resource in spec.resources:
        addresses[resource.name] = []
        for _ in range(resource.replicas):
            addresses[resource.name].append(replica_address(run_id, ordinal))
            ordinal += 1
    ranks: dict[tuple[str, int], int] = {}
    for resource in _rank_order(spec):
        for index in range(resource.replicas):
            ranks[(resource.name, index)] = len(ranks)
    world_size = len(ranks)
    leader = _rank_order(spec)[0]
    port = master_port(run_id)

    shared: dict[str, str] = {
        "BUILD_ID": str(build_id),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "SRC_DIR": str(code_dir),
        "LIB_DIR": str(lib_dir),
        "TRAINING_DIR": str(training_dir),
        "TRAINYARD_INPUT_DIR": str(input_dir),
        "TRAINYARD_OUTPUT_DIR": str(output_dir),
        "AICHOR_INPUT_DATASET": str(input_dir),
        "AICHOR_OUTPUT_DATASET": str(output_dir),
        "AICHOR_INPUT_PATH": str(input_dir),
        "AICHOR_OUTPUT_PATH": str(output_dir),
        "MASTER_ADDR": addresses[leader.name][0],
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": "0",  # one replica per address, i.e. per "node"
        "TRAINYARD_RUN_ID": str(run_id),
        "TRAINYARD_RUN_REF": run_ref,
        "TRAINYARD_PROJECT": project,
        "TRAINYARD_TASK": task,
        "TRAINYARD_SERVER_URL": server_url,
        "TRAINYARD_TOKEN": token,
        "PYTHONUNBUFFERED": "1",
    }
    for name, addrs in addresses.items():
        shared[nodes_variable(name)] = ",".join(addrs)
    cluster = {
        r.name: [f"{a}:{r.port or DEFAULT_TF_PORT}" for a in addresses[r.name]]
        for r in spec.resources
    }

    base = {k: v for k, v in (base_env or {}).items() if not k.startswith("TRAINYARD_")}
    base.pop("TF_CONFIG", None)
    python_dir = str(Path(python_executable).absolute().parent)

    replicas: list[ReplicaLaunch] = []
    for resource in spec.resources:
        user = {**spec.env, **resource.env}
        for index in range(resource.replicas):
            name = f"{resource.name}-{index}"
            replica_gpus = list(gpus.get(name, []))
            env = {**base, **user}
            contract = {**shared, **volume_dirs[resource.name]}
            contract.update(
                {
                    "REPLICA_INDEX": str(index),
                    "RANK": str(ranks[(resource.name, index)]),
                    "TRAINYARD_REPLICA": name,
                    "GPU_COUNT": str(len(replica_gpus)),
                    "CUDA_VISIBLE_DEVICES": ",".join(replica_gpus),
                    "PYTHONPATH": _prepend_path(
                        f"{code_dir}{os.pathsep}{lib_dir}", env.get("PYTHONPATH")
                    ),
                }
            )
            if world_size > 1:
                contract["TF_CONFIG"] = json.dumps(
                    {"cluster": cluster, "task": {"type": resource.name, "index": index}},
                    separators=(",", ":"),
                )
            env.update(contract)
            env["PATH"] = _prepend_path(python_dir, env.get("PATH") or _DEFAULT_PATH)
            replicas.append(
                ReplicaLaunch(
                    name=name,
                    resource=resource.name,
                    index=index,
                    address=addresses[resource.name][index],
                    command=resource.command,
                    work_dir=_resolve_work_dir(resource, env, code_dir),
                    env=env,
                    memory_limit_bytes=resource.limits.memory_bytes,
                    restart_policy=resource.restart_policy.value,
                    backoff_limit=resource.backoff_limit,
                    daemon=resource.is_daemon,
                    gpus=replica_gpus,
                    image=_image(resource),
                    cpu_request_millis=resource.requests.cpu_millis,
                    cpu_limit_millis=resource.limits.cpu_millis,
                    memory_request_bytes=resource.requests.memory_bytes,
                    gpu_count=_gpu_count(resource),
                    shm_size_bytes=resource.shm_size_bytes,
                    gpu_product=resource.gpu_product,
                )
            )
    return LaunchRequest(
        run_id=run_id,
        run_ref=run_ref,
        replicas=replicas,
        code_dir=str(code_dir),
        stop_grace_seconds=stop_grace_seconds,
    )
