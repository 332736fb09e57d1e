"""REST API: submitting, listing, getting, stopping runs; events; errors. SQLite + PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import manifest, wait_status

from trainyard.server.store import Database
from trainyard.server.store import runs as runs_store

AICHOR_SEED = Path(__file__).parents[2] / "unit" / "manifest" / "fixtures" / "aichor-seed.yaml"

PARAM_MANIFEST = """name: params
parameters:
  - name: steps
    type: int
    default: 10
  - name: lr
    type: float
    required: true
resources:
  - name: worker
    command: echo steps={{ .steps }} lr={{ .lr }}
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, server_factory: Any) -> Iterator[httpx.Client]:
    """One live server per backend for this module (tests use distinct names)."""
    server = server_factory.start(request.param)
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c
    server.close()


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert err["code"] == code
    return err


def submit(client: httpx.Client, project: str = "default", **body: Any) -> dict[str, Any]:
    r = client.post(f"/projects/{project}/runs", json=body)
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def test_submit_with_a_manifest_creates_the_task_and_a_queued_run(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "sub-a"})
    git = {"branch": "main", "commit": "c" * 40, "dirty": True, "remote": None}
    run = submit(client, "sub-a", manifest=manifest("hello", "echo hi"), git=git)
    assert run["status"] == "queued"
    assert run["ref"] == "sub-a/hello#1" and run["build_id"] == 1
    assert run["git"] == git and run["snapshot_id"] is None
    assert run["executor"] == "local"
    task = client.get("/projects/sub-a/tasks/hello").json()
    assert task["runs_count"] == 1
    # Same name again: the task's manifest is updated, the build id goes on.
    second = submit(client, "sub-a", manifest=manifest("hello", "echo v2"))
    assert second["build_id"] == 2
    assert (
        client.get("/projects/sub-a/tasks/hello").json()["spec"]["resources"][0]["command"]
        == "echo v2"
    )
    done = wait_status(client, second["id"], {"complete"})
    assert done["reason"]


def test_submit_a_stored_task_with_parameters(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "sub-b"})
    assert (
        client.post("/projects/sub-b/tasks", json={"manifest": PARAM_MANIFEST}).status_code == 201
    )
    run = submit(client, "sub-b", task="params", parameters={"lr": "0.5", "steps": 3})
    assert run["parameters"] == {"steps": 3, "lr": 0.5}
    assert run["spec"]["resources"][0]["command"] == "echo steps=3 lr=0.5"
    assert run["manifest"] == PARAM_MANIFEST
    run = wait_status(client, run["id"], {"complete"})
    logs = client.get(f"/runs/{run['id']}/logs").json()
    assert [line["text"] for line in logs["lines"]] == ["steps=3 lr=0.5"]


def test_bad_parameters_are_400_and_create_nothing(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "sub-c"})
    err = error(
        client.post(
            "/projects/sub-c/runs", json={"manifest": PARAM_MANIFEST, "parameters": {"lr": "fast"}}
        ),
        400,
        "invalid_parameter",
    )
    assert "lr" in err["message"]
    err = error(
        client.post("/projects/sub-c/runs", json={"manifest": PARAM_MANIFEST}),
        400,
        "invalid_parameter",
    )
    assert "missing required parameter 'lr'" in err["message"]
    err = error(
        client.post(
            "/projects/sub-c/runs",
            json={"manifest": PARAM_MANIFEST, "parameters": {"lr": 1, "stpes": 2}},
        ),
        400,
        "invalid_parameter",
    )
    assert "did you mean 'steps'" in err["message"]
    assert client.get("/projects/sub-c/tasks").json()["items"] == []
    assert client.get("/runs", params={"project": "sub-c"}).json()["total"] == 0


def test_what_the_backend_could_never_launch_is_400_and_creates_nothing(
    client: httpx.Client,
) -> None:
    client.post("/projects", json={"name": "sub-w"})
    bad_dir = "name: wd\nresources:\n  - name: w\n    command: echo\n    workDir: $NOPE/x\n"
    err = error(
        client.post("/projects/sub-w/runs", json={"manifest": bad_dir}), 400, "invalid_input"
    )
    assert "unknown variable $NOPE" in err["message"]
    nfs = (
        "name: vol\nresources:\n  - name: w\n    command: echo\n    volumes:\n"
        "      - {name: data, mountPath: /data, nfs: {server: nas, path: /x}}\n"
    )
    err = error(client.post("/projects/sub-w/runs", json={"manifest": nfs}), 400, "invalid_input")
    assert "data" in err["message"] and "hostPath" in err["message"]
    assert client.get("/projects/sub-w/tasks").json()["items"] == []
    assert client.get("/runs", params={"project": "sub-w"}).json()["total"] == 0


def test_manifest_and_task_are_exclusive(client: httpx.Client) -> None:
    err = error(client.post("/projects/default/runs", json={}), 400, "invalid_input")
    assert "exactly one" in err["message"]
    error(
        client.post("/projects/default/runs", json={"manifest": manifest(), "task": "train"}),
        400,
        "invalid_input",
    )


