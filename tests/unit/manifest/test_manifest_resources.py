"""Resource fields: exact quantities, request/limit semantics, env forms, volumes, defaults."""

from __future__ import annotations

import pytest

from trainyard.core.errors import ManifestError
from trainyard.core.models import ResourceAmounts, RestartPolicy, VolumeSpec
from trainyard.manifest import load_manifest


def _amounts(requests: str = "", limits: str = "") -> tuple[ResourceAmounts, ResourceAmounts]:
    body = "    resources:\n"
    if requests:
        body += f"      requests: {{{requests}}}\n"
    if limits:
        body += f"      limits: {{{limits}}}\n"
    text = "name: t\nresources:\n  - name: worker\n    command: x\n" + body
    r = load_manifest(text).resources[0]
    return r.requests, r.limits


@pytest.mark.parametrize(
    ("written", "millis"),
    [
        ('"1"', 1000),
        ("1", 1000),
        ("100m", 100),
        ("0.5", 500),
        (".25", 250),
        ("1.5", 1500),
        ("2500m", 2500),
        ('"0.1"', 100),
        ("1e1", 10_000),
        ("0.0001", 1),  # below a millicore rounds up, never to zero
    ],
)
def test_cpu_quantities_are_exact_millicores(written: str, millis: int) -> None:
    requests, _ = _amounts(requests=f"cpu: {written}")
    assert requests.cpu_millis == millis


@pytest.mark.parametrize(
    ("written", "nbytes"),
    [
        ("64Mi", 64 * 2**20),
        ("8Gi", 8 * 2**30),
        ("1G", 10**9),
        ("1.5Gi", 3 * 2**29),
        ("512Ki", 512 * 1024),
        ("1000", 1000),
        ("1e3", 1000),
        ("2Ti", 2 * 2**40),
        ("128974848", 128974848),
        ("129M", 129 * 10**6),
        ("123Mi", 123 * 2**20),
        ("0.5k", 500),
    ],
)
def test_memory_quantities_are_exact_bytes(written: str, nbytes: int) -> None:
    requests, _ = _amounts(requests=f"memory: {written}")
    assert requests.memory_bytes == nbytes


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("8GB", "; did you mean '8G' or '8Gi'?"),
        ("8gi", "; did you mean '8Gi'?"),
        ("64mb", "; did you mean '64M' or '64Mi'?"),
        ("lots", ""),
        ("-1Gi", ""),
    ],
)
def test_bad_quantities_say_what_was_meant(written: str, hint: str) -> None:
    with pytest.raises(ManifestError) as info:
        _amounts(limits=f"memory: {written}")
    assert info.value.message == (
        f"task.yaml:6:24: resources[0].resources.limits.memory: '{written}' is not a quantity "
        f"(expected e.g. 100m, 0.5, 2, 64Mi, 8Gi, 1G){hint}"
    )


def test_a_limit_alone_is_also_the_request() -> None:
    requests, limits = _amounts(limits="cpu: 2, memory: 8Gi, gpu: 1")
    expected = ResourceAmounts(cpu_millis=2000, memory_bytes=8 * 2**30, gpu=1)
    assert requests == expected
    assert limits == expected


def test_a_request_alone_sets_no_limit() -> None:
    requests, limits = _amounts(requests="cpu: 250m, memory: 1Gi")
    assert requests == ResourceAmounts(cpu_millis=250, memory_bytes=2**30)
    assert limits == ResourceAmounts()


def test_request_equal_to_limit_is_fine_and_mixed_units_compare_exactly() -> None:
    requests, limits = _amounts(
        requests="cpu: 1000m, memory: 1024Mi", limits='cpu: "1", memory: 1Gi'
    )
    assert requests == limits == ResourceAmounts(cpu_millis=1000, memory_bytes=2**30)


def test_one_byte_over_the_limit_is_caught() -> None:
    with pytest.raises(ManifestError) as info:
        _amounts(requests="memory: 1073741825", limits="memory: 1Gi")
    assert info.value.message == (
        "task.yaml:6:26: resources[0].resources.requests.memory: request 1073741825 is more than"
        " the limit 1Gi"
    )


