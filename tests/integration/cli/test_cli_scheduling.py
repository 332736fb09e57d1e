"""The scheduling commands against a real server: node, pool, group, queue, and runs that
need GPUs (placement in describe, the queue's order and reasons, start immediately).

The module's server has one node, ``node-a``, with no real GPU looked for: every GPU here is
simulated. Each test leaves the cluster as it found it (runs stopped, its pools deleted, no
simulated GPU); groups and projects cannot always be deleted, so every test names its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import RunCli, write_task

from trainyard.client import TrainyardClient
from trainyard.core.models import Run
from trainyard.core.status import ACTIVE_STATUSES

NODE = "node-a"
V100 = "Tesla-V100-SXM3-32GB"

GPU_TASK = """\
name: {name}
resources:
  - name: worker
    replicas: {replicas}
    command: echo "gpus=$CUDA_VISIBLE_DEVICES count=$GPU_COUNT"; exec sleep 30
    resources:
      requests: {{gpu: {gpus}}}
"""


@pytest.fixture(scope="module")
def shared_server(server_factory: Any) -> Iterator[Any]:
    """This module's own server: one node with a fixed name, no real GPU discovered."""
    server = server_factory.start(
        extra_env={
            "TRAINYARD_NODE__NAME": NODE,
            "TRAINYARD_NODE__DISCOVER_GPUS": "false",
            "TRAINYARD_NODE__CPUS": "4",
        }
    )
    try:
        yield server
    finally:
        server.close()
        server_factory.servers.remove(server)


@pytest.fixture
def client(shared_server: Any) -> Iterator[TrainyardClient]:
    with TrainyardClient(shared_server.url) as c:
        yield c


@pytest.fixture(autouse=True)
def clean_cluster(client: TrainyardClient) -> Iterator[None]:
    """After each test: every run stopped, pools deleted, simulated GPUs gone."""
    yield
    active = ",".join(s.value for s in ACTIVE_STATUSES)
    for run in client.runs.list(status=active, limit=500).items:
        client.runs.stop(run.id)
    deadline = time.monotonic() + 20
    while client.runs.list(status=active).total and time.monotonic() < deadline:
        time.sleep(0.05)
    for pool in client.pools.list():
        if not pool.default:
            client.pools.delete(pool.name)
    client.nodes.simulate_gpus(NODE, 0)


def wait_for(
    client: TrainyardClient, ref: str, done: Callable[[Run], bool], timeout: float = 10.0
) -> Run:
    """Poll the run until ``done(run)``; the last state seen at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.runs.resolve(ref)
        if done(run) or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def gpu_task(tmp_path: Path, name: str, gpus: int = 1, replicas: int = 1) -> Path:
    text = GPU_TASK.format(name=name, gpus=gpus, replicas=replicas)
    return write_task(tmp_path / name, text)


def setup_group(client: TrainyardClient, group: str, project: str, gpus: int) -> str:
    """4 simulated V100s; a group whose one pool holds ``gpus`` of them, and a project in it;
    the pool's name. Through the client: the commands doing this are tested on their own."""
    pool = f"{group}-v100"
    client.nodes.simulate_gpus(NODE, 4, V100)
    client.groups.create(group)
    client.pools.create(pool, "Tesla-V100", group)
    client.pools.assign_gpus(pool, count=gpus)
    client.projects.create(project, group=group)
    return pool


