"""The scheduling calls of the client: the requests they send and the models they return."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from trainyard.client import TrainyardClient
from trainyard.core.errors import ConflictError, NotFoundError
from trainyard.core.scheduling import Group, Node, Pool, QueueEntry

NOW = "2026-11-21T20:00:00Z"
GPU = {
    "uuid": "GPU-sim-1",
    "index": 0,
    "product": "Tesla-V100-SXM3-32GB",
    "memory_bytes": 32 << 30,
    "node": "node-a",
    "pool": "v100",
    "simulated": True,
    "present": True,
    "used_by": [{"run_id": 3, "run": "vision/train#1", "replica": "worker-0", "shared": False}],
}
NODE = {
    "name": "node-a",
    "cpu_millis": 4000,
    "memory_bytes": 16 << 30,
    "reserved_cpu_millis": 0,
    "reserved_memory_bytes": 0,
    "registered_at": NOW,
    "heartbeat_at": NOW,
    "gpus": [GPU],
}
POOL = {
    "name": "v100",
    "gpu_type": "Tesla-V100",
    "group": "research",
    "default": False,
    "gpus": ["GPU-sim-1"],
    "total": 1,
    "free": 0,
    "simulated": 1,
}
GROUP = {"name": "research", "default": False, "pools": ["v100"], "projects": ["vision"]}
ENTRY = {
    "position": 1,
    "run_id": 4,
    "run": "vision/train#2",
    "project": "vision",
    "group": "research",
    "priority": 5,
    "start_immediately": False,
    "submitted_by": "ada",
    "queued_at": NOW,
    "waiting_seconds": 3.0,
    "timeout_seconds": None,
    "gpus": 1,
    "reason": "waiting for 1 × Tesla-V100 in pool 'v100' (0 free, 0 runs ahead)",
}
PROJECT = {"id": 2, "name": "vision", "summary": "", "created_at": NOW, "group": "research"}
RUN = {
    "id": 4,
    "ref": "vision/train#2",
    "project": "vision",
    "task": "train",
    "build_id": 2,
    "status": "queued",
    "manifest": "name: train\n",
    "spec": {"name": "train", "resources": [{"name": "worker", "command": "true"}]},
    "executor": "local",
    "created_at": NOW,
    "updated_at": NOW,
    "priority": 5,
    "start_immediately": True,
}

Sent = list[tuple[str, str, Any]]


@pytest.fixture
def sent() -> Sent:
    return []


@pytest.fixture
def reply() -> dict[tuple[str, str], httpx.Response]:
    return {}


@pytest.fixture
def client(sent: Sent, reply: dict[tuple[str, str], httpx.Response]) -> Iterator[TrainyardClient]:
    """A client whose requests are recorded and answered from ``reply``."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path.removeprefix("/api/v1")
        if request.url.query:
            path += "?" + request.url.query.decode()
        sent.append((request.method, path, body))
        return reply.get((request.method, path), httpx.Response(204))

    with TrainyardClient("http://ty.test") as c:
        c._transport._http.close()
        c._transport._http = httpx.Client(
            base_url="http://ty.test/api/v1", transport=httpx.MockTransport(handle)
        )
        yield c


Answer = Callable[[str, str, Any], None]


@pytest.fixture
def answer(reply: dict[tuple[str, str], httpx.Response]) -> Answer:
    def set_reply(method: str, path: str, data: Any) -> None:
        reply[(method, path)] = httpx.Response(200, json=data)

    return set_reply


def test_nodes(client: TrainyardClient, sent: Sent, answer: Answer) -> None:
    answer("GET", "/nodes", {"items": [NODE]})
    answer("GET", "/nodes/node-a", NODE)
    answer("PUT", "/nodes/node-a/simulated-gpus", NODE)
    [node] = client.nodes.list()
    assert isinstance(node, Node) and node.gpus[0].used_by[0].run == "vision/train#1"
    assert client.nodes.get("node-a") == node
    assert client.nodes.simulate_gpus("node-a", 4) == node
    client.nodes.simulate_gpus("node-a", 2, "A100-SXM4-80GB", 80 << 30)
    assert sent[2:] == [
        (
            "PUT",
            "/nodes/node-a/simulated-gpus",
            {"count": 4, "type": "Tesla-V100-SXM3-32GB", "memory_bytes": 32 << 30},
        ),
        (
            "PUT",
            "/nodes/node-a/simulated-gpus",
            {"count": 2, "type": "A100-SXM4-80GB", "memory_bytes": 80 << 30},
        ),
    ]


