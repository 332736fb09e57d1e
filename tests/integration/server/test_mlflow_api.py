"""The MLflow-compatible API through a real server (SQLite and PostgreSQL) and the real
``mlflow`` client, run in a subprocess with MLFLOW_TRACKING_URI set, as an unmodified
training script would be."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mlflow")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, server_factory: Any) -> Iterator[Any]:
    srv = server_factory.start(request.param)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def api(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as c:
        yield c


def run_mlflow(server: Any, tmp_path: Path, body: str, name: str = "train.py") -> Any:
    """Run ``body`` as a script with the mlflow client pointed at ``server``; the last JSON
    object it prints (mlflow prints lines of its own)."""
    script = tmp_path / name
    prelude = textwrap.dedent(
        """\
        import json, math, os
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        def error(fn):
            try:
                fn()
            except MlflowException as exc:
                return [exc.error_code, exc.message]
            return None

        """
    )
    script.write_text(prelude + textwrap.dedent(body))
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1])


def test_a_script_logs_an_external_run(server: Any, api: httpx.Client, tmp_path: Path) -> None:
    out = run_mlflow(
        server,
        tmp_path,
        """\
        with mlflow.start_run(run_name="baseline", tags={"team": "vision"}) as run:
            mlflow.log_param("lr", 0.1)
            mlflow.log_params({"batch_size": 32, "optimizer": "adam"})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"acc": 0.9, "f1": 0.75}, step=4)
            mlflow.set_tag("stage", "dev")
        with mlflow.start_run(run_name="worse"):
            mlflow.log_metric("acc", 0.5)
        c = MlflowClient()
        r = c.get_run(run.info.run_id)
        history = c.get_metric_history(run.info.run_id, "loss")
        ranked = c.search_runs(["0"], order_by=["metrics.acc DESC"])
        good = c.search_runs(["0"], filter_string="metrics.acc > 0.6 and params.optimizer = 'adam'")
        print(json.dumps({
            "run_id": run.info.run_id,
            "status": r.info.status,
            "name": r.info.run_name,
            "experiment": r.info.experiment_id,
            "metrics": r.data.metrics,
            "params": r.data.params,
            "tags": r.data.tags,
            "history": [[m.step, m.value, m.timestamp > 0] for m in history],
            "ranked": [x.info.run_name for x in ranked],
            "good": [x.info.run_name for x in good],
        }))
        """,
    )
    assert out["status"] == "FINISHED" and out["name"] == "baseline"
    assert out["experiment"] == "0"
    assert out["metrics"] == {"loss": 0.2, "acc": 0.9, "f1": 0.75}
    assert out["params"] == {"lr": "0.1", "batch_size": "32", "optimizer": "adam"}
    assert out["tags"]["team"] == "vision" and out["tags"]["stage"] == "dev"
    assert out["tags"]["mlflow.runName"] == "baseline"
    assert out["history"] == [[s, 1.0 / (s + 1), True] for s in range(5)]
    assert out["ranked"][:2] == ["baseline", "worse"]
    assert out["good"] == ["baseline"]
    # trainyard's own view: an external run of task "train" (the script), complete.
    run_id = int(out["run_id"])
    run = api.get(f"/runs/{run_id}").json()
    assert (run["project"], run["task"], run["status"]) == ("default", "train", "complete")
    assert run["executor"] == "external"
    items = {m["key"]: m for m in api.get(f"/runs/{run_id}/metrics").json()["items"]}
    assert items["loss"]["count"] == 5 and items["loss"]["last_value"] == 0.2
    params = api.get(f"/runs/{run_id}/params").json()["params"]
    assert params == {"lr": "0.1", "batch_size": "32", "optimizer": "adam"}


def test_experiments_and_soft_delete(server: Any, api: httpx.Client, tmp_path: Path) -> None:
    out = run_mlflow(
        server,
        tmp_path,
        """\
        c = MlflowClient()
        eid = c.create_experiment("My Experiment #1")
        again = c.create_experiment("my experiment 1")  # the same slug: a suffixed project
        dup = error(lambda: c.create_experiment("My Experiment #1"))
        mlflow.set_experiment("My Experiment #1")
        with mlflow.start_run() as run:
            mlflow.log_metric("x", 1.0)
        rid = run.info.run_id
        c.delete_run(rid)
        deleted = c.get_run(rid).info.lifecycle_stage
        active = [r.info.run_id for r in c.search_runs([eid])]
        c.restore_run(rid)
        print(json.dumps({
            "eid": eid,
            "again": again,
            "dup": dup,
            "names": sorted(e.name for e in c.search_experiments()),
            "by_name": c.get_experiment_by_name("My Experiment #1").experiment_id,
            "missing": c.get_experiment_by_name("nothing here") is None,
            "deleted": deleted,
            "active": active,
            "restored": c.get_run(rid).info.lifecycle_stage,
            "run_experiment": c.get_run(rid).info.experiment_id,
            "rid": rid,
        }))
        """,
    )
    assert out["dup"][0] == "RESOURCE_ALREADY_EXISTS"
    assert {"Default", "My Experiment #1", "my experiment 1"} <= set(out["names"])
    assert out["by_name"] == out["eid"] == out["run_experiment"]
    assert out["missing"] is True
    assert (out["deleted"], out["active"], out["restored"]) == ("deleted", [], "active")
    projects = {p["name"] for p in api.get("/projects").json()["items"]}
    assert {"my-experiment-1", "my-experiment-1-2"} <= projects
    run = api.get(f"/runs/{out['rid']}").json()
    assert (run["project"], run["status"], run["archived"]) == (
        "my-experiment-1",
        "complete",
        False,
    )


def test_refusals_are_mlflow_errors(server: Any, tmp_path: Path) -> None:
    out = run_mlflow(
        server,
        tmp_path,
        """\
        c = MlflowClient()
        run = c.create_run("0")
        rid = run.info.run_id
        c.log_param(rid, "lr", 0.1)
        print(json.dumps({
            "unknown": error(lambda: c.get_run("987654")),
            "not_a_number": error(lambda: c.get_run("abc")),
            "nan": error(lambda: c.log_metric(rid, "loss", math.nan)),
            "param": error(lambda: c.log_param(rid, "lr", 0.2)),
            "same_param": error(lambda: c.log_param(rid, "lr", 0.1)),
            "or": error(lambda: c.search_runs(["0"], "metrics.a > 1 OR metrics.b > 1")),
            "in": error(lambda: c.search_runs(["0"], "params.p IN ('a', 'b')")),
            "attr": error(lambda: c.search_runs(["0"], "attributes.artifact_uri = 'x'")),
            "running": error(lambda: c.delete_run(rid)),
            "experiment": error(lambda: c.get_experiment("424242")),
        }))
        c.set_terminated(rid)
        """,
    )
    assert out["unknown"][0] == "RESOURCE_DOES_NOT_EXIST" and "987654" in out["unknown"][1]
    assert out["not_a_number"][0] == "RESOURCE_DOES_NOT_EXIST"
    assert out["nan"][0] == "INVALID_PARAMETER_VALUE" and "finite" in out["nan"][1]
    assert out["param"][0] == "INVALID_PARAMETER_VALUE" and "'lr'" in out["param"][1]
    assert out["same_param"] is None
    assert out["or"][0] == "INVALID_PARAMETER_VALUE" and "'OR'" in out["or"][1]
    assert out["in"][0] == "INVALID_PARAMETER_VALUE" and "'IN'" in out["in"][1]
    assert out["attr"][0] == "INVALID_PARAMETER_VALUE" and "artifact_uri" in out["attr"][1]
    assert out["running"][0] == "INVALID_STATE" and "end it first" in out["running"][1]
    assert out["experiment"][0] == "RESOURCE_DOES_NOT_EXIST"


def test_artifacts_round_trip(server: Any, tmp_path: Path) -> None:
    out = run_mlflow(
        server,
        tmp_path,
        """\
        with open("model.pt", "wb") as f:
            f.write(b"w" * 5000)
        os.makedirs("plots/roc", exist_ok=True)
        with open("plots/roc/a.txt", "w") as f:
            f.write("curve")
        with mlflow.start_run() as run:
            mlflow.log_artifact("model.pt")
            mlflow.log_artifacts("plots", artifact_path="plots")
        c = MlflowClient()
        rid = run.info.run_id
        got = c.download_artifacts(rid, "model.pt", os.path.abspath("dl"))
        print(json.dumps({
            "uri": run.info.artifact_uri,
            "root": [[f.path, f.is_dir, f.file_size] for f in c.list_artifacts(rid)],
            "sub": [f.path for f in c.list_artifacts(rid, "plots/roc")],
            "size": os.path.getsize(got),
        }))
        """,
    )
    assert out["uri"].startswith("mlflow-artifacts:/0/")
    assert out["root"] == [["model.pt", False, 5000], ["plots", True, None]]
    assert out["sub"] == ["plots/roc/a.txt"]
    assert out["size"] == 5000
    base = f"{server.url}/api/2.0/mlflow-artifacts/artifacts"
    outside = server.home / "outside"
    outside.mkdir()
    (server.home / "storage" / "mlflow-artifacts" / "link").symlink_to(outside)
    for bad in ("0/..%2F..%2Fescape", "%2E%2E/escape", "0/%2E/x", "link/escape"):
        r = httpx.put(f"{base}/{bad}", content=b"x")
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert not (server.home / "storage" / "escape").exists()
    assert not (server.home / "escape").exists()
    assert list(outside.iterdir()) == []
    r = httpx.get(base, params={"path": "link"})
    assert r.status_code == 400


def test_prefixes_and_error_shapes(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
            r = c.get(f"{prefix}/experiments/get", params={"experiment_id": "0"})
            assert r.status_code == 200 and r.json()["experiment"]["name"] == "Default"
        r = c.post("/api/2.0/mlflow/runs/log-batch", json={"run_id": "1", "metrics": "no"})
        assert r.status_code in (400, 404) and "error_code" in r.json()
        r = c.post("/api/2.0/mlflow/runs/create", content=b"{not json")
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        r = c.post("/api/2.0/mlflow/registered-models/create", json={"name": "m"})
        assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        r = c.get("/api/2.0/mlflow/runs/get", params={"run_id": "999999"})
        assert r.status_code == 404
        assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        # trainyard's own API keeps its error format.
        r = c.get("/api/v1/runs/999999")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_log_batch_is_all_or_nothing(server: Any) -> None:
    """A bad metric in a log-batch refuses the whole call: its params and tags are not
    stored either (one transaction), and a good retry then stores everything."""
    with httpx.Client(base_url=f"{server.url}/api/2.0/mlflow", timeout=30) as c:
        r = c.post("/runs/create", json={"experiment_id": "0", "run_name": "atomic"})
        run_id = r.json()["run"]["info"]["run_id"]
        body: dict[str, Any] = {
            "run_id": run_id,
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "team", "value": "vision"}],
            "metrics": [
                {"key": "loss", "value": 0.5, "timestamp": 1, "step": 0},
                {"key": "bad key!", "value": 1.0, "timestamp": 1, "step": 0},
            ],
        }
        r = c.post("/runs/log-batch", json=body)
        assert r.status_code == 400 and "bad key!" in r.json()["message"], r.text
        data = c.get("/runs/get", params={"run_id": run_id}).json()["run"]["data"]
        assert data["params"] == [] and data["metrics"] == []
        assert all(t["key"].startswith("mlflow.") for t in data["tags"])
        body["metrics"] = body["metrics"][:1]
        assert c.post("/runs/log-batch", json=body).status_code == 200
        data = c.get("/runs/get", params={"run_id": run_id}).json()["run"]["data"]
        assert data["params"] == [{"key": "lr", "value": "0.1"}]
        assert {"key": "team", "value": "vision"} in data["tags"]
        assert [m["key"] for m in data["metrics"]] == ["loss"]
        # A changed param refuses the batch, metrics included.
        body["params"] = [{"key": "lr", "value": "0.2"}]
        body["metrics"] = [{"key": "acc", "value": 0.9, "timestamp": 2, "step": 1}]
        r = c.post("/runs/log-batch", json=body)
        assert r.status_code == 400 and "'lr'" in r.json()["message"]
        data = c.get("/runs/get", params={"run_id": run_id}).json()["run"]["data"]
        assert [m["key"] for m in data["metrics"]] == ["loss"]


def test_search_filters_on_tags_names_and_params(server: Any) -> None:
    """runs/search reads only the metrics, params and tags its filter and order name: tags,
    run names and params still match, and the page carries all of a run's data."""
    with httpx.Client(base_url=f"{server.url}/api/2.0/mlflow", timeout=30) as c:
        eid = c.post("/experiments/create", json={"name": "filters"}).json()["experiment_id"]
        ids = []
        for i, team in enumerate(("vision", "nlp", "vision")):
            run = c.post("/runs/create", json={"experiment_id": eid, "run_name": f"r{i}"})
            run_id = run.json()["run"]["info"]["run_id"]
            ids.append(run_id)
            body = {
                "run_id": run_id,
                "params": [{"key": "lr", "value": str(0.1 * (i + 1))}, {"key": "x", "value": "1"}],
                "tags": [{"key": "team", "value": team}],
                "metrics": [{"key": "acc", "value": 0.5 + i / 10, "timestamp": 1, "step": 0}],
            }
            assert c.post("/runs/log-batch", json=body).status_code == 200

        def search(flt: str, order: list[str]) -> list[str]:
            body = {"experiment_ids": [eid], "filter": flt, "order_by": order}
            r = c.post("/runs/search", json=body)
            assert r.status_code == 200, r.text
            return [run["info"]["run_id"] for run in r.json().get("runs", [])]

        assert search("tags.team = 'vision'", ["params.lr DESC"]) == [ids[2], ids[0]]
        assert search("attributes.run_name = 'r1'", []) == [ids[1]]
        assert search("params.lr = '0.1'", []) == [ids[0]]
        r = c.post("/runs/search", json={"experiment_ids": [eid], "max_results": 1,
                                         "order_by": ["metrics.acc DESC"]})  # fmt: skip
        data = r.json()["runs"][0]["data"]
        assert {p["key"] for p in data["params"]} == {"lr", "x"}
        assert {"key": "team", "value": "vision"} in data["tags"]
        assert r.json()["next_page_token"] == "1"
