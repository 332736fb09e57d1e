"""The three shipped examples, run the way a user runs them: `trainyard run … --wait`
against a real server, with real replicas on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from e2e_support import EXAMPLES, all_log_lines, latest_run, trainyard, wait_status

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def api(live_server) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as client:
        yield client


def test_tf_ps_worker_completes_and_the_ps_is_stopped(live_server, api) -> None:  # type: ignore[no-untyped-def]
    done = trainyard(
        live_server.settings_env,
        "run",
        str(EXAMPLES / "tf-ps-worker" / "task.yaml"),
        "--param",
        "steps=50",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # --wait streams every replica's lines, prefixed by the replica's name.
    for replica in ("ps-0", "worker-0", "worker-1"):
        assert f"{replica} " in done.stdout, done.stdout
    assert "worker 1: final loss" in done.stdout

    run = latest_run(api, "tf-ps-worker")
    assert run["status"] == "complete"
    assert run["parameters"] == {"steps": 50}
    by_name = {r["name"]: r for r in run["replicas"]}
    assert set(by_name) == {"ps-0", "worker-0", "worker-1"}
    assert by_name["worker-0"]["status"] == "succeeded" and by_name["worker-0"]["exit_code"] == 0
    assert by_name["worker-1"]["status"] == "succeeded"
    # The ps never exits by itself: trainyard stopped it once both workers had finished.
    assert by_name["ps-0"]["status"] == "stopped"
    addresses = {r["address"] for r in run["replicas"]}
    assert len(addresses) == 3 and all(a.startswith("127.") for a in addresses)

    events = api.get(f"/runs/{run['id']}/events").json()["items"]
    statuses = [e["status"] for e in events if e["kind"] == "status"]
    assert statuses == ["queued", "starting", "running", "complete"]

    described = trainyard(live_server.settings_env, "describe", run["ref"], "--json")
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["status"] == "complete"

    outputs = live_server.home / "runs" / str(run["id"]) / "output"
    finals = [json.loads((outputs / f"weights-worker-{i}.json").read_text()) for i in (0, 1)]
    # Both workers trained the one model held by the ps. Untrained (all zeros) its loss is
    # about 15 on this data; asynchronous SGD makes the exact end figure vary run to run.
    assert [f["steps"] for f in finals] == [50, 50]
    assert all(0 <= f["loss"] < 1.0 for f in finals), finals


def test_pytorch_ddp_ranks_end_with_identical_weights(live_server, api) -> None:  # type: ignore[no-untyped-def]
    done = trainyard(
        live_server.settings_env,
        "run",
        str(EXAMPLES / "pytorch-ddp" / "task.yaml"),
        "--param",
        "steps=10",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = latest_run(api, "pytorch-ddp")
    assert run["status"] == "complete"
    outputs = live_server.home / "runs" / str(run["id"]) / "output"
    ranks = [json.loads((outputs / f"weights-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2 and ranks[1]["rank"] == 1
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert len(ranks[0]["weights"]) > 1


def test_kibernetika_form_fills_the_parameter_into_the_command(live_server, api) -> None:  # type: ignore[no-untyped-def]
    done = trainyard(
        live_server.settings_env,
        "run",
        str(EXAMPLES / "kibernetika-form" / "task.yaml"),
        "--param",
        "parameter_value=from-the-test",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = latest_run(api, "example")
    assert run["status"] == "complete"
    texts = [line["text"] for line in all_log_lines(api, run["id"])]
    assert any("from-the-test" in t for t in texts), texts


def test_example_with_an_ill_typed_parameter_starts_nothing(live_server, api) -> None:  # type: ignore[no-untyped-def]
    done = trainyard(
        live_server.settings_env,
        "run",
        str(EXAMPLES / "tf-ps-worker" / "task.yaml"),
        "--param",
        "steps=many",
    )
    assert done.returncode == 1
    assert "steps" in done.stderr
    assert api.get("/runs").json()["total"] == 0


def test_gpu_queue_gangs_queues_and_starts_immediately(live_server, api) -> None:  # type: ignore[no-untyped-def]
    """The gpu-queue example on 2 simulated GPUs (no real GPU here): the first run takes both,
    the second queues with its reason and starts when they are free, a third started
    immediately shares them."""
    env = live_server.settings_env
    task = str(EXAMPLES / "gpu-queue" / "task.yaml")
    sim = trainyard(env, "node", "simulate-gpus", "--count", "2", "--type", "Tesla-V100-SXM3-32GB")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    first = trainyard(env, "run", task, "--param", "seconds=6")
    assert first.returncode == 0, first.stdout + first.stderr
    holder = latest_run(api, "gpu-queue")
    second = trainyard(env, "run", task, "--param", "seconds=0")
    assert second.returncode == 0, second.stdout + second.stderr
    queued = latest_run(api, "gpu-queue")
    assert queued["id"] != holder["id"]
    queue = trainyard(env, "queue")
    assert "waiting for 2 × Tesla-V100-SXM3-32GB in pool 'default'" in queue.stdout, queue.stdout
    now = trainyard(env, "run", task, "--param", "seconds=0", "--start-immediately", "--wait")
    assert now.returncode == 0, now.stdout + now.stderr
    shared = latest_run(api, "gpu-queue")
    assert shared["start_immediately"] and all(p["shared"] for p in shared["placements"])
    # The queued run is still waiting for free GPUs (shared use does not count as free).
    assert api.get(f"/runs/{queued['id']}").json()["status"] == "queued"
    done = wait_status(api, queued["id"], ("complete",), timeout=60)
    gpus = {p["replica"]: p["gpus"] for p in done["placements"]}
    assert len(gpus["worker-0"]) == len(gpus["worker-1"]) == 1
    assert gpus["worker-0"] != gpus["worker-1"]
    texts = [line["text"] for line in all_log_lines(api, queued["id"])]
    for replica in ("worker-0", "worker-1"):
        assert f"{replica}: 1 GPU(s): {gpus[replica][0]}" in texts, texts
    events = api.get(f"/runs/{queued['id']}/events").json()["items"]
    assert any(e["reason"] == "waiting for resources" for e in events)
    assert wait_status(api, holder["id"], ("complete",))["status"] == "complete"


def test_tracking_example_logs_params_and_metrics(live_server, api) -> None:  # type: ignore[no-untyped-def]
    """The tracking example through `trainyard run --wait`: the SDK inside a real run finds
    the run in its environment and every point it logged is on the server once."""
    done = trainyard(
        live_server.settings_env,
        "run",
        str(EXAMPLES / "tracking" / "task.yaml"),
        "--param",
        "steps=50",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = latest_run(api, "tracking")
    assert run["status"] == "complete"
    params = api.get(f"/runs/{run['id']}/params").json()["params"]
    assert params["steps"] == "50" and params["lr"] == "0.05"
    summaries = {m["key"]: m for m in api.get(f"/runs/{run['id']}/metrics").json()["items"]}
    assert summaries["train/loss"]["count"] == 50
    assert summaries["train/loss"]["last_step"] == 49
    assert summaries["val/loss"]["count"] == 5
    history = api.get(f"/runs/{run['id']}/metrics/train/loss").json()
    assert [p[0] for p in history["points"]] == list(range(50))
    # The loss goes down: SGD on a linear model.
    assert history["points"][-1][2] < history["points"][0][2]
    # The model it logged as an artifact.
    model = api.get(f"/runs/{run['id']}/artifacts/model/model.json")
    assert model.status_code == 200, model.text
    assert set(model.json()) == {"w", "b", "val_loss"}
