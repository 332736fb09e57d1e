"""The replica environment contract, read from inside real replicas."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from runtime_support import Runs, resource, task

from trainyard.core.models import VolumeSpec
from trainyard.executors.env import master_port, replica_address

DUMP_ENV = """
    import json, os, socket, sys, time
    env = dict(os.environ)
    role = env["TRAINYARD_REPLICA"].rsplit("-", 1)[0]
    mine = env[role.upper() + "_NODES"].split(",")[int(env["REPLICA_INDEX"])]
    s = socket.socket()
    s.bind((mine, 2222))  # a fixed port: free because the address is this replica's own
    data = {"env": env, "cwd": os.getcwd(), "executable": sys.executable,
            "bound": s.getsockname()[0], "argv": sys.argv[1:]}
    out = env["TRAINYARD_OUTPUT_DIR"]
    with open(os.path.join(out, "env-" + env["TRAINYARD_REPLICA"] + ".json"), "w") as f:
        json.dump(data, f)
    print("dumped", env["TRAINYARD_REPLICA"])
    if role == "worker" and "PS_NODES" in env:
        # The ps is a daemon, stopped once the workers end: let it write its file first.
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(out, "env-ps-0.json")):
            assert time.monotonic() < deadline, "the ps never wrote its environment"
            time.sleep(0.01)
"""


def load(run_output: Path, replica: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_output / f"env-{replica}.json").read_text())
    return data


def test_env_contract_inside_replicas_of_a_ps_worker_run(runs: Runs) -> None:
    spec = task(
        resource("ps", "python dump_env.py ps && exec sleep 60"),
        resource(
            "worker",
            "python $SRC_DIR/dump_env.py worker $REPLICA_INDEX",
            replicas=2,
            work_dir="$SRC_DIR/sub",
            env={"FROM_RESOURCE": "r", "BUILD_ID": "ignored"},
        ),
        name="envtest",
        env={"FROM_TASK": "t"},
    )
    run = runs.start(spec, files={"dump_env.py": DUMP_ENV, "sub/.keep": ""})
    obs = runs.wait(run)
    assert obs.phase == "complete", obs
    statuses = {r.name: r.status for r in obs.replicas}
    assert statuses == {"ps-0": "stopped", "worker-0": "succeeded", "worker-1": "succeeded"}

    rid = run.run_id
    addresses = [replica_address(rid, i) for i in range(3)]
    code = str(run.code_dir)
    seen_addresses = set()
    for index, name in enumerate(["ps-0", "worker-0", "worker-1"]):
        data = load(run.output_dir, name)
        env = data["env"]
        assert data["bound"] == addresses[index]
        seen_addresses.add(data["bound"])
        assert env["BUILD_ID"] == "1"
        assert env["REPLICA_INDEX"] == ("0" if name != "worker-1" else "1")
        assert env["PS_NODES"] == addresses[0]
        assert env["WORKER_NODES"] == f"{addresses[1]},{addresses[2]}"
        assert env["GPU_COUNT"] == "0"
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert env["PYTHONPATH"].split(":")[:2] == [code, str(run.run_dir / "lib")]
        assert env["SRC_DIR"] == code
        assert env["LIB_DIR"] == str(run.run_dir / "lib")
        assert env["TRAINING_DIR"] == str(runs.root / "training")
        for alias in ("TRAINYARD_OUTPUT_DIR", "AICHOR_OUTPUT_DATASET", "AICHOR_OUTPUT_PATH"):
            assert env[alias] == str(run.output_dir)
        for alias in ("TRAINYARD_INPUT_DIR", "AICHOR_INPUT_DATASET", "AICHOR_INPUT_PATH"):
            assert env[alias] == str(run.run_dir / "input")
        assert Path(env["TRAINYARD_INPUT_DIR"]).is_dir()
        assert env["MASTER_ADDR"] == addresses[0]
        assert env["MASTER_PORT"] == str(master_port(rid))
        assert env["WORLD_SIZE"] == "3"
        assert env["RANK"] == str(index)
        assert env["LOCAL_RANK"] == "0"
        tf_config = json.loads(env["TF_CONFIG"])
        assert tf_config["cluster"] == {
            "ps": [f"{addresses[0]}:2222"],
            "worker": [f"{addresses[1]}:2222", f"{addresses[2]}:2222"],
        }
        assert tf_config["task"] == {
            "type": name.split("-")[0],
            "index": int(env["REPLICA_INDEX"]),
        }
        assert env["TRAINYARD_RUN_ID"] == str(rid)
        assert env["TRAINYARD_RUN_REF"] == f"default/envtest#{rid}"
        assert env["TRAINYARD_PROJECT"] == "default"
        assert env["TRAINYARD_TASK"] == "envtest"
        assert env["TRAINYARD_REPLICA"] == name
        assert env["TRAINYARD_SERVER_URL"] == "http://127.0.0.1:9"
        assert env["TRAINYARD_TOKEN"] == "test-token"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["FROM_TASK"] == "t"
        assert env["LANG"] == "C.UTF-8"  # from the server's environment
        # `python` in a command is the interpreter trainyard runs with.
        assert Path(data["executable"]).parent == Path(sys.executable).parent
    assert len(seen_addresses) == 3
    ps, w1 = load(run.output_dir, "ps-0"), load(run.output_dir, "worker-1")
    assert ps["cwd"] == code and ps["argv"] == ["ps"]
    assert w1["cwd"] == str(run.code_dir / "sub") and w1["argv"] == ["worker", "1"]
    assert w1["env"]["FROM_RESOURCE"] == "r" and "FROM_RESOURCE" not in ps["env"]


def test_single_replica_has_no_tf_config_and_is_rank_zero(runs: Runs) -> None:
    run = runs.start(
        task(resource("worker", "python dump_env.py")), files={"dump_env.py": DUMP_ENV}
    )
    assert runs.wait(run).phase == "complete"
    env = load(run.output_dir, "worker-0")["env"]
    assert "TF_CONFIG" not in env
    assert (env["WORLD_SIZE"], env["RANK"], env["REPLICA_INDEX"]) == ("1", "0", "0")
    assert env["MASTER_ADDR"] == env["WORKER_NODES"] == replica_address(run.run_id, 0)


def test_host_path_volume_is_exported_as_its_real_directory(runs: Runs, tmp_path: Path) -> None:
    data = tmp_path / "datasets" / "imagenet" / "train"
    data.mkdir(parents=True)
    (data / "hello.txt").write_text("hello from the host path\n")
    volume = VolumeSpec(
        name="my-data",
        mount_path="/data",
        sub_path="imagenet/train",
        source={"hostPath": {"path": str(tmp_path / "datasets")}},
    )
    spec = task(resource("worker", 'cat "$MY_DATA_DIR/hello.txt"', volumes=[volume]))
    run = runs.start(spec)
    assert runs.wait(run).phase == "complete"
    lines = runs.executor.read_logs(run.run_id, "worker-0").lines
    assert [line.text for line in lines] == ["hello from the host path"]
