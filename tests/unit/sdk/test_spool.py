"""The spool on its own: order, partial drains, damaged lines, adoption of orphaned files; and
which failures are worth a retry."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from trainyard.client.errors import ServerUnreachableError, error_from_response
from trainyard.core.errors import (
    ConflictError,
    InsufficientStorageError,
    InternalError,
    InvalidInputError,
    NotFoundError,
    UserError,
)
from trainyard.sdk.sender import is_transient
from trainyard.sdk.spool import Entry, Spool


def batch(*values: float) -> Entry:
    return Entry(points=[("loss", v, i, 1.5) for i, v in enumerate(values)])


def test_a_partial_drain_keeps_the_rest_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "7", "srv", "worker-0")
    assert spool.empty and not spool.path.exists()
    entries = [batch(1, 2), Entry(params={"lr": 0.1}), batch(3), batch(4, 5, 6)]
    spool.append(entries)
    assert (spool.points, spool.params) == (6, 1) and spool.path.exists()

    seen: list[Entry] = []

    def send_two(entry: Entry) -> bool:
        if len(seen) == 2:
            return False
        seen.append(entry)
        return True

    assert not spool.drain(send_two)
    assert seen == entries[:2]
    assert (spool.points, spool.params) == (4, 0)
    rest: list[Entry] = []
    assert spool.drain(lambda e: rest.append(e) is None)
    assert rest == entries[2:]
    assert [e.batch_id for e in rest] == [e.batch_id for e in entries[2:]]  # ids survive
    assert spool.empty and not spool.path.exists()


def test_a_damaged_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, "srv", "p")
    spool.append([batch(1)])
    with open(spool.path, "ab") as f:
        f.write(b'{"kind": "metrics", "batch_id": "x", "poi')  # torn by a crash
    got: list[Entry] = []
    assert spool.drain(lambda e: got.append(e) is None)
    assert [p[1] for e in got for p in e.points] == [1]
    assert any("damaged line" in m for m in caplog.messages)


def test_files_of_live_processes_are_left_alone_and_orphans_adopted(tmp_path: Path) -> None:
    live = Spool(tmp_path, "srv", "worker-0")
    live.append([batch(1)])  # holds its file's lock while it lives
    dead = Spool(tmp_path, "srv", "worker-1")
    dead.append([batch(2, 3), Entry(params={"lr": 0.1})])
    dead.close()  # its process ended: the lock is released, the file stays
    other_server = Spool(tmp_path, "elsewhere", "worker-2")
    other_server.append([batch(4)])
    other_server.close()

    heir = Spool(tmp_path, "srv", "worker-1")
    assert heir.adopt_orphans() == 2
    assert (heir.points, heir.params) == (2, 1)
    assert not dead.path.exists() and live.path.exists() and other_server.path.exists()
    got: list[Entry] = []
    assert heir.drain(lambda e: got.append(e) is None)
    assert [p[1] for e in got for p in e.points] == [2, 3]


def test_the_disk_refusing_keeps_entries_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    spool = Spool(blocked / "7", "srv", "p")  # a directory under a file: cannot be made
    with caplog.at_level(logging.ERROR, logger="trainyard.sdk"):
        spool.append([batch(1)])
        spool.append([batch(2)])
    assert spool.in_memory == 2 and spool.points == 2
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    got: list[Entry] = []
    assert spool.drain(lambda e: got.append(e) is None)
    assert len(got) == 2 and spool.empty


def reply(status: int, code: str | None = None) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1:9/api/v1/runs/7/metrics")
    body = {"error": {"code": code, "message": "m", "fields": {}}} if code else None
    return error_from_response(httpx.Response(status, request=request, json=body))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ServerUnreachableError("down"), True),
        (InternalError("boom"), True),
        (reply(500, "internal"), True),
        (reply(502), True),
        (reply(503), True),
        (reply(507, "insufficient_storage"), True),
        (InsufficientStorageError("disk full"), True),
        (reply(408), True),
        (reply(429), True),
        (reply(400, "invalid_input"), False),
        (reply(401), False),
        (reply(404, "not_found"), False),
        (reply(409, "conflict"), False),
        (reply(413), False),
        (InvalidInputError("bad"), False),
        (NotFoundError("gone"), False),
        (ConflictError("finished"), False),
        (UserError("other"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_failures_are_retried(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient
