"""REST API: archiving, restoring and deleting runs. SQLite + PostgreSQL, real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_support import manifest, wait_status


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, server_factory: Any
) -> Iterator[tuple[Any, httpx.Client]]:
    """One live server per backend for this module (tests use distinct task names)."""
    server = server_factory.start(request.param)
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield server, c
    server.close()


@pytest.fixture
def client(served: tuple[Any, httpx.Client]) -> httpx.Client:
    return served[1]


def submit(client: httpx.Client, name: str, command: str = "echo hi") -> dict[str, Any]:
    r = client.post("/projects/default/runs", json={"manifest": manifest(name, command)})
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert err["code"] == code
    message: str = err["message"]
    return message


def ids(client: httpx.Client, **params: str) -> set[int]:
    r = client.get("/runs", params={"project": "default", "limit": "500", **params})
    assert r.status_code == 200, r.text
    return {item["id"] for item in r.json()["items"]}


def test_archive_hides_from_the_default_list_and_restore_brings_it_back(
    client: httpx.Client,
) -> None:
    run = submit(client, "arch-a")
    wait_status(client, run["id"], {"complete"})
    r = client.post(f"/runs/{run['id']}/archive")
    assert r.status_code == 200, r.text
    assert r.json()["archived"] is True
    assert run["id"] not in ids(client)
    assert run["id"] in ids(client, archived="true")
    assert run["id"] in ids(client, archived="all")
    assert client.get(f"/runs/{run['id']}").json()["archived"] is True
    # Archiving twice changes nothing; restoring brings it back.
    assert client.post(f"/runs/{run['id']}/archive").status_code == 200
    r = client.post(f"/runs/{run['id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["archived"] is False
    assert run["id"] in ids(client)
    assert run["id"] not in ids(client, archived="true")
    reasons = [e["reason"] for e in client.get(f"/runs/{run['id']}/events").json()["items"]]
    assert "archived by user" in reasons
    assert "restored from the archive by user" in reasons


def test_archived_filter_refuses_nonsense(client: httpx.Client) -> None:
    message = error(client.get("/runs", params={"archived": "maybe"}), 400, "invalid_input")
    assert "archived" in message


def test_delete_removes_rows_events_and_the_run_directory(
    served: tuple[Any, httpx.Client],
) -> None:
    server, client = served
    run = submit(client, "del-a", "echo bye")
    wait_status(client, run["id"], {"complete"})
    run_dir = server.home / "runs" / str(run["id"])
    assert (run_dir / "logs").is_dir()
    r = client.delete(f"/runs/{run['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["ref"] == run["ref"]
    error(client.get(f"/runs/{run['id']}"), 404, "not_found")
    error(client.get(f"/runs/{run['id']}/events"), 404, "not_found")
    assert run["id"] not in ids(client, archived="all")
    assert not run_dir.exists()
    assert not any((server.home / "runs" / "deleted").iterdir())
    # Deleting again: the run is gone.
    error(client.delete(f"/runs/{run['id']}"), 404, "not_found")


def test_unknown_runs_are_404(client: httpx.Client) -> None:
    for response in (
        client.post("/runs/987654/archive"),
        client.post("/runs/987654/restore"),
        client.delete("/runs/987654"),
    ):
        assert "run 987654 not found" in error(response, 404, "not_found")


def test_active_runs_cannot_be_archived_or_deleted(client: httpx.Client) -> None:
    run = submit(client, "busy-a", "sleep 60")
    wait_status(client, run["id"], {"running"})
    for response in (
        client.post(f"/runs/{run['id']}/archive"),
        client.delete(f"/runs/{run['id']}"),
    ):
        message = error(response, 409, "conflict")
        assert run["ref"] in message
        assert "stop it first" in message
    assert client.get(f"/runs/{run['id']}").json()["archived"] is False
    client.post(f"/runs/{run['id']}/stop")
    wait_status(client, run["id"], {"stopped"})
    assert client.delete(f"/runs/{run['id']}").status_code == 200
    error(client.get(f"/runs/{run['id']}"), 404, "not_found")


def test_a_run_submitted_after_a_delete_never_sees_the_old_logs(client: httpx.Client) -> None:
    # On SQLite the id of a deleted last run is handed out again: its directory must be gone.
    old = submit(client, "reuse-a", "echo old-output")
    wait_status(client, old["id"], {"complete"})
    assert client.delete(f"/runs/{old['id']}").status_code == 200
    new = submit(client, "reuse-a", "echo new-output")
    wait_status(client, new["id"], {"complete"})
    assert new["build_id"] == old["build_id"] + 1  # build ids are never handed out twice
    lines = [line["text"] for line in client.get(f"/runs/{new['id']}/logs").json()["lines"]]
    assert lines == ["new-output"]
    events = client.get(f"/runs/{new['id']}/events").json()["items"]
    statuses = [e["status"] for e in events if e["kind"] == "status"]
    assert statuses.count("queued") == 1  # none of the old run's events came along
    assert statuses[-1] == "complete"
