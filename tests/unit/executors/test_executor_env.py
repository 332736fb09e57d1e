"""The replica environment contract built by ``build_launch_request`` (no processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainyard.core.errors import InvalidInputError
from trainyard.core.models import (
    ResourceAmounts,
    ResourceSpec,
    RestartPolicy,
    TaskSpec,
    VolumeSpec,
)
from trainyard.executors.base import LaunchRequest
from trainyard.executors.env import (
    CONTRACT_NAMES,
    build_launch_request,
    master_port,
    nodes_variable,
    replica_address,
    volume_variable,
)
from trainyard.manifest import load_manifest

RUN_ID = 300  # 300 // 256 = 1, 300 % 256 = 44 -> addresses 127.2.44.x


def ps_worker_spec(**worker: object) -> TaskSpec:
    return TaskSpec(
        name="tf-ps-worker",
        env={"TASK_LEVEL": "task", "SHARED": "from-task", "BUILD_ID": "user-tries"},
        resources=[
            ResourceSpec(name="ps", replicas=1, command="python train.py --role ps", port=2223),
            ResourceSpec(
                name="worker",
                replicas=2,
                command="python train.py --role worker --steps 7",
                work_dir="$SRC_DIR/src",
                env={"SHARED": "from-resource", "RANK": "99", "PYTHONPATH": "/user/lib"},
                limits=ResourceAmounts(memory_bytes=100 * 2**20),
                restart_policy=RestartPolicy.ON_FAILURE,
                backoff_limit=2,
                **worker,  # type: ignore[arg-type]
            ),
        ],
    )


def build(tmp_path: Path, spec: TaskSpec, run_id: int = RUN_ID, **kwargs: object) -> LaunchRequest:
    code = tmp_path / "run" / "code"
    (code / "src").mkdir(parents=True, exist_ok=True)
    return build_launch_request(
        run_id=run_id,
        run_ref="vision/tf-ps-worker#4",
        project="vision",
        task=spec.name,
        build_id=4,
        spec=spec,
        code_dir=code,
        run_dir=tmp_path / "run",
        training_dir=tmp_path / "training",
        server_url="http://127.0.0.1:8080",
        token="tok-1",
        python_executable="/opt/py/bin/python3",
        base_env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/home/u",
            "PYTHONPATH": "/server/lib",
            "TRAINYARD_DB__URL": "postgresql://secret@db/x",
            "TF_CONFIG": "{}",
        },
        **kwargs,  # type: ignore[arg-type]
    )


def test_replica_address_is_distinct_and_never_the_servers_subnet() -> None:
    seen = set()
    for run_id in (0, 1, 255, 256, 257, 65023, 65024 + 7):
        for ordinal in (0, 1, 253):
            address = replica_address(run_id, ordinal)
            octets = [int(o) for o in address.split(".")]
            assert octets[0] == 127 and octets[1] != 0
            assert 1 <= octets[3] <= 254
            seen.add((run_id % 65024, address))
    assert len({a for _, a in seen}) == len(seen)
    assert replica_address(300, 0) == "127.2.44.1"


@pytest.mark.parametrize(("run_id", "ordinal"), [(1, 254), (1, -1), (-1, 0)])
def test_replica_address_out_of_range_is_a_clear_error(run_id: int, ordinal: int) -> None:
    with pytest.raises(ValueError, match=r"out of range|must not be negative"):
        replica_address(run_id, ordinal)


def test_nodes_variable_names() -> None:
    assert nodes_variable("worker") == "WORKER_NODES"
    assert nodes_variable("param-server") == "PARAM_SERVER_NODES"


def test_ps_worker_contract(tmp_path: Path) -> None:
    req = build(tmp_path, ps_worker_spec())
    assert [r.name for r in req.replicas] == ["ps-0", "worker-0", "worker-1"]
    addresses = [r.address for r in req.replicas]
    assert addresses == ["127.2.44.1", "127.2.44.2", "127.2.44.3"]
    code = str((tmp_path / "run" / "code").absolute())
    run = tmp_path / "run"
    for replica in req.replicas:
        env = replica.env
        assert env["BUILD_ID"] == "4"  # the contract wins over the task's env
        assert env["REPLICA_INDEX"] == str(replica.index)
        assert env["PS_NODES"] == "127.2.44.1"
        assert env["WORKER_NODES"] == "127.2.44.2,127.2.44.3"
        assert env["GPU_COUNT"] == "0"
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert env["SRC_DIR"] == code
        assert env["LIB_DIR"] == str(run / "lib")
        assert env["TRAINING_DIR"] == str(tmp_path / "training")
        for name in ("TRAINYARD_INPUT_DIR", "AICHOR_INPUT_DATASET", "AICHOR_INPUT_PATH"):
            assert env[name] == str(run / "input")
        for name in ("TRAINYARD_OUTPUT_DIR", "AICHOR_OUTPUT_DATASET", "AICHOR_OUTPUT_PATH"):
            assert env[name] == str(run / "output")
        assert env["MASTER_ADDR"] == "127.2.44.1"  # no master/chief/head: the first resource
        assert env["MASTER_PORT"] == str(master_port(RUN_ID))
        assert env["WORLD_SIZE"] == "3"
        assert env["LOCAL_RANK"] == "0"
        assert env["TRAINYARD_RUN_ID"] == str(RUN_ID)
        assert env["TRAINYARD_RUN_REF"] == "vision/tf-ps-worker#4"
        assert env["TRAINYARD_PROJECT"] == "vision"
        assert env["TRAINYARD_TASK"] == "tf-ps-worker"
        assert env["TRAINYARD_REPLICA"] == replica.name
        assert env["TRAINYARD_SERVER_URL"] == "http://127.0.0.1:8080"
        assert env["TRAINYARD_TOKEN"] == "tok-1"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["PATH"] == "/opt/py/bin:/usr/bin:/bin"
        assert env["HOME"] == "/home/u"
        assert "TRAINYARD_DB__URL" not in env  # server settings may hold credentials
        assert env["TASK_LEVEL"] == "task"
        tf_config = json.loads(env["TF_CONFIG"])
        assert tf_config["cluster"] == {
            "ps": ["127.2.44.1:2223"],
            "worker": ["127.2.44.2:2222", "127.2.44.3:2222"],
        }
        assert tf_config["task"] == {"type": replica.resource, "index": replica.index}
    ps, w0, w1 = req.replicas
    assert [r.env["RANK"] for r in req.replicas] == ["0", "1", "2"]  # user's RANK ignored
    assert ps.env["SHARED"] == "from-task" and w0.env["SHARED"] == "from-resource"
    assert ps.env["PYTHONPATH"] == f"{code}:{run / 'lib'}:/server/lib"
    assert w0.env["PYTHONPATH"] == f"{code}:{run / 'lib'}:/user/lib"
    assert ps.daemon and not w0.daemon
    assert ps.work_dir == str(Path(code).resolve())
    assert w1.work_dir == str((Path(code) / "src").resolve())
    assert w1.memory_limit_bytes == 100 * 2**20 and ps.memory_limit_bytes is None
    assert w1.restart_policy == "OnFailure" and w1.backoff_limit == 2
    assert ps.restart_policy == "Never"
    assert w1.command == "python train.py --role worker --steps 7"
    assert req.run_id == RUN_ID and req.code_dir == code
    for d in ("lib", "input", "output"):
        assert (run / d).is_dir()
    assert (tmp_path / "training").is_dir()


def test_every_contract_name_is_set(tmp_path: Path) -> None:
    env = build(tmp_path, ps_worker_spec()).replicas[1].env
    assert CONTRACT_NAMES - set(env) == set()


def test_single_replica_task_has_no_tf_config(tmp_path: Path) -> None:
    spec = TaskSpec(name="one", resources=[ResourceSpec(name="worker", command="true")])
    (replica,) = build(tmp_path, spec).replicas
    assert "TF_CONFIG" not in replica.env  # not even the server's
    assert replica.env["WORLD_SIZE"] == "1" and replica.env["RANK"] == "0"
    assert replica.env["MASTER_ADDR"] == replica.address == replica.env["WORKER_NODES"]


def test_rank_zero_is_the_first_master_chief_or_head(tmp_path: Path) -> None:
    spec = TaskSpec(
        name="ray",
        resources=[
            ResourceSpec(name="worker", replicas=2, command="w"),
            ResourceSpec(name="head", replicas=1, command="h"),
        ],
    )
    req = build(tmp_path, spec)
    ranks = {r.name: r.env["RANK"] for r in req.replicas}
    assert ranks == {"head-0": "0", "worker-0": "1", "worker-1": "2"}
    head = next(r for r in req.replicas if r.name == "head-0")
    assert {r.env["MASTER_ADDR"] for r in req.replicas} == {head.address}
    assert head.address == replica_address(RUN_ID, 2)  # addresses follow the manifest order


def test_gpus_are_given_per_replica(tmp_path: Path) -> None:
    spec = TaskSpec(name="g", resources=[ResourceSpec(name="worker", replicas=2, command="x")])
    req = build(tmp_path, spec, gpus={"worker-1": ["GPU-a", "GPU-b"]})
    w0, w1 = req.replicas
    assert (w0.env["GPU_COUNT"], w0.env["CUDA_VISIBLE_DEVICES"], w0.gpus) == ("0", "", [])
    assert w1.env["GPU_COUNT"] == "2"
    assert w1.env["CUDA_VISIBLE_DEVICES"] == "GPU-a,GPU-b"
    assert w1.gpus == ["GPU-a", "GPU-b"]


@pytest.mark.parametrize(
    "work_dir", ["..", "../other", "/etc", "$SRC_DIR/..", "${SRC_DIR}/../x", "src/../../x"]
)
def test_work_dir_escaping_the_code_dir_is_refused(tmp_path: Path, work_dir: str) -> None:
    spec = TaskSpec(
        name="t", resources=[ResourceSpec(name="worker", command="x", work_dir=work_dir)]
    )
    with pytest.raises(InvalidInputError, match="outside the run's code directory") as info:
        build(tmp_path, spec)
    assert "resource 'worker'" in info.value.message


def test_work_dir_symlink_out_of_the_code_dir_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "run" / "code"
    code.mkdir(parents=True)
    os.symlink(tmp_path, code / "escape")
    spec = TaskSpec(
        name="t", resources=[ResourceSpec(name="worker", command="x", work_dir="escape")]
    )
    with pytest.raises(InvalidInputError, match="outside"):
        build(tmp_path, spec)


def test_work_dir_with_an_unknown_variable_is_refused(tmp_path: Path) -> None:
    spec = TaskSpec(
        name="t", resources=[ResourceSpec(name="worker", command="x", work_dir="$NOPE/src")]
    )
    with pytest.raises(InvalidInputError, match=r"unknown variable \$NOPE"):
        build(tmp_path, spec)


@pytest.mark.parametrize("work_dir", ["", "$SRC_DIR", "${SRC_DIR}/src", "src", "./src/"])
def test_work_dir_inside_the_code_dir(tmp_path: Path, work_dir: str) -> None:
    spec = TaskSpec(
        name="t", resources=[ResourceSpec(name="worker", command="x", work_dir=work_dir)]
    )
    (replica,) = build(tmp_path, spec).replicas
    code = (tmp_path / "run" / "code").resolve()
    assert Path(replica.work_dir) in (code, code / "src")


def test_too_many_replicas_is_a_clear_error(tmp_path: Path) -> None:
    spec = TaskSpec(name="t", resources=[ResourceSpec(name="worker", replicas=255, command="x")])
    with pytest.raises(ValueError, match="at most 254 replicas"):
        build(tmp_path, spec)


def test_master_port_differs_between_runs_and_stays_out_of_the_ephemeral_range() -> None:
    ports = {master_port(run_id) for run_id in range(1, 2001)}
    assert len(ports) == 2000
    assert min(ports) >= 29500 and max(ports) < 32768


def volume_spec(*volumes: VolumeSpec, other: bool = True) -> TaskSpec:
    resources = [ResourceSpec(name="worker", replicas=2, command="x", volumes=list(volumes))]
    if other:
        resources.append(ResourceSpec(name="ps", command="y"))
    return TaskSpec(name="t", resources=resources)


def test_volume_variable_names() -> None:
    assert volume_variable("data") == "DATA_DIR"
    assert volume_variable("my-data-2") == "MY_DATA_2_DIR"


def test_host_path_volumes_point_at_the_real_directory(tmp_path: Path) -> None:
    manifest = """
