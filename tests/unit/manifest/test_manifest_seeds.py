"""The seed documents' own examples load unchanged; the Kibernetika form example really runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trainyard.core.models import (
    AIchorSpec,
    ManifestFormat,
    ParameterSpec,
    ParameterType,
    ResourceAmounts,
    ResourceSpec,
    RestartPolicy,
    TaskSpec,
)
from trainyard.manifest import RAY_WORKER_COMMAND, load_manifest, parse_param_args, resolve_task

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = Path(__file__).parents[3] / "examples" / "kibernetika-form"
GIB = 2**30

SEED_WORKER = ResourceSpec(
    name="worker",
    replicas=1,
    command="python example.py --parameter_name {{ .parameter_value }}",
    work_dir="$SRC_DIR",
    images={
        "cpu": "kuberlab/tensorflow:cpu-36-1.7.0-full",
        "gpu": "kuberlab/tensorflow:gpu-36-1.7.0-full",
    },
    requests=ResourceAmounts(cpu_millis=100, memory_bytes=64 * 2**20),
    limits=ResourceAmounts(cpu_millis=1000, memory_bytes=8 * GIB),
    restart_policy=RestartPolicy.NEVER,
    default_volume_mapping=True,
)


def test_kibernetika_seed_loads_unchanged() -> None:
    spec = load_manifest((FIXTURES / "kibernetika-seed.yaml").read_bytes(), "task.yaml")
    assert spec == TaskSpec(
        name="example", format=ManifestFormat.KIBERNETIKA, resources=[SEED_WORKER]
    )


def test_kibernetika_seed_needs_its_placeholder_value() -> None:
    spec = load_manifest((FIXTURES / "kibernetika-seed.yaml").read_text())
    resolved, values = resolve_task(spec, parse_param_args(["parameter_value=0.5"]))
    assert resolved.resources[0].command == "python example.py --parameter_name 0.5"
    assert values == {"parameter_value": "0.5"}
    assert spec.resources[0].command == SEED_WORKER.command  # the input is not modified


def test_example_task_is_the_seed_plus_a_parameter_declaration() -> None:
    spec = load_manifest((EXAMPLE / "task.yaml").read_text())
    assert spec.format is ManifestFormat.NATIVE
    assert spec.resources == [SEED_WORKER]
    assert spec.parameters == [
        ParameterSpec(
            name="parameter_value",
            type=ParameterType.STRING,
            default="hello-from-the-form",
            required=False,
            description="the value the form's field fills into the command",
        )
    ]


def _run_worker(command: str) -> str:
    """Run the resolved command the way a replica does: a shell, in $SRC_DIR."""
    env = {**os.environ, "SRC_DIR": str(EXAMPLE), "BUILD_ID": "7", "REPLICA_INDEX": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_example_runs_with_its_default_and_with_a_param() -> None:
    spec = load_manifest((EXAMPLE / "task.yaml").read_text())
    resolved, _ = resolve_task(spec, {})
    assert _run_worker(resolved.resources[0].command) == (
        "parameter_name=hello-from-the-form\nbuild 7, replica 0\n"
    )
    resolved, values = resolve_task(spec, parse_param_args(["parameter_value=two words"]))
    assert values == {"parameter_value": "two words"}
    # Values are inserted verbatim into a shell string: two words are two arguments, so
    # argparse sees an extra one. That is the documented behaviour; quote in the template.
    result = subprocess.run(
        ["/bin/sh", "-c", resolved.resources[0].command],
        cwd=EXAMPLE,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unrecognized arguments: words" in result.stderr


def test_aichor_seed_loads() -> None:
    spec = load_manifest((FIXTURES / "aichor-seed.yaml").read_text(), "manifest.yaml")
    head, workers = spec.resources
    assert spec.name == "aichor-experiment"
    assert spec.format is ManifestFormat.AICHOR
    assert spec.aichor == AIchorSpec(
        api_version="0.2.1",
        operator="kuberay",
        image="melqart",
        builder={"image": "melqart", "dockerfile": "./Dockerfile", "context": "."},
        tensorboard_enabled=True,
        storage={
            "sharedVolume": {"mountPoint": "/mnt/shared", "sizeGB": 16},
            "attachExistingPVCs": [
                {"name": "my-awesome-pvc", "mountPoint": "/mnt/my-60tib-dataset"}
            ],
        },
    )
    head_amounts = ResourceAmounts(cpu_millis=10_000, memory_bytes=20 * GIB, gpu=2)
    assert head == ResourceSpec(
        name="head",
        replicas=1,
        command="python train.py",
        images={"cpu": "melqart", "gpu": "melqart"},
        requests=head_amounts,
        limits=head_amounts,
        shm_size_bytes=48 * GIB,
        gpu_product="Tesla-V100-SXM3-32GB",
    )
    worker_amounts = ResourceAmounts(cpu_millis=1000, memory_bytes=2 * GIB)
    assert workers == ResourceSpec(
        name="cpu-workers",
        replicas=2,
        command=RAY_WORKER_COMMAND,
        images={"cpu": "melqart", "gpu": "melqart"},
        requests=worker_amounts,
        limits=worker_amounts,
        shm_size_bytes=None,
    )