def test_submit_errors(client: httpx.Client) -> None:
    error(client.post("/projects/nope/runs", json={"manifest": manifest()}), 404, "not_found")
    err = error(
        client.post("/projects/default/runs", json={"task": "never-stored"}), 404, "not_found"
    )
    assert err["message"].startswith("task 'default/never-stored' not found")
    err = error(
        client.post(
            "/projects/default/runs", json={"manifest": manifest(), "snapshot_id": "0" * 64}
        ),
        404,
        "not_found",
    )
    assert "snapshot" in err["message"]
    error(
        client.post("/projects/default/runs", json={"manifest": manifest(), "snapshot_id": "../x"}),
        400,
        "invalid_input",
    )
    err = error(
        client.post("/projects/default/runs", json={"manifest": "name: x\nresources: 3\n"}),
        400,
        "invalid_manifest",
    )
    assert err["fields"]["issues"][0]["line"] == 2


def test_submitted_by_round_trip_and_bad_values(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "who"})
    run = submit(client, "who", manifest=manifest("who-a", "true"), submitted_by="  alice  ")
    assert run["submitted_by"] == "alice"
    assert client.get(f"/runs/{run['id']}").json()["submitted_by"] == "alice"
    listed = client.get("/runs", params={"project": "who"}).json()["items"]
    assert [r["submitted_by"] for r in listed] == ["alice"]
    # Optional: without it the run records "".
    anonymous = submit(client, "who", manifest=manifest("who-a", "true"))
    assert anonymous["submitted_by"] == ""
    for bad in ("x" * 129, "eve\x1b[31m", "bob\nroot", 7):
        err = error(
            client.post(
                "/projects/who/runs", json={"manifest": manifest("who-b"), "submitted_by": bad}
            ),
            400,
            "invalid_input",
        )
        assert "submitted_by" in err["message"], err
    # The refused submissions created nothing.
    assert client.get("/projects/who/tasks/who-b").status_code == 404
    assert client.get("/runs", params={"project": "who"}).json()["total"] == 2
    # 128 characters is the limit, surrounding blanks are not counted.
    longest = submit(
        client, "who", manifest=manifest("who-a", "true"), submitted_by=" " + "u" * 128 + " "
    )
    assert longest["submitted_by"] == "u" * 128


def test_kuberay_is_refused_with_422(client: httpx.Client) -> None:
    text = AICHOR_SEED.read_text()
    err = error(
        client.post("/projects/default/runs", json={"manifest": text, "filename": "manifest.yaml"}),
        422,
        "unsupported",
    )
    assert err["message"] == (
        "operator 'kuberay' needs the Ray backend, which this version of trainyard does not "
        "have yet; run the same code with a trainyard manifest (resources `head`/`worker`) "
        "meanwhile"
    )
    # The message must not suggest a setting that stops the server from starting.
    assert "TRAINYARD_RUNS__EXECUTOR" not in err["message"]


def test_get_run_and_lookup_by_ref(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "get-a"})
    run = submit(client, "get-a", manifest=manifest("t"))
    got = client.get(f"/runs/{run['id']}").json()
    assert got["id"] == run["id"] and got["ref"] == "get-a/t#1"
    by_ref = client.get("/projects/get-a/tasks/t/runs/1").json()
    assert by_ref["id"] == run["id"]
    err = error(client.get("/runs/987654"), 404, "not_found")
    assert err["message"] == "run 987654 not found"
    err = error(client.get("/projects/get-a/tasks/t/runs/3"), 404, "not_found")
    assert err["message"] == "run 'get-a/t#3' not found"


def test_list_paging_filters_newest_first(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "list-a"})
    ids = [submit(client, "list-a", manifest=manifest(name, "true"))["id"] for name in "aaab"]
    for run_id in ids:
        wait_status(client, run_id, {"complete"})
    page = client.get("/runs", params={"project": "list-a", "limit": 2}).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0
    assert [r["id"] for r in page["items"]] == ids[::-1][:2]
    page = client.get("/runs", params={"project": "list-a", "limit": 2, "offset": 2}).json()
    assert [r["id"] for r in page["items"]] == ids[::-1][2:]
    page = client.get("/runs", params={"project": "list-a", "task": "a"}).json()
    assert page["total"] == 3
    page = client.get("/runs", params={"project": "list-a", "status": "complete,error"}).json()
    assert page["total"] == 4
    page = client.get("/runs", params={"project": "list-a", "status": "running,queued"}).json()
    assert page["total"] == 0
    err = error(client.get("/runs", params={"status": "running,done"}), 400, "invalid_input")
    assert "unknown status 'done'" in err["message"]
    error(client.get("/runs", params={"task": "a"}), 400, "invalid_input")
    error(client.get("/runs", params={"limit": 0}), 400, "invalid_input")
    error(client.get("/runs", params={"offset": -1}), 400, "invalid_input")
    error(client.get("/runs", params={"project": "nope"}), 404, "not_found")
    error(client.get("/runs", params={"project": "list-a", "task": "nope"}), 404, "not_found")


