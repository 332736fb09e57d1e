"""AIchor manifests: every operator's types, exact sizes, names, and the problems reported."""

from __future__ import annotations

import textwrap

import pytest

from trainyard.core.errors import ManifestError
from trainyard.core.models import ManifestFormat, ResourceAmounts
from trainyard.manifest import RAY_JOB_COMMAND, RAY_WORKER_COMMAND, load_manifest

GIB = 2**30
HEADER = """
kind: AIchorManifest
apiVersion: 0.2.1
builder:
  image: repo/image
spec:
  image: repo/image
  command: python train.py --epochs {{ .epochs }}
"""


def _manifest(body: str) -> str:
    return textwrap.dedent(HEADER).lstrip() + textwrap.indent(textwrap.dedent(body), "  ")


def _errors(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(text, "manifest.yaml")
    return info.value.message.splitlines()


def test_kuberay_with_job_machine_name_and_several_pools() -> None:
    spec = load_manifest(
        _manifest(
            """
            operator: kuberay
            types:
              Head:
                resources: {cpus: 4, ramRatio: 2, machineName: dgx}
              Job:
                resources: {cpus: 1, ramRatio: 1}
              Workers:
                - name: CPU_Pool
                  count: 3
                  resources: {cpus: 0.5, ramRatio: 3, shmSizeGB: 1.5}
                - name: gpu-pool
                  count: 1
                  resources:
                    cpus: 8
                    ramRatio: 4
                    accelerators: {gpu: {count: 1, product: NVIDIA-A100, type: gpu}}
            """
        ),
        default_name="my repo",
    )
    assert spec.name == "my-repo"
    assert [(r.name, r.replicas, r.command) for r in spec.resources] == [
        ("head", 1, "python train.py --epochs {{ .epochs }}"),
        ("job", 1, RAY_JOB_COMMAND),
        ("cpu-pool", 3, RAY_WORKER_COMMAND),
        ("gpu-pool", 1, RAY_WORKER_COMMAND),
    ]
    cpu_pool, gpu_pool = spec.resources[2], spec.resources[3]
    # 0.5 cpus × 3 GiB per cpu = exactly 1.5 GiB.
    assert cpu_pool.limits == ResourceAmounts(cpu_millis=500, memory_bytes=3 * GIB // 2)
    assert cpu_pool.requests == cpu_pool.limits
    assert cpu_pool.shm_size_bytes == 3 * GIB // 2
    assert gpu_pool.limits == ResourceAmounts(cpu_millis=8000, memory_bytes=32 * GIB, gpu=1)
    assert gpu_pool.gpu_product == "NVIDIA-A100"


@pytest.mark.parametrize(
    ("operator", "types", "expected"),
    [
        (
            "pytorch",
            "Master: {count: 1, %R}\nWorker: {count: 2, %R}",
            [("master", 1), ("worker", 2)],
        ),
        (
            "xgboost",
            "Worker: {count: 2, %R}\nMaster: {count: 1, %R}",
            [("master", 1), ("worker", 2)],
        ),
        ("jax", "Worker: {count: 4, %R}", [("worker", 4)]),
        (
            "tf",
            "Worker: {count: 2, %R}\nPS: {count: 1, %R}\nChief: {count: 1, %R}",
            [("chief", 1), ("ps", 1), ("worker", 2)],
        ),
    ],
)
def test_kubeflow_style_operators_run_the_command_everywhere(
    operator: str, types: str, expected: list[tuple[str, int]]
) -> None:
    types = types.replace("%R", "resources: {cpus: 1, ramRatio: 1}")
    body = f"operator: {operator}\ntypes:\n" + textwrap.indent(types, "  ") + "\n"
    spec = load_manifest(_manifest(body))
    assert spec.aichor is not None and spec.aichor.operator == operator
    assert [(r.name, r.replicas) for r in spec.resources] == expected
    assert {r.command for r in spec.resources} == {"python train.py --epochs {{ .epochs }}"}
    assert spec.format is ManifestFormat.AICHOR


def test_explicit_name_wins_and_must_be_valid() -> None:
    text = _manifest(
        "operator: jax\ntypes: {Worker: {count: 1, resources: {cpus: 1, ramRatio: 1}}}\n"
    )
    assert load_manifest("name: mnist\n" + text, default_name="ignored").name == "mnist"
    assert _errors("name: MNIST\n" + text) == [
        "manifest.yaml:1:7: name: 'MNIST' is not a valid task name: use at most 63 lowercase "
        "letters, digits and '-', starting and ending with a letter or digit"
    ]


@pytest.mark.parametrize(
    ("default", "name"),
    [(None, "aichor-experiment"), ("___", "aichor-experiment"), ("Exp.2", "exp-2")],
)
def test_default_names(default: str | None, name: str) -> None:
    text = _manifest(
        "operator: jax\ntypes: {Worker: {count: 1, resources: {cpus: 1, ramRatio: 1}}}\n"
    )
    assert load_manifest(text, default_name=default).name == name


def test_kuberay_needs_head_and_workers() -> None:
    assert _errors(
        _manifest("operator: kuberay\ntypes:\n  Job: {resources: {cpus: 1, ramRatio: 1}}\n")
    ) == [
        "manifest.yaml:10:5: spec.types: missing required field 'Head'",
        "manifest.yaml:10:5: spec.types: missing required field 'Workers'",
    ]


def test_kuberay_needs_at_least_one_pool() -> None:
    body = "operator: kuberay\ntypes:\n  Head: {resources: {cpus: 1, ramRatio: 1}}\n  Workers: []\n"
    assert _errors(_manifest(body)) == [
        "manifest.yaml:11:14: spec.types.Workers: at least one worker pool must be set"
    ]


def test_problems_across_the_whole_manifest() -> None:
    text = """
kind: AIchorManifest
apiVersion: 0.3.0
builder:
  dockerfile: /etc/Dockerfile
spec:
  operator: kuberay
  image: img
  command: python train.py
  tensorboard: {enabled: maybe}
  storage:
    sharedVolume: {mountPoint: shared, sizeGB: 0}
    attachExistingPVCs:
      - {name: Data}
  types:
    Head:
      count: 2
      resources: {cpus: -1, ramRatio: 2, accelerators: {gpu: {product: V100}}}
    Workers:
      - name: workers
        count: 0
        resources: {cpus: 1, ramRatio: 1, machineName: ""}
      - name: Workers
        count: 1
        resources: {cpus: 1, ramRatio: 1, shmSizeGB: -2}
    Worker: {count: 1}
"""
    assert _errors(text.lstrip()) == [
        "manifest.yaml:2:13: apiVersion: unsupported AIchor apiVersion '0.3.0'; trainyard reads"
        " 0.2.x",
        "manifest.yaml:4:3: builder: missing required field 'image'",
        "manifest.yaml:4:15: builder.dockerfile: '/etc/Dockerfile' must be relative to the task's"
        " code directory, not absolute",
        "manifest.yaml:9:26: spec.tensorboard.enabled: expected true or false, got a string "
        "('maybe')",
        "manifest.yaml:11:32: spec.storage.sharedVolume.mountPoint: 'shared' must be an absolute"
        " path without '..'",
        "manifest.yaml:11:48: spec.storage.sharedVolume.sizeGB: must be ≥ 1",
        "manifest.yaml:13:9: spec.storage.attachExistingPVCs[0]: missing required field "
        "'mountPoint'",
        "manifest.yaml:13:16: spec.storage.attachExistingPVCs[0].name: 'Data' is not a valid "
        "volume claim name: use at most 63 lowercase letters, digits and '-', starting and "
        "ending with a letter or digit",
        "manifest.yaml:16:7: spec.types.Head.count: unknown field; expected one of: resources",
        "manifest.yaml:17:25: spec.types.Head.resources.cpus: must be greater than 0",
        "manifest.yaml:17:62: spec.types.Head.resources.accelerators.gpu: missing required "
        "field 'count'",
        "manifest.yaml:20:16: spec.types.Workers[0].count: must be ≥ 1",
        "manifest.yaml:21:56: spec.types.Workers[0].resources.machineName: must not be empty",
        "manifest.yaml:22:15: spec.types.Workers[1].name: 'Workers' becomes the resource name "
        "'workers', already used by spec.types.Workers[0]; rename the pool",
        "manifest.yaml:24:54: spec.types.Workers[1].resources.shmSizeGB: must not be negative",
        "manifest.yaml:25:5: spec.types.Worker: unknown field; did you mean 'Workers'?",
    ]


def test_unknown_operator_lists_the_known_ones() -> None:
    assert _errors(_manifest("operator: spark\ntypes: {}\n")) == [
        "manifest.yaml:8:13: spec.operator: unknown operator 'spark'; use one of: kuberay, "
        "pytorch, xgboost, tf, jax"
    ]


def test_missing_sections() -> None:
    assert _errors("kind: AIchorManifest\n") == [
        "manifest.yaml:1:1: missing required field 'apiVersion'",
        "manifest.yaml:1:1: missing required field 'builder'",
        "manifest.yaml:1:1: missing required field 'spec'",
    ]
