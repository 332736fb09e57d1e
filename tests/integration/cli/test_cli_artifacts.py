"""`trainyard artifacts list|get|put` against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from cli_support import RunCli


def _external_run(server: Any) -> int:
    r = httpx.post(f"{server.url}/api/v1/projects/default/external-runs", json={"name": "cli-art"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_put_list_get_and_errors(live_cli: RunCli, shared_server: Any, tmp_path: Path) -> None:
    run_id = _external_run(shared_server)
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x00weights" * 1000)
    put = live_cli("artifacts", "put", str(run_id), str(model), "checkpoints/model.pt")
    assert put.code == 0, put.stderr
    assert "stored checkpoints/model.pt (7.8 KiB)" in put.stdout

    listed = live_cli("artifacts", "list", str(run_id))
    assert listed.code == 0, listed.stderr
    assert "checkpoints/" in listed.stdout
    deep = live_cli("artifacts", "list", str(run_id), "-r", "--json")
    assert json.loads(deep.stdout) == [
        {"path": "checkpoints", "is_dir": True, "size": None},
        {"path": "checkpoints/model.pt", "is_dir": False, "size": 8000},
    ]

    out = tmp_path / "down"
    out.mkdir()
    got = live_cli("artifacts", "get", str(run_id), "checkpoints/model.pt", "-o", str(out))
    assert got.code == 0, got.stderr
    assert (out / "model.pt").read_bytes() == model.read_bytes()
    assert [p.name for p in out.iterdir()] == ["model.pt"]  # no temporary file left

    missing = live_cli("artifacts", "get", str(run_id), "nope.bin", "-o", str(out / "x"))
    assert missing.code != 0
    assert "'nope.bin'" in missing.stderr
    assert not (out / "x").exists()

    bad = live_cli("artifacts", "put", str(run_id), str(model), "../up.pt")
    assert bad.code != 0 and "artifact path" in bad.stderr
    not_a_file = live_cli("artifacts", "put", str(run_id), str(tmp_path / "absent"))
    assert not_a_file.code != 0 and "is not a file" in not_a_file.stderr
    empty = live_cli("artifacts", "list", str(run_id), "nothing-here")
    assert empty.code == 0 and "has no artifacts under 'nothing-here'" in empty.stdout
    unknown = live_cli("artifacts", "list", "999999")
    assert unknown.code != 0 and "999999" in unknown.stderr

    httpx.post(f"{shared_server.url}/api/v1/runs/{run_id}/finish", json={"status": "complete"})
    late = live_cli("artifacts", "put", str(run_id), str(model))
    assert late.code != 0 and "accepts no more artifacts" in late.stderr