def test_sql_looking_filters_are_just_values(client: httpx.Client) -> None:
    error(client.get("/runs", params={"status": "queued' OR '1'='1"}), 400, "invalid_input")
    error(client.get("/runs", params={"project": "x'; DROP TABLE runs; --"}), 404, "not_found")
    assert client.get("/runs").status_code == 200


def test_stop_a_running_run_then_stop_again(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "stop-a"})
    run = submit(client, "stop-a", manifest=manifest("sleeper", "sleep 60"))
    wait_status(client, run["id"], {"running"})
    r = client.post(f"/runs/{run['id']}/stop")
    assert r.status_code == 200
    assert r.json()["status"] in ("stopping", "stopped")
    done = wait_status(client, run["id"], {"stopped"}, timeout=30)
    assert done["finished_at"] is not None
    again = client.post(f"/runs/{run['id']}/stop")
    assert again.status_code == 200 and again.json()["status"] == "stopped"
    statuses = [
        e["status"]
        for e in client.get(f"/runs/{run['id']}/events").json()["items"]
        if e["kind"] == "status"
    ]
    assert statuses == ["queued", "starting", "running", "stopping", "stopped"]
    error(client.post("/runs/987654/stop"), 404, "not_found")


def test_events_oldest_first_and_after(client: httpx.Client) -> None:
    run = submit(client, manifest=manifest("ev", "echo x"))
    wait_status(client, run["id"], {"complete"})
    events = client.get(f"/runs/{run['id']}/events").json()["items"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    status_events = [e for e in events if e["kind"] == "status"]
    assert [e["status"] for e in status_events] == ["queued", "starting", "running", "complete"]
    assert status_events[0]["reason"] == "submitted"
    assert status_events[1]["reason"].startswith("launching on local: placed on ")
    later = client.get(f"/runs/{run['id']}/events", params={"after": ids[1]}).json()["items"]
    assert [e["id"] for e in later] == ids[2:]
    error(client.get("/runs/987654/events"), 404, "not_found")


def test_failed_run_is_error_with_exit_code_and_last_lines(client: httpx.Client) -> None:
    run = submit(client, manifest=manifest("fails", "echo last words; exit 3"))
    done = wait_status(client, run["id"], {"error"})
    assert done["reason"] == "replica worker-0 failed: exit code 3"
    replica = done["replicas"][0]
    assert (replica["status"], replica["exit_code"]) == ("failed", 3)
    events = client.get(f"/runs/{run['id']}/events").json()["items"]
    final = [e for e in events if e["kind"] == "status"][-1]
    assert final["status"] == "error" and "last words" in final["message"]


def test_twenty_concurrent_submissions_get_build_ids_1_to_20(client: httpx.Client) -> None:
    client.post("/projects", json={"name": "race"})
    base = str(client.base_url)
    results: list[httpx.Response] = []
    barrier = threading.Barrier(20)
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            barrier.wait()
            r = c.post("/projects/race/runs", json={"manifest": manifest("same", "true")})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [r.status_code for r in results] == [201] * 20, [
        r.text for r in results if r.status_code != 201
    ]
    assert sorted(r.json()["build_id"] for r in results) == list(range(1, 21))
    assert len({r.json()["id"] for r in results}) == 20
    assert client.get("/projects/race/tasks/same").json()["runs_count"] == 20
    page = client.get("/runs", params={"project": "race", "limit": 50}).json()
    assert page["total"] == 20
    for run in page["items"]:
        wait_status(client, run["id"], {"complete"}, timeout=60)


def test_internal_error_is_500_with_a_request_id_in_the_log(live_server: Any) -> None:
    """A run row the server cannot read (corrupted behind its back) gives a 500 whose request
    id leads to the traceback in the server's log, and the server keeps serving."""
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=30) as c:
        run = submit(c, manifest=manifest("corrupt", "true"))
        wait_status(c, run["id"], {"complete"})
        db = Database(live_server.settings().database_url)
        try:
            with db.write() as session:
                row = runs_store.get_run(session, run["id"], lock=True)
                assert row is not None
                row.spec = {"not": "a task spec"}
        finally:
            db.dispose()
        r = c.get(f"/runs/{run['id']}")
        assert r.status_code == 500
        err = r.json()["error"]
        request_id = err["fields"]["request_id"]
        assert err == {
            "code": "internal",
            "message": f"internal error (request id {request_id})",
            "fields": {"request_id": request_id},
        }
        assert "spec" not in err["message"]  # no internals leak to the client
        assert c.get("/health").status_code == 200
    log = live_server.log_path.read_text()
    assert f"internal error (request id {request_id})" in log
    assert "Traceback" in log.split(f"request id {request_id}", 1)[1]