@pytest.mark.parametrize(("written", "gpus"), [("0", 0), ("2", 2), ('"1"', 1)])
def test_gpu_is_a_whole_number(written: str, gpus: int) -> None:
    requests, _ = _amounts(requests=f"gpu: {written}")
    assert requests.gpu == gpus


@pytest.mark.parametrize("written", ["0.5", "true", "one", "[1]"])
def test_gpu_refuses_anything_else(written: str) -> None:
    with pytest.raises(ManifestError) as info:
        _amounts(requests=f"gpu: {written}")
    assert "resources[0].resources.requests.gpu: expected a whole number of GPUs" in str(info.value)


def test_defaults_of_a_minimal_resource() -> None:
    r = load_manifest("name: t\nresources: [{name: worker, command: x}]\n").resources[0]
    assert (r.replicas, r.work_dir, r.restart_policy, r.backoff_limit, r.daemon, r.port) == (
        1,
        "",
        RestartPolicy.NEVER,
        3,
        False,
        None,
    )
    assert r.env == {} and r.images == {} and r.volumes == []


def test_every_native_resource_field() -> None:
    text = """
apiVersion: trainyard/v1
name: train
description: a parameter server and two workers
timeout: 1h30m
env: {LOG_LEVEL: info}
resources:
  - name: ps
    replicas: 1
    command: python ps.py
    daemon: true
    port: 2222
  - name: worker
    replicas: 2
    command: python worker.py
    workDir: src
    restartPolicy: OnFailure
    backoffLimit: 5
    env:
      - name: SEED
        value: 42
      - name: EMPTY
"""
    spec = load_manifest(text)
    assert spec.timeout_seconds == 5400
    assert spec.description == "a parameter server and two workers"
    assert spec.env == {"LOG_LEVEL": "info"}
    ps, worker = spec.resources
    assert (ps.daemon, ps.port, ps.is_daemon) == (True, 2222, True)
    assert (worker.replicas, worker.work_dir, worker.restart_policy, worker.backoff_limit) == (
        2,
        "src",
        RestartPolicy.ON_FAILURE,
        5,
    )
    assert worker.env == {"SEED": "42", "EMPTY": ""}
    assert spec.replica_count == 3


@pytest.mark.parametrize(
    ("written", "seconds"), [("300", 300), ('"300"', 300), ("300s", 300), ("5m", 300), ("2h", 7200)]
)
def test_timeout_forms(written: str, seconds: int) -> None:
    text = f"name: t\ntimeout: {written}\nresources: [{{name: w, command: x}}]\n"
    assert load_manifest(text).timeout_seconds == seconds


def test_volumes_are_recorded_as_written() -> None:
    text = """
name: t
resources:
  - name: worker
    command: x
    volumes:
      - name: data
        mountPath: /data
        subPath: imagenet/train
        readOnly: true
        clusterStorage: shared-ssd
      - name: src
        mountPath: /src
        gitRepo: {repository: "https://example.com/repo.git", revision: main}
"""
    volumes = load_manifest(text).resources[0].volumes
    assert volumes == [
        VolumeSpec(
            name="data",
            mount_path="/data",
            sub_path="imagenet/train",
            read_only=True,
            source={"clusterStorage": "shared-ssd"},
        ),
        VolumeSpec(
            name="src",
            mount_path="/src",
            source={"gitRepo": {"repository": "https://example.com/repo.git", "revision": "main"}},
        ),
    ]


def test_workdir_with_variables_and_inner_dots_is_accepted() -> None:
    text = (
        "name: t\nresources:\n"
        "  - {name: a, command: x, workDir: $SRC_DIR/src/../models}\n"
        "  - {name: b, command: x, workDir: '${SRC_DIR}/x'}\n"
    )
    assert [r.work_dir for r in load_manifest(text).resources] == [
        "$SRC_DIR/src/../models",
        "${SRC_DIR}/x",
    ]


@pytest.mark.parametrize("written", ['"²"', '"١٢"', '"1_0"'])
def test_non_ascii_digits_are_not_numbers(written: str) -> None:
    text = (
        f"name: t\ntimeout: {written}\n"
        f"resources: [{{name: w, command: x, resources: {{requests: {{gpu: {written}}}}}}}]\n"
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(text)
    assert [i.path for i in info.value.issues] == ["timeout", "resources[0].resources.requests.gpu"]
