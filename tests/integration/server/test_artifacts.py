"""Run artifacts on a real server: ``trainyard.log_artifact`` and the ``/runs/{id}/artifacts``
API (upload, list, download), and the limits shared with MLflow's artifact proxy: unsafe
paths, the size limit, a broken upload, a full disk, finished runs."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import manifest, wait_status

from trainyard.client import ServerUnreachableError, TrainyardClient
from trainyard.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from trainyard.sdk import Tracker
from trainyard.sdk.context import resolve_context

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(server_factory: Any) -> Any:
    return server_factory.start(extra_env={"TRAINYARD_RUNS__ARTIFACT_MAX_BYTES": str(LIMIT)})


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c


def _external(client: httpx.Client, name: str = "notebook") -> int:
    r = client.post("/projects/default/external-runs", json={"name": name})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _tracker(server: Any, tmp_path: Path, name: str) -> Tracker:
    env = {"TRAINYARD_SERVER_URL": server.url, "HOME": str(tmp_path)}
    context = resolve_context(project="default", name=name, environ=env)
    return Tracker(context)


def _parts(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


def test_log_artifact_file_and_directory_then_list_and_download(
    server: Any, tmp_path: Path
) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(os.urandom(20_000))
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "index.html").write_text("<h1>eval</h1>")
    (report / "plots" / "roc.svg").write_text("<svg/>")
    tracker = _tracker(server, tmp_path, "artifacts")
    try:
        assert tracker.log_artifact(model) == ["model.pt"]
        assert tracker.log_artifact(model, "checkpoints/") == ["checkpoints/model.pt"]
        assert tracker.log_artifact(report, "eval") == [
            "eval/index.html",
            "eval/plots/roc.svg",
        ]
        with pytest.raises(FileNotFoundError, match="no-such-file"):
            tracker.log_artifact(tmp_path / "no-such-file")
        with pytest.raises(InvalidInputError, match=r"\.\."):
            tracker.log_artifact(model, "../outside")
        run_id = tracker.run_id
    finally:
        tracker.finish()
    with TrainyardClient(server.url) as api:
        top = api.artifacts.list(run_id)
        assert [(a.path, a.is_dir) for a in top] == [
            ("checkpoints", True),
            ("eval", True),
            ("model.pt", False),
        ]
        assert top[2].size == 20_000
        deep = api.artifacts.list(run_id, recursive=True)
        assert [a.path for a in deep if not a.is_dir] == [
            "checkpoints/model.pt",
            "eval/index.html",
            "eval/plots/roc.svg",
            "model.pt",
        ]
        assert [a.path for a in api.artifacts.list(run_id, "eval/plots")] == ["eval/plots/roc.svg"]
        out = io.BytesIO()
        assert api.artifacts.download(run_id, "model.pt", out) == 20_000
        assert out.getvalue() == model.read_bytes()
        with pytest.raises(NotFoundError, match=r"'missing\.bin'"):
            api.artifacts.download(run_id, "missing.bin", io.BytesIO())
        with pytest.raises(NotFoundError, match="run 999999"):
            api.artifacts.list(999_999)
    # They are the run's output directory, next to what its replicas write.
    output = Path(server.home) / "runs" / str(run_id) / "output"
    assert (output / "eval" / "plots" / "roc.svg").read_text() == "<svg/>"


def test_a_finished_run_takes_no_more_artifacts(
    server: Any, client: httpx.Client, tmp_path: Path
) -> None:
    tracker = _tracker(server, tmp_path, "finished")
    run_id = tracker.run_id
    tracker.finish()
    with pytest.raises(ConflictError, match="finished"):
        tracker.log_artifact(tmp_path)
    r = client.put(f"/runs/{run_id}/artifacts/late.txt", content=b"late")
    assert r.status_code == 409
    assert "accepts no more artifacts" in r.json()["error"]["message"]
    assert client.get(f"/runs/{run_id}/artifacts").json()["items"] == []


@pytest.mark.parametrize(
    "path",
    [
        "..%2Fescape.txt",
        "a/..%2F..%2Fescape.txt",
        "%2Fetc%2Fpasswd",
        "a%5Cb",
        "a%2F.%2Fb",
        ".x.part",
    ],
    ids=["dotdot", "deep-dotdot", "absolute", "backslash", "dot", "reserved"],
)
def test_unsafe_paths_are_refused(client: httpx.Client, path: str) -> None:
    run_id = _external(client)
    r = client.put(f"/runs/{run_id}/artifacts/{path}", content=b"x")
    assert r.status_code == 400, r.text
    assert "artifact path" in r.json()["error"]["message"]
    assert client.get(f"/runs/{run_id}/artifacts", params={"recursive": True}).json() == {
        "items": []
    }
    client.post(f"/runs/{run_id}/finish", json={"status": "complete"})


def test_a_symlink_out_of_the_output_directory_is_not_served(
    server: Any, client: httpx.Client
) -> None:
    run_id = _external(client)
    output = Path(server.home) / "runs" / str(run_id) / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "passwd").symlink_to("/etc/passwd")
    r = client.get(f"/runs/{run_id}/artifacts/passwd")
    assert r.status_code == 400 and "outside" in r.json()["error"]["message"]
    assert client.get(f"/runs/{run_id}/artifacts").json()["items"] == []  # not listed either
    client.post(f"/runs/{run_id}/finish", json={"status": "complete"})


def test_size_limit_refuses_and_keeps_the_previous_file(server: Any, client: httpx.Client) -> None:
    run_id = _external(client)
    assert client.put(f"/runs/{run_id}/artifacts/w.bin", content=b"old").status_code == 201
    # With a Content-Length: refused before reading.
    r = client.put(f"/runs/{run_id}/artifacts/w.bin", content=b"x" * (LIMIT + 1))
    assert r.status_code == 413
    assert "runs.artifact_max_bytes" in r.json()["error"]["message"]

    # Streamed without a length: refused while reading.
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 4096 + 10):
            yield b"y" * 4096

    r = client.put(f"/runs/{run_id}/artifacts/w.bin", content=chunks())
    assert r.status_code == 413
    assert client.get(f"/runs/{run_id}/artifacts/w.bin").content == b"old"
    big = Path(server.home) / "big.bin"
    big.write_bytes(b"b" * (LIMIT + 1))
    with TrainyardClient(server.url) as api, pytest.raises(PayloadTooLargeError, match="limit"):
        api.artifacts.upload(run_id, big, "w.bin")
    assert _parts(Path(server.home) / "runs" / str(run_id)) == []
    # The MLflow proxy has the same limit, answered in MLflow's shape.
    r = httpx.put(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/0/1/artifacts/big.bin",
        content=b"z" * (LIMIT + 1),
    )
    assert r.status_code == 413 and "artifact_max_bytes" in r.json()["message"]
    client.post(f"/runs/{run_id}/finish", json={"status": "complete"})


def test_an_upload_cut_off_midway_leaves_the_old_file(server: Any, client: httpx.Client) -> None:
    """The client dies mid-body: the server drops the partial file; readers only ever saw
    the complete old one."""
    run_id = _external(client)
    assert client.put(f"/runs/{run_id}/artifacts/ckpt.bin", content=b"v1").status_code == 201

    class Cut(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"v2" * 10_000
        time.sleep(0.3)
        raise Cut

    with pytest.raises(Cut):
        client.put(f"/runs/{run_id}/artifacts/ckpt.bin", content=body())
    run_dir = Path(server.home) / "runs" / str(run_id)
    deadline = time.monotonic() + 10
    while _parts(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _parts(run_dir) == []
    assert client.get(f"/runs/{run_id}/artifacts/ckpt.bin").content == b"v1"
    client.post(f"/runs/{run_id}/finish", json={"status": "complete"})


def test_log_artifact_waits_for_a_server_that_comes_back(
    server_factory: Any, tmp_path: Path
) -> None:
    """The server is down when the upload starts and back two seconds later: the file
    arrives. Down for longer than the timeout: a clear error naming the file."""
    srv = server_factory.start()
    model = tmp_path / "weights.bin"
    model.write_bytes(b"w" * 1000)
    tracker = _tracker(srv, tmp_path, "outage")
    try:
        srv.stop()
        with pytest.raises(ServerUnreachableError, match=r"weights\.bin.*still at"):
            tracker.log_artifact(model, timeout=1.0)
        restart = threading.Timer(2.0, srv.start)
        restart.start()
        try:
            assert tracker.log_artifact(model, timeout=60.0) == ["weights.bin"]
        finally:
            restart.join()
        with TrainyardClient(srv.url) as api:
            assert [a.size for a in api.artifacts.list(tracker.run_id)] == [1000]
    finally:
        tracker.finish()
        srv.close()


def test_a_full_disk_is_507_and_leaves_nothing(server: Any, client: httpx.Client) -> None:
    """A real full file system: a 256 KiB tmpfs mounted over the run's output directory."""
    needs = "needs root (CAP_SYS_ADMIN) to mount a 256 KiB tmpfs: run the suite as root, as CI does"
    if os.geteuid() != 0:
        pytest.fail(f"{needs} (running as uid {os.geteuid()})", pytrace=False)
    run_id = _external(client)
    output = Path(server.home) / "runs" / str(run_id) / "output"
    output.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(output)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"{needs}; mount said: {mounted.stderr.decode().strip()}", pytrace=False)
    try:
        fill = output / "filler.bin"
        fill.write_bytes(b"f" * 200 * 1024)
        r = client.put(f"/runs/{run_id}/artifacts/more.bin", content=b"m" * (LIMIT - 1))
        assert r.status_code == 507, r.text
        error = r.json()["error"]
        assert error["code"] == "insufficient_storage"
        assert "no space left" in error["message"] and "more.bin" in error["message"]
        assert sorted(p.name for p in output.iterdir()) == ["filler.bin"]
        # Space freed: the same upload works.
        fill.unlink()
        r = client.put(f"/runs/{run_id}/artifacts/more.bin", content=b"m" * (LIMIT - 1))
        assert r.status_code == 201, r.text
    finally:
        subprocess.run(["umount", "-l", str(output)], check=False)
        client.post(f"/runs/{run_id}/finish", json={"status": "complete"})


def test_a_launched_run_logs_artifacts_from_its_replica(
    client: httpx.Client, tmp_path: Path
) -> None:
    """The SDK inside a real run (the environment contract): the replica's own files in
    $TRAINYARD_OUTPUT_DIR and what it logged sit side by side."""
    command = (
        'python -c "import os, trainyard as ty; ty.init(); '
        "open('m.txt','w').write('hi'); ty.log_artifact('m.txt', 'logged'); "
        "open(os.path.join(os.environ['TRAINYARD_OUTPUT_DIR'], 'direct.txt'), 'w').write('x')\""
    )
    r = client.post("/projects/default/runs", json={"manifest": manifest("art", command)})
    assert r.status_code == 201, r.text
    run = wait_status(client, r.json()["id"], {"complete", "error"})
    assert run["status"] == "complete", run
    items = client.get(f"/runs/{run['id']}/artifacts", params={"recursive": True}).json()
    assert [(i["path"], i["size"]) for i in items["items"]] == [
        ("direct.txt", 1),
        ("logged", None),
        ("logged/m.txt", 2),
    ]