def test_simulated_gpus_show_in_node_ls(live_cli: RunCli) -> None:
    simulated = live_cli("node", "simulate-gpus", "--count", "4", "--type", V100)
    assert simulated.code == 0, simulated.stderr
    assert simulated.stdout.startswith(f"node {NODE} has 4 simulated GPUs now: {V100}, 32.0 GiB")

    listed = live_cli("node", "ls")
    assert listed.code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "CPUS", "MEMORY"]
    assert lines[1].split()[:2] == [NODE, "4"] and "4/4 free" in lines[1]
    gpu_header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["NODE", "INDEX"])
    gpu_rows = [line.split() for line in lines[gpu_header + 1 :]]
    assert [row[:3] for row in gpu_rows] == [[NODE, str(i), V100] for i in range(4)]
    assert all(row[5:8] == ["default", "yes", "-"] for row in gpu_rows)

    nodes = json.loads(live_cli("node", "ls", "--json").stdout)
    assert [n["name"] for n in nodes] == [NODE]
    assert [g["index"] for g in nodes[0]["gpus"]] == [0, 1, 2, 3]
    assert all(g["simulated"] and g["product"] == V100 for g in nodes[0]["gpus"])

    smaller = live_cli("node", "simulate-gpus", "--count", "2", "--node", NODE, "--memory", "16Gi")
    assert (
        smaller.code == 0
        and "2 simulated GPUs now" in smaller.stdout
        and "16.0 GiB" in smaller.stdout
    )
    removed = live_cli("node", "simulate-gpus", "--count", "0")
    assert removed.code == 0 and f"node {NODE} has no simulated GPU now" in removed.stdout
    assert "no GPUs (simulate some with" in live_cli("node", "ls").stderr


def test_pools_take_gpus_by_count_and_by_index(live_cli: RunCli, client: TrainyardClient) -> None:
    client.nodes.simulate_gpus(NODE, 4, V100)
    created = live_cli("pool", "create", "v100", "--type", "Tesla-V100")
    assert created.code == 0, created.stderr
    assert created.stdout.startswith("created pool v100 (Tesla-V100, group default)")
    by_count = live_cli("pool", "assign-gpus", "v100", "--count", "1", "--node", NODE)
    assert by_count.code == 0, by_count.stderr
    assert by_count.stdout.strip() == (
        "moved 1 GPU; pool v100 (Tesla-V100, group default): 1 GPU, 1 free"
    )
    by_index = live_cli("pool", "assign-gpus", "v100", "--gpus", f"{NODE}:3")
    assert by_index.code == 0, by_index.stderr
    assert "pool v100 (Tesla-V100, group default): 2 GPUs, 2 free" in by_index.stdout
    # Moving GPUs between pools keeps the total.
    listed = live_cli("pool", "ls").stdout.splitlines()
    assert [line.split() for line in listed] == [
        ["POOL", "TYPE", "GROUP", "GPUS", "FREE", "SIMULATED"],
        ["default", "(any)", "default", "2", "2", "2"],
        ["v100", "Tesla-V100", "default", "2", "2", "2"],
    ]  # fmt: skip
    node = client.nodes.get(NODE)
    assert [g.pool for g in node.gpus] == ["v100", "default", "default", "v100"]
    deleted = live_cli("pool", "delete", "v100")
    assert deleted.code == 0 and "its GPUs are back in the default pool" in deleted.stdout
    pools = {p["name"]: p for p in json.loads(live_cli("pool", "ls", "--json").stdout)}
    assert set(pools) == {"default"} and pools["default"]["total"] == 4