def test_pools(client: TrainyardClient, sent: Sent, answer: Answer) -> None:
    answer("GET", "/pools", {"items": [POOL]})
    answer("POST", "/pools", POOL)
    answer("POST", "/pools/v100/gpus", POOL)
    answer("PUT", "/pools/v100/group", POOL)
    assert client.pools.list() == [Pool.model_validate(POOL)]
    assert client.pools.create("v100", "Tesla-V100", "research").group == "research"
    client.pools.assign_gpus("v100", count=2, node="node-a")
    client.pools.assign_gpus("v100", ["node-a:3", "GPU-sim-1"])
    client.pools.assign_group("v100", "research")
    assert client.pools.delete("v100") is None
    assert sent[1:] == [
        ("POST", "/pools", {"name": "v100", "gpu_type": "Tesla-V100", "group": "research"}),
        ("POST", "/pools/v100/gpus", {"gpus": [], "count": 2, "node": "node-a"}),
        (
            "POST",
            "/pools/v100/gpus",
            {"gpus": ["node-a:3", "GPU-sim-1"], "count": None, "node": None},
        ),
        ("PUT", "/pools/v100/group", {"group": "research"}),
        ("DELETE", "/pools/v100", None),
    ]


def test_groups_and_queue(client: TrainyardClient, sent: Sent, answer: Answer) -> None:
    answer("GET", "/groups", {"items": [GROUP]})
    answer("POST", "/groups", GROUP)
    answer("GET", "/queue", {"items": [ENTRY]})
    answer("GET", "/queue?project=vision", {"items": [ENTRY]})
    assert client.groups.list() == [Group.model_validate(GROUP)]
    assert client.groups.create("research").pools == ["v100"]
    client.groups.delete("research")
    [entry] = client.queue.list()
    assert isinstance(entry, QueueEntry) and entry.position == 1 and entry.priority == 5
    assert client.queue.list(project="vision") == [entry]
    assert [(m, p) for m, p, _ in sent] == [
        ("GET", "/groups"),
        ("POST", "/groups"),
        ("DELETE", "/groups/research"),
        ("GET", "/queue"),
        ("GET", "/queue?project=vision"),
    ]


def test_projects_group(client: TrainyardClient, sent: Sent, answer: Answer) -> None:
    answer("POST", "/projects", PROJECT)
    answer("PUT", "/projects/vision/group", PROJECT)
    assert client.projects.create("vision", group="research").group == "research"
    client.projects.create("plain")
    assert client.projects.set_group("vision", "research").group == "research"
    assert sent == [
        ("POST", "/projects", {"name": "vision", "summary": "", "group": "research"}),
        ("POST", "/projects", {"name": "plain", "summary": ""}),
        ("PUT", "/projects/vision/group", {"group": "research"}),
    ]


def test_submit_sends_priority_and_start_immediately_only_when_set(
    client: TrainyardClient, sent: Sent, answer: Answer
) -> None:
    answer("POST", "/projects/vision/runs", RUN)
    run = client.runs.submit(
        "vision", manifest="name: train\n", priority=5, start_immediately=True, submitted_by=""
    )
    assert run.priority == 5 and run.start_immediately
    client.runs.submit("vision", manifest="name: train\n", submitted_by="")
    first, second = (body for _, _, body in sent)
    assert first["priority"] == 5 and first["start_immediately"] is True
    assert "priority" not in second and "start_immediately" not in second


def test_errors_come_back_as_their_class(
    client: TrainyardClient, reply: dict[tuple[str, str], httpx.Response]
) -> None:
    reply[("DELETE", "/pools/default")] = httpx.Response(
        409,
        json={"error": {"code": "conflict", "message": "the default pool cannot be deleted"}},
    )
    reply[("GET", "/nodes/nope")] = httpx.Response(
        404, json={"error": {"code": "not_found", "message": "node 'nope' not found"}}
    )
    with pytest.raises(ConflictError, match="default pool cannot be deleted"):
        client.pools.delete("default")
    with pytest.raises(NotFoundError, match="node 'nope' not found"):
        client.nodes.get("nope")
