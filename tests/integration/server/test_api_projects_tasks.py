"""REST API: health, projects, tasks and the error format, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_support import manifest

BAD_MANIFEST = """name: train
resources:
  - name: worker
    replicas: 0
    command: echo hi
    replcas: 2
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, server_factory: Any) -> Iterator[httpx.Client]:
    """One live server per backend for this module (tests use distinct names)."""
    server = server_factory.start(request.param)
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as c:
        yield c
    server.close()


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the error shape and return its ``error`` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["fields"], dict)
    err: dict[str, Any] = body["error"]
    return err


def test_health(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": "0.1.0", "executor": "local"}


def test_openapi_and_docs_are_served(client: httpx.Client) -> None:
    base = str(client.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
    spec = httpx.get(f"{base}/openapi.json").json()
    assert "/api/v1/projects/{project}/runs" in spec["paths"]
    assert "/api/v1/runs/{run_id}/logs/stream" in spec["paths"]
    assert httpx.get(f"{base}/docs").status_code == 200


def test_default_project_exists(client: httpx.Client) -> None:
    names = [p["name"] for p in client.get("/projects").json()["items"]]
    assert "default" in names
    assert client.get("/projects/default").json()["name"] == "default"


def test_create_get_and_list_project(client: httpx.Client) -> None:
    r = client.post("/projects", json={"name": "vision", "summary": "# Vision"})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "vision" and body["summary"] == "# Vision"
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert client.get("/projects/vision").json() == body
    assert "vision" in [p["name"] for p in client.get("/projects").json()["items"]]


def test_duplicate_project_is_409(client: httpx.Client) -> None:
    assert client.post("/projects", json={"name": "dup"}).status_code == 201
    err = error(client.post("/projects", json={"name": "dup"}), 409, "conflict")
    assert err["message"] == "project 'dup' already exists"


@pytest.mark.parametrize("name", ["Bad", "a_b", "-a", "a-", "", "x" * 64, "../x", "a b", "é"])
def test_invalid_project_names_are_400(client: httpx.Client, name: str) -> None:
    err = error(client.post("/projects", json={"name": name}), 400, "invalid_input")
    assert "project name" in err["message"]


def test_unknown_project_is_404_with_the_fix(client: httpx.Client) -> None:
    err = error(client.get("/projects/nope"), 404, "not_found")
    assert (
        err["message"]
        == "project 'nope' not found — create it with `trainyard project create nope`"
    )
    assert err["fields"] == {"project": "nope"}


def test_set_summary(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "sum"})
    r = client.put("/projects/sum/summary", json={"summary": "<script>x</script> **md**"})
    assert r.status_code == 200
    assert client.get("/projects/sum").json()["summary"] == "<script>x</script> **md**"
    error(client.put("/projects/nope/summary", json={"summary": "x"}), 404, "not_found")


def test_request_validation_errors_are_400_invalid_input(client: httpx.Client) -> None:
    err = error(client.post("/projects", json={"name": "ok", "nmae": "typo"}), 400, "invalid_input")
    assert err["message"].startswith("nmae: ")
    assert err["fields"]["errors"][0]["loc"] == ["body", "nmae"]
    err = error(client.post("/projects", json={}), 400, "invalid_input")
    assert err["message"].startswith("name: ")
    err = error(
        client.post(
            "/projects", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "invalid_input",
    )
    err = error(client.get("/runs/abc"), 400, "invalid_input")
    assert err["message"].startswith("run_id: ")
    err = error(client.get("/runs", params={"limit": 501}), 400, "invalid_input")
    assert err["message"].startswith("limit: ")


def test_unknown_route_and_method(client: httpx.Client) -> None:
    err = error(client.get("/nothing/here"), 404, "not_found")
    assert "/api/v1/nothing/here" in err["message"]
    err = error(client.delete("/projects"), 405, "method_not_allowed")
    assert "DELETE" in err["message"]


def test_create_list_get_task(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "tasks-a"})
    r = client.post("/projects/tasks-a/tasks", json={"manifest": manifest("train", replicas=2)})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["name"] == "train" and task["project"] == "tasks-a"
    assert task["spec"]["resources"][0]["replicas"] == 2
    assert task["runs_count"] == 0
    assert client.get("/projects/tasks-a/tasks/train").json() == task
    assert [t["name"] for t in client.get("/projects/tasks-a/tasks").json()["items"]] == ["train"]


def test_existing_task_is_409_unless_replace(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "tasks-b"})
    assert client.post("/projects/tasks-b/tasks", json={"manifest": manifest()}).status_code == 201
    err = error(
        client.post("/projects/tasks-b/tasks", json={"manifest": manifest()}), 409, "conflict"
    )
    assert "tasks-b/train" in err["message"] and "replace" in err["message"]
    r = client.post(
        "/projects/tasks-b/tasks", json={"manifest": manifest(command="echo v2"), "replace": True}
    )
    assert r.status_code == 201
    assert (
        client.get("/projects/tasks-b/tasks/train").json()["spec"]["resources"][0]["command"]
        == "echo v2"
    )


def test_malformed_manifest_is_400_with_line_and_column(client: httpx.Client) -> None:
    r = client.post(
        "/projects/default/tasks", json={"manifest": BAD_MANIFEST, "filename": "t.yaml"}
    )
    err = error(r, 400, "invalid_manifest")
    issues = err["fields"]["issues"]
    assert len(issues) >= 2
    by_path = {i["path"]: i for i in issues}
    replicas = by_path["resources[0].replicas"]
    assert (replicas["filename"], replicas["line"], replicas["column"]) == ("t.yaml", 4, 15)
    assert any("replcas" in i["message"] or "replcas" in i["path"] for i in issues)
    assert "t.yaml:4:15" in err["message"]
    # Nothing was created.
    error(client.get("/projects/default/tasks/train-never"), 404, "not_found")


@pytest.mark.parametrize(
    "text",
    ["", "- a\n- b\n", "name: [unclosed\n", "!!python/object:os.system {}\n", "name: x\n"],
)
def test_other_bad_manifests_are_400(client: httpx.Client, text: str) -> None:
    err = error(
        client.post("/projects/default/tasks", json={"manifest": text}), 400, "invalid_manifest"
    )
    assert err["fields"]["issues"], err
    for issue in err["fields"]["issues"]:
        assert issue["line"] >= 1 and issue["column"] >= 1


def test_task_routes_404(client: httpx.Client) -> None:
    err = error(client.get("/projects/default/tasks/nope"), 404, "not_found")
    assert "task 'default/nope' not found" in err["message"]
    error(client.get("/projects/nope/tasks"), 404, "not_found")
    error(client.post("/projects/nope/tasks", json={"manifest": manifest()}), 404, "not_found")


def test_task_name_override(client: httpx.Client) -> None:
    r = client.post(
        "/projects/default/tasks", json={"manifest": manifest("orig"), "name": "renamed"}
    )
    assert r.status_code == 201 and r.json()["name"] == "renamed"
    error(
        client.post("/projects/default/tasks", json={"manifest": manifest(), "name": "Bad Name"}),
        400,
        "invalid_input",
    )


def test_huge_manifest_is_413(client: httpx.Client) -> None:
    text = manifest() + "# " + "x" * (1 << 20) + "\n"
    err = error(
        client.post("/projects/default/tasks", json={"manifest": text}), 413, "payload_too_large"
    )
    assert "limit is 1048576 bytes" in err["message"]