def test_groups_hold_pools_and_projects(live_cli: RunCli, client: TrainyardClient) -> None:
    client.nodes.simulate_gpus(NODE, 4, V100)
    client.pools.create("v100", "Tesla-V100")
    client.pools.assign_gpus("v100", count=2)
    assert live_cli("group", "create", "research").stdout.strip() == "created group research"
    moved = live_cli("pool", "assign-group", "v100", "research")
    assert moved.code == 0, moved.stderr
    assert moved.stdout.strip() == "pool v100 (Tesla-V100, group research): 2 GPUs, 2 free"
    in_group = live_cli("project", "create", "lab", "--group", "research")
    assert in_group.stdout.strip() == "created project lab in group research"
    client.projects.create("lab-two")
    set_group = live_cli("project", "set-group", "lab-two", "research")
    assert set_group.code == 0 and "project lab-two is in group research" in set_group.stdout
    groups = live_cli("group", "ls").stdout.splitlines()
    assert groups[0].split() == ["GROUP", "POOLS", "GPUS", "PROJECTS"]
    row = next(line for line in groups if line.startswith("research"))
    assert row.split() == ["research", "v100", "2", "(2", "free)", "lab,", "lab-two"]
    projects = live_cli("project", "ls").stdout.splitlines()
    assert projects[0].split()[:2] == ["NAME", "GROUP"]
    assert next(line for line in projects if line.startswith("lab ")).split()[1] == "research"
    busy = live_cli("group", "delete", "research")
    assert busy.code == 1
    assert "group 'research' still has projects lab, lab-two and pools v100" in busy.stderr
    assert "trainyard project set-group" in busy.stderr
    client.groups.create("empty")
    assert live_cli("group", "delete", "empty").stdout.strip() == "deleted group empty"
    assert "empty" not in {g.name for g in client.groups.list()}


def test_unknown_node_pool_gpu_and_project_are_named(
    live_cli: RunCli, client: TrainyardClient
) -> None:
    client.nodes.simulate_gpus(NODE, 2)
    node = live_cli("node", "simulate-gpus", "--count", "2", "--node", "nope")
    assert node.code == 1
    assert node.stderr.strip() == (
        f"error: node 'nope' not found (known nodes: {NODE}); `trainyard node ls` lists them"
    )
    pool = live_cli("pool", "assign-gpus", "nope", "--count", "1")
    assert pool.code == 1
    assert pool.stderr.strip() == (
        "error: pool 'nope' not found (pools: default); create it with "
        "`trainyard pool create nope --type GPU_TYPE`"
    )
    gpu = live_cli("pool", "assign-gpus", "default", "--gpus", f"{NODE}:9")
    assert gpu.code == 1 and f"GPU '{NODE}:9' not found" in gpu.stderr
    assert "trainyard node ls" in gpu.stderr
    project = live_cli("project", "set-group", "nope", "default")
    assert project.code == 1 and "project 'nope' not found" in project.stderr
    queue = live_cli("queue", "--project", "nope")
    assert queue.code == 1 and "project 'nope' not found" in queue.stderr


def test_unknown_group_is_named_with_the_fix(live_cli: RunCli) -> None:
    for args in (
        ["pool", "create", "orphan", "--type", "A100", "--group", "nope"],
        ["pool", "assign-group", "default", "nope"],
        ["project", "create", "homeless", "--group", "nope"],
        ["project", "set-group", "default", "nope"],
        ["group", "delete", "nope"],
    ):
        result = live_cli(*args)
        assert result.code == 1, args
        assert result.stderr.strip() == (
            "error: group 'nope' not found — create it with `trainyard group create nope`"
        ), args


def test_default_pool_and_group_stay(live_cli: RunCli, client: TrainyardClient) -> None:
    pool = live_cli("pool", "delete", "default")
    assert pool.code == 1
    assert pool.stderr.strip() == (
        "error: the default pool cannot be deleted: it holds every GPU not in another pool"
    )
    group = live_cli("group", "delete", "default")
    assert group.code == 1 and "the default group cannot be deleted" in group.stderr
    client.groups.create("refused")
    default_pool = live_cli("pool", "assign-group", "default", "refused")
    assert default_pool.code == 1
    assert "the default pool always belongs to the default group" in default_pool.stderr
    assert {p.name: p.group for p in client.pools.list()} == {"default": "default"}


def test_wrong_gpu_type_and_bad_options(live_cli: RunCli, client: TrainyardClient) -> None:
    client.nodes.simulate_gpus(NODE, 2, V100)
    client.pools.create("a100", "A100-SXM4-80GB")
    wrong = live_cli("pool", "assign-gpus", "a100", "--gpus", f"{NODE}:0")
    assert wrong.code == 1
    assert wrong.stderr.strip() == (
        f"error: GPU {NODE}:0 is a {V100}; pool 'a100' holds A100-SXM4-80GB only"
    )
    none_left = live_cli("pool", "assign-gpus", "a100", "--count", "1")
    assert none_left.code == 1
    assert "the default pool has 0 A100-SXM4-80GB GPU(s), fewer than the 1 asked" in (
        none_left.stderr
    )
    both = live_cli("pool", "assign-gpus", "a100", "--gpus", f"{NODE}:0", "--count", "1")
    assert both.code == 2 and "give either --gpus or --count, not both" in both.stderr
    neither = live_cli("pool", "assign-gpus", "a100")
    assert neither.code == 2 and "--gpus NODE:INDEX" in neither.stderr
    node_alone = live_cli("pool", "assign-gpus", "a100", "--gpus", f"{NODE}:0", "--node", NODE)
    assert node_alone.code == 2 and "--node goes with --count" in node_alone.stderr
    memory = live_cli("node", "simulate-gpus", "--count", "1", "--memory", "16GB")
    assert memory.code == 2 and "'16GB' is not a quantity" in memory.stderr
    priority = live_cli("run", "whatever.yaml", "--priority", "5000")
    assert priority.code == 2 and "--priority" in priority.stderr
    assert {p.name: p.total for p in client.pools.list()} == {"a100": 0, "default": 2}


def test_run_with_a_gpu_shows_its_placement(
    live_cli: RunCli, client: TrainyardClient, tmp_path: Path
) -> None:
    pool = setup_group(client, "place", "place-proj", gpus=2)
    manifest = gpu_task(tmp_path, "one-gpu")
    submitted = live_cli("run", str(manifest), "--project", "place-proj", "--no-code")
    assert submitted.code == 0, submitted.stderr
    ref = "place-proj/one-gpu#1"
    run = wait_for(client, ref, lambda r: r.status == "running")
    assert run.status == "running", run.reason
    assert len(run.placements) == 1 and run.placements[0].node == NODE
    [uuid] = run.placements[0].gpus
    node = client.nodes.get(NODE)
    gpu = next(g for g in node.gpus if g.uuid == uuid)
    assert gpu.pool == pool and not run.placements[0].shared

    described = live_cli("describe", ref)
    assert described.code == 0, described.stderr
    text = described.stdout
    assert "scheduling    group place, priority 0" in text
    placement = text.split("\nplacement\n", 1)[1].splitlines()
    assert placement[0].split() == ["REPLICA", "NODE", "GPUS", "CPU", "MEMORY"]
    assert placement[1].split()[:3] == ["worker-0", NODE, f"{NODE}:{gpu.index}"]
    assert json.loads(live_cli("describe", ref, "--json").stdout)["placements"][0]["gpus"] == [uuid]
    # The replica sees its GPU.
    deadline = time.monotonic() + 10
    while not client.runs.logs(run.id).lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_cli("logs", ref).stdout.strip() == f"worker-0 | gpus={uuid} count=1"
    held = live_cli("node", "ls").stdout
    row = next(line for line in held.splitlines() if line.split()[:2] == [NODE, str(gpu.index)])
    assert row.split()[-2:] == [ref, "worker-0"]