name: t
resources:
  - name: worker
    replicas: 2
    command: python train.py
    env: {DATA_DIR: /user/tries}
    volumes:
      - name: data
        mountPath: /data
        subPath: imagenet/train
        readOnly: true
        hostPath: {path: /srv/datasets}
      - name: my-models
        mountPath: /models
        hostPath: {path: /srv/models/}
      - name: src
        mountPath: /notebooks/src
      - name: training
        mountPath: /notebooks/training
  - name: ps
    command: python ps.py
"""
    req = build(tmp_path, load_manifest(manifest))
    w0, w1, ps = req.replicas
    code = str((tmp_path / "run" / "code").absolute())
    for replica in (w0, w1):
        assert replica.env["DATA_DIR"] == "/srv/datasets/imagenet/train"  # the contract wins
        assert replica.env["MY_MODELS_DIR"] == "/srv/models"
        # Sourceless src and training are the project sources the contract already has.
        assert replica.env["SRC_DIR"] == code
        assert replica.env["TRAINING_DIR"] == str(tmp_path / "training")
    assert "DATA_DIR" not in ps.env and "MY_MODELS_DIR" not in ps.env  # per resource


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ({"clusterStorage": "shared-ssd"}, "clusterStorage"),
        ({"nfs": {"server": "10.0.0.5", "path": "/exports"}}, "nfs"),
        ({"gitRepo": {"repository": "https://example.com/r.git"}}, "gitRepo"),
        ({"s3bucket": {"bucket": "b"}}, "s3bucket"),
        ({"emptyDir": {"medium": "Memory"}}, "emptyDir"),
        ({}, "project source"),
    ],
)
def test_volumes_the_local_backend_cannot_provide_are_refused(
    tmp_path: Path, source: dict[str, object], kind: str
) -> None:
    spec = volume_spec(VolumeSpec(name="data", mount_path="/data", source=source))
    with pytest.raises(InvalidInputError) as info:
        build(tmp_path, spec)
    message = info.value.message
    assert f"resource 'worker' volume 'data': its source ({kind})" in message
    assert "supports hostPath only for now" in message
    assert info.value.fields == {"resource": "worker", "volume": "data", "kind": kind}
    assert not (tmp_path / "run" / "lib").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("volume", "match"),
    [
        (VolumeSpec(name="src", source={"hostPath": {"path": "/srv"}}), r"\$SRC_DIR is already"),
        (
            VolumeSpec(name="trainyard-output", source={"hostPath": {"path": "/srv"}}),
            r"\$TRAINYARD_OUTPUT_DIR is already",
        ),
        (VolumeSpec(name="data", source={"hostPath": {}}), "hostPath needs an absolute 'path'"),
        (
            VolumeSpec(name="data", source={"hostPath": {"path": "rel/dir"}}),
            "hostPath needs an absolute 'path'",
        ),
        (
            VolumeSpec(name="data", sub_path="/etc", source={"hostPath": {"path": "/srv"}}),
            "subPath '/etc' must be a relative path",
        ),
        (
            VolumeSpec(name="data", sub_path="a/../..", source={"hostPath": {"path": "/srv"}}),
            "without '..'",
        ),
    ],
)
def test_unusable_host_path_volumes_are_refused(
    tmp_path: Path, volume: VolumeSpec, match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match) as info:
        build(tmp_path, volume_spec(volume))
    assert f"volume '{volume.name}'" in info.value.message


def test_check_launchable_refuses_at_submit_what_launch_would_refuse() -> None:
    """The server calls it at submit, so such a run is never created only to fail."""
    from trainyard.executors.env import check_launchable
    from trainyard.executors.local import LocalExecutor

    def spec(extra: str) -> TaskSpec:
        return load_manifest(f"name: t\nresources:\n- name: w\n  command: echo\n{extra}")

    check_launchable(spec("  workDir: $SRC_DIR/sub\n"))  # fine: nothing raised
    with pytest.raises(InvalidInputError, match=r"workDir '\$FOO/x': unknown variable \$FOO"):
        check_launchable(spec("  workDir: $FOO/x\n"))
    nfs = "  volumes:\n  - name: data\n    mountPath: /data\n    nfs: {server: nas, path: /x}\n"
    with pytest.raises(InvalidInputError, match="data"):
        LocalExecutor(Path("/nonexistent-runs")).check(spec(nfs))


def test_replicas_carry_what_container_backends_need(tmp_path: Path) -> None:
    spec = load_manifest(
        "name: t\nresources:\n- name: w\n  command: echo\n"
        "  images: {cpu: img:cpu, gpu: img:gpu}\n"
        "  resources:\n    requests: {cpu: 100m, memory: 64Mi}\n"
        "    limits: {cpu: '2', memory: 1Gi, gpu: 1}\n"
        "- name: c\n  command: echo\n  images: {cpu: only:cpu}\n"
    )
    request = build_launch_request(
        run_id=3, run_ref="p/t#1", project="p", task="t", build_id=1, spec=spec,
        code_dir=tmp_path / "code", run_dir=tmp_path / "run", training_dir=tmp_path / "tr",
        server_url="http://127.0.0.1:1",
    )  # fmt: skip
    w, c = request.replicas
    assert (w.image, w.gpu_count, w.cpu_request_millis, w.cpu_limit_millis) == (
        "img:gpu", 1, 100, 2000,
    )  # fmt: skip
    assert (w.memory_request_bytes, w.memory_limit_bytes) == (64 * 2**20, 2**30)
    assert (c.image, c.gpu_count, c.cpu_request_millis) == ("only:cpu", 0, None)
