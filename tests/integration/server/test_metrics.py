"""Tracking through a real server (SQLite and PostgreSQL): metric batches and params, their
summaries and histories, idempotent retries from concurrent writers, and every refusal."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import manifest, wait_status


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, server_factory: Any) -> Iterator[httpx.Client]:
    server = server_factory.start(request.param)
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c
    server.close()


def _running_run(client: httpx.Client, name: str) -> int:
    """A run that stays running (its replica sleeps) for metrics to be logged to."""
    r = client.post("/projects/default/runs", json={"manifest": manifest(name, "sleep 120")})
    assert r.status_code == 201, r.text
    run_id = int(r.json()["id"])
    wait_status(client, run_id, {"running"})
    return run_id


@pytest.fixture
def run_id(client: httpx.Client, request: pytest.FixtureRequest) -> Iterator[int]:
    name = "m-" + request.node.name.split("[")[0].removeprefix("test_")[:40].replace("_", "-")
    run = _running_run(client, name.rstrip("-"))
    yield run
    client.post(f"/runs/{run}/stop")


def _log(client: httpx.Client, run: int, points: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(f"/runs/{run}/metrics", json={"points": points, **extra})


def test_batches_summaries_and_history(client: httpx.Client, run_id: int) -> None:
    # 2,500 points of "loss" in three batches (chunks of 1,024 fill and spill), one of "acc".
    loss = [
        {"key": "loss", "value": 1.0 / (i + 1), "step": i, "time": 1000.0 + i} for i in range(2500)
    ]
    for start in (0, 1000, 2000):
        r = _log(client, run_id, loss[start : start + 1000])
        assert r.json() == {"accepted": len(loss[start : start + 1000]), "duplicate": False}
    assert _log(client, run_id, [{"key": "val/acc", "value": 0.5}]).status_code == 200
    items = {m["key"]: m for m in client.get(f"/runs/{run_id}/metrics").json()["items"]}
    assert sorted(items) == ["loss", "val/acc"]
    s = items["loss"]
    assert (s["count"], s["last_step"], s["last_value"]) == (2500, 2499, 1.0 / 2500)
    assert (s["min_value"], s["max_value"], s["first_time"]) == (1.0 / 2500, 1.0, 1000.0)
    assert (items["val/acc"]["count"], items["val/acc"]["last_step"]) == (1, 0)

    history = client.get(f"/runs/{run_id}/metrics/loss").json()
    assert history["total"] == 2500 and not history["downsampled"]
    assert history["points"] == [[p["step"], p["time"], p["value"]] for p in loss]
    # A window reads only the chunks it needs and returns exactly its steps.
    window = client.get(f"/runs/{run_id}/metrics/loss", params={"min_step": 1020, "max_step": 1030})
    assert [p[0] for p in window.json()["points"]] == list(range(1020, 1031))
    # A key with a slash is a path segment of its own.
    assert client.get(f"/runs/{run_id}/metrics/val/acc").json()["points"][0][2] == 0.5


def test_steps_default_and_last_is_the_highest_step(client: httpx.Client, run_id: int) -> None:
    _log(client, run_id, [{"key": "x", "value": v} for v in (5.0, 6.0, 7.0)])
    _log(
        client,
        run_id,
        [{"key": "x", "value": 1.0, "step": 10}, {"key": "x", "value": 2.0, "step": 3}],
    )
    _log(client, run_id, [{"key": "x", "value": 9.0}])  # next step after the largest: 11
    points = client.get(f"/runs/{run_id}/metrics/x").json()["points"]
    assert [(p[0], p[2]) for p in points] == [
        (0, 5.0),
        (1, 6.0),
        (2, 7.0),
        (3, 2.0),
        (10, 1.0),
        (11, 9.0),
    ]
    (summary,) = client.get(f"/runs/{run_id}/metrics").json()["items"]
    assert (summary["last_step"], summary["last_value"]) == (11, 9.0)


def test_downsampled_chart_keeps_spikes(client: httpx.Client, run_id: int) -> None:
    points = [{"key": "s", "value": 0.0, "step": i, "time": float(i)} for i in range(20_000)]
    points[12_345]["value"] = 99.0
    points[7_777]["value"] = -42.0
    for start in range(0, 20_000, 10_000):
        assert _log(client, run_id, points[start : start + 10_000]).status_code == 200
    chart = client.get(f"/runs/{run_id}/metrics/s", params={"max_points": 500}).json()
    assert chart["downsampled"] and chart["total"] == 20_000
    assert len(chart["points"]) <= 500
    steps = [p[0] for p in chart["points"]]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 19_999
    assert [12_345, 99.0] in [[p[0], p[2]] for p in chart["points"]]
    assert [7_777, -42.0] in [[p[0], p[2]] for p in chart["points"]]


def test_retried_batches_from_concurrent_writers_are_applied_once(
    client: httpx.Client, run_id: int
) -> None:
    """8 writers, 20 batches of 250 points each, every batch sent twice (as a client does
    when a reply is lost): 40,000 points exactly, no duplicates, none lost."""
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
                for b in range(20):
                    batch_id = uuid.uuid4().hex
                    pts = [
                        {
                            "key": f"w{w % 2}",
                            "value": float(w * 10_000 + b * 250 + i),
                            "step": w * 10_000 + b * 250 + i,
                        }
                        for i in range(250)
                    ]
                    first = _log(own, run_id, pts, batch_id=batch_id).json()
                    again = _log(own, run_id, pts, batch_id=batch_id).json()
                    assert first == {"accepted": 250, "duplicate": False}, first
                    assert again == {"accepted": 0, "duplicate": True}, again
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for key, writers in (("w0", (0, 2, 4, 6)), ("w1", (1, 3, 5, 7))):
        points = client.get(f"/runs/{run_id}/metrics/{key}").json()["points"]
        want = sorted(w * 10_000 + i for w in writers for i in range(5000))
        assert [p[0] for p in points] == want
        assert all(p[2] == float(p[0]) for p in points)


def test_bad_points_are_refused_and_nothing_of_the_batch_is_kept(
    client: httpx.Client, run_id: int
) -> None:
    good = {"key": "ok", "value": 1.0}
    cases = [
        ({"key": "k" * 10_000, "value": 1.0}, "1 to 250 letters"),
        ({"key": "", "value": 1.0}, "is invalid"),
        ({"key": "bad\nkey", "value": 1.0}, "is invalid"),
        ({"key": "loss", "value": 1.0, "step": 2**63}, "does not fit in 64 bits"),
    ]
    for bad, words in cases:
        r = _log(client, run_id, [good, bad])
        assert r.status_code == 400, r.text
        assert words in r.json()["error"]["message"]
    # NaN and infinities (which JSON cannot hold, but Python's json writes) are refused by
    # name and step, the rest of the batch with them.
    for value in (math.nan, math.inf, -math.inf):
        body = json.dumps({"points": [good, {"key": "loss", "value": value, "step": 7}]})
        r = client.post(
            f"/runs/{run_id}/metrics", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, r.text
        assert "metric 'loss' at step 7" in r.json()["error"]["message"]
    huge = _log(client, run_id, [{"key": "big", "value": 1e308}])
    assert huge.status_code == 200
    too_many = _log(client, run_id, [good] * 10_001)
    assert too_many.status_code == 400 and "at most 10000" in too_many.json()["error"]["message"]
    keys = [m["key"] for m in client.get(f"/runs/{run_id}/metrics").json()["items"]]
    assert keys == ["big"]


def test_missing_and_finished_runs(client: httpx.Client) -> None:
    r = _log(client, 999_999, [{"key": "a", "value": 1.0}])
    assert r.status_code == 404 and "run 999999 not found" in r.json()["error"]["message"]
    run = _running_run(client, "m-finished")
    _log(client, run, [{"key": "a", "value": 1.0}])
    missing = client.get(f"/runs/{run}/metrics/nope")
    assert missing.status_code == 404
    assert "has no metric 'nope' (its metrics: a)" in missing.json()["error"]["message"]
    bad = client.get(f"/runs/{run}/metrics/a", params={"max_points": 1})
    assert bad.status_code == 400
    client.post(f"/runs/{run}/stop")
    wait_status(client, run, {"stopped"})
    late = _log(client, run, [{"key": "a", "value": 2.0}])
    assert late.status_code == 409 and "accepts no more metrics" in late.json()["error"]["message"]
    assert client.post(f"/runs/{run}/params", json={"params": {"x": 1}}).status_code == 409
    # What it logged is kept.
    assert client.get(f"/runs/{run}/metrics").json()["items"][0]["count"] == 1


def test_params_are_text_and_immutable(client: httpx.Client, run_id: int) -> None:
    r = client.post(f"/runs/{run_id}/params", json={"params": {"lr": 0.1, "layers": 4, "bn": True}})
    assert r.json() == {"params": {"lr": "0.1", "layers": "4", "bn": "true"}}
    again = client.post(f"/runs/{run_id}/params", json={"params": {"lr": 0.1, "opt": "adam"}})
    assert again.status_code == 200
    clash = client.post(f"/runs/{run_id}/params", json={"params": {"opt": "sgd", "new": 1}})
    assert clash.status_code == 409
    assert "param 'opt' of run" in clash.json()["error"]["message"]
    nested = client.post(f"/runs/{run_id}/params", json={"params": {"d": [1, 2]}})
    assert nested.status_code == 400
    stored = client.get(f"/runs/{run_id}/params").json()["params"]
    assert stored == {"bn": "true", "layers": "4", "lr": "0.1", "opt": "adam"}


def test_deleting_a_run_deletes_its_metrics(client: httpx.Client) -> None:
    run = _running_run(client, "m-delete")
    _log(client, run, [{"key": "a", "value": float(i)} for i in range(2000)])
    client.post(f"/runs/{run}/params", json={"params": {"p": 1}})
    client.post(f"/runs/{run}/stop")
    wait_status(client, run, {"stopped"})
    assert client.delete(f"/runs/{run}").status_code == 200
    assert client.get(f"/runs/{run}/metrics").status_code == 404


def test_external_runs_log_and_finish(client: httpx.Client) -> None:
    """A run created by a tracking client: running at once, never launched or reconciled
    into an error, finished by the client; its task is an `external` one."""
    r = client.post(
        "/projects/default/external-runs", json={"name": "notebook", "submitted_by": "ada"}
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert (run["status"], run["executor"], run["submitted_by"]) == ("running", "external", "ada")
    assert _log(client, run["id"], [{"key": "loss", "value": 0.5}]).status_code == 200
    import time

    time.sleep(1.0)  # several reconciler and scheduler passes: still running
    assert client.get(f"/runs/{run['id']}").json()["status"] == "running"
    done = client.post(f"/runs/{run['id']}/finish", json={"status": "complete"})
    assert done.json()["status"] == "complete"
    again = client.post(f"/runs/{run['id']}/finish", json={"status": "error"})
    assert again.json()["status"] == "complete"  # ended once
    second = client.post("/projects/default/external-runs", json={"name": "notebook"}).json()
    assert second["build_id"] == run["build_id"] + 1
    assert client.post(f"/runs/{second['id']}/stop").json()["status"] == "stopped"
    # Refusals: a launched task's name, a launched run, a bad status, a bad name.
    launched = _running_run(client, "m-launched")
    clash = client.post("/projects/default/external-runs", json={"name": "m-launched"})
    assert clash.status_code == 409 and "log this run under another name" in clash.text
    refused = client.post(f"/runs/{launched}/finish", json={"status": "complete"})
    assert refused.status_code == 409 and "is launched by trainyard" in refused.text
    client.post(f"/runs/{launched}/stop")
    bad = client.post(f"/runs/{second['id']}/finish", json={"status": "running"})
    assert bad.status_code == 400
    assert (
        client.post("/projects/default/external-runs", json={"name": "Bad Name"}).status_code == 400
    )


def test_sdk_outside_a_run_creates_and_finishes_its_own_run(
    client: httpx.Client, tmp_path: Path
) -> None:
    """`ty.init(project=, name=)` outside a trainyard run (a notebook): an external run is
    created, the points arrive, and finish() marks it complete."""
    server_url = str(client.base_url).rstrip("/").removesuffix("/api/v1")
    script = (
        "import trainyard as ty\n"
        f"run = ty.init(project='default', name='notebook-sdk', server_url={server_url!r})\n"
        "ty.log_params({'lr': 0.01})\n"
        "for i in range(300):\n"
        "    ty.log_metric('loss', 1.0 / (i + 1))\n"
        "print(run.run_id)\n"
        "ty.finish()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env["TRAINYARD_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout.strip())
    run = client.get(f"/runs/{run_id}").json()
    assert (run["status"], run["executor"], run["task"]) == ("complete", "external", "notebook-sdk")
    (summary,) = client.get(f"/runs/{run_id}/metrics").json()["items"]
    assert (summary["count"], summary["last_step"]) == (300, 299)
    assert client.get(f"/runs/{run_id}/params").json()["params"] == {"lr": "0.01"}
    # An unknown project is the server's error, raised by init() itself.
    bad = subprocess.run(
        [sys.executable, "-c", script.replace("project='default'", "project='nope'")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "project 'nope' not found" in bad.stderr