def test_queue_shows_priority_order_and_reasons(
    live_cli: RunCli, client: TrainyardClient, tmp_path: Path
) -> None:
    pool = setup_group(client, "busy", "busy-proj", gpus=1)
    manifest = gpu_task(tmp_path, "waits")
    project = ["--project", "busy-proj", "--no-code"]
    assert live_cli("run", str(manifest), *project).code == 0
    first = wait_for(client, "busy-proj/waits#1", lambda r: r.status == "running")
    assert first.status == "running", first.reason
    assert live_cli("run", str(manifest), *project).code == 0
    assert live_cli("run", str(manifest), *project, "--priority", "5").code == 0
    waiting = f"waiting for 1 × {V100} in pool '{pool}'"
    for ref in ("busy-proj/waits#2", "busy-proj/waits#3"):
        run = wait_for(client, ref, lambda r: waiting in r.reason)
        assert run.status == "queued" and waiting in run.reason, run.reason

    queue = live_cli("queue")
    assert queue.code == 0, queue.stderr
    lines = queue.stdout.splitlines()
    assert lines[0].split() == [
        "POS", "RUN", "ID", "PRIORITY", "GPUS", "WAITING", "TIMEOUT", "REASON"
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:]]
    # Priority first, then submission order.
    assert [(r[0], r[1], r[3], r[4], r[6]) for r in rows] == [
        ("1", "busy-proj/waits#3", "5", "1", "-"),
        ("2", "busy-proj/waits#2", "0", "1", "-"),
    ]
    assert f"{waiting} (0 free, 0 runs ahead)" in lines[1]
    assert f"{waiting} (0 free, 1 run ahead)" in lines[2]
    entries = json.loads(live_cli("queue", "--project", "busy-proj", "--json").stdout)
    assert [(e["run"], e["position"], e["priority"]) for e in entries] == [
        ("busy-proj/waits#3", 1, 5),
        ("busy-proj/waits#2", 2, 0),
    ]
    described = live_cli("describe", "busy-proj/waits#2").stdout
    assert described.splitlines()[0].startswith("busy-proj/waits#2  (run ")
    assert f"queued  {waiting}" in described.splitlines()[0]
    assert f"queue         position 2: {waiting}" in described

    # The GPU freed goes to the higher priority.
    client.runs.stop(first.id)
    promoted = wait_for(client, "busy-proj/waits#3", lambda r: r.status == "running")
    assert promoted.status == "running", promoted.reason
    assert client.runs.resolve("busy-proj/waits#2").status == "queued"


def test_start_immediately_shares_a_busy_gpu(
    live_cli: RunCli, client: TrainyardClient, tmp_path: Path
) -> None:
    setup_group(client, "share", "share-proj", gpus=1)
    manifest = gpu_task(tmp_path, "shares")
    project = ["--project", "share-proj", "--no-code"]
    assert live_cli("run", str(manifest), *project).code == 0
    first = wait_for(client, "share-proj/shares#1", lambda r: r.status == "running")
    assert first.status == "running", first.reason
    now = live_cli("run", str(manifest), *project, "--start-immediately")
    assert now.code == 0, now.stderr
    shared = wait_for(client, "share-proj/shares#2", lambda r: r.status == "running")
    assert shared.status == "running", shared.reason
    assert shared.start_immediately and shared.placements[0].shared
    assert shared.placements[0].gpus == first.placements[0].gpus
    text = live_cli("describe", "share-proj/shares#2").stdout
    assert "start immediately (GPUs shared)" in text
    assert "(shared)" in text.split("\nplacement\n", 1)[1].splitlines()[1]
    holders = live_cli("node", "ls").stdout
    assert "share-proj/shares#1 worker-0, share-proj/shares#2 worker-0 (shared)" in holders
    assert "the queue is empty" in live_cli("queue", "--project", "share-proj").stderr


def test_run_needing_more_gpus_than_exist_is_refused(
    live_cli: RunCli, client: TrainyardClient, tmp_path: Path
) -> None:
    setup_group(client, "small", "small-proj", gpus=2)
    manifest = gpu_task(tmp_path, "too-big", gpus=3)
    refused = live_cli("run", str(manifest), "--project", "small-proj", "--no-code")
    assert refused.code == 1
    assert refused.stderr.startswith(
        "error: task 'too-big' cannot run in project 'small-proj': replica worker-0 requests "
        "3 × GPU on one node, but no node has more than 2 in pool 'small-v100'"
    )
    assert "trainyard pool assign-gpus" in refused.stderr
    assert client.runs.list(project="small-proj").total == 0
