"""REST API: paging back through long run logs with ``before`` (read backwards, merged)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_support import manifest, wait_status

LINES = 120_000
# Each replica prints "line <replica index> <number>" n times.
PRINT = (
    "import os, sys; r = os.environ['REPLICA_INDEX']; "
    "sys.stdout.write(''.join('line %s %06d\\n' % (r, i) for i in range({n})))"
)


@pytest.fixture(scope="module")
def client(server_factory: Any) -> Iterator[httpx.Client]:
    server = server_factory.start("sqlite")
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c
    server.close()


def run_printing(client: httpx.Client, name: str, n: int, replicas: int = 1) -> int:
    command = 'python3 -c "' + PRINT.format(n=n) + '"'
    body = {"manifest": manifest(name, command, replicas=replicas)}
    r = client.post("/projects/default/runs", json=body)
    assert r.status_code == 201, r.text
    run_id: int = r.json()["id"]
    wait_status(client, run_id, {"complete"}, timeout=120)
    return run_id


def page_back(client: httpx.Client, run_id: int, limit: int) -> tuple[list[str], int]:
    """Every line: the tail, then pages with ``before`` until ``start``; and the page count."""
    page = client.get(f"/runs/{run_id}/logs", params={"tail": limit}).json()
    pages = [[line["text"] for line in page["lines"]]]
    while not page["start"]:
        r = client.get(
            f"/runs/{run_id}/logs", params={"before": page["before_cursor"], "limit": limit}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["lines"] or page["start"], "a page with no lines before the start"
        pages.append([line["text"] for line in page["lines"]])
        assert len(pages) < 1000, "paging back does not end"
    return [text for chunk in reversed(pages) for text in chunk], len(pages)


def test_paging_back_through_a_120000_line_log_gets_every_line_once_in_order(
    client: httpx.Client,
) -> None:
    run_id = run_printing(client, "long-log", LINES)
    texts, pages = page_back(client, run_id, 5000)
    assert len(texts) == LINES
    assert texts == [f"line 0 {i:06d}" for i in range(LINES)]
    assert pages == LINES // 5000
    # The tail reply's before_cursor continues from its first line.
    tail = client.get(f"/runs/{run_id}/logs", params={"tail": 3}).json()
    assert [x["text"] for x in tail["lines"]] == [
        f"line 0 {i:06d}" for i in range(LINES - 3, LINES)
    ]
    assert tail["start"] is False
    before = client.get(
        f"/runs/{run_id}/logs", params={"before": tail["before_cursor"], "limit": 2}
    ).json()
    assert [x["text"] for x in before["lines"]] == ["line 0 119995", "line 0 119996"]


def test_paging_back_merges_replicas_by_time(client: httpx.Client) -> None:
    run_id = run_printing(client, "two-logs", 3000, replicas=2)
    texts, _ = page_back(client, run_id, 700)
    assert sorted(texts) == sorted(f"line {r} {i:06d}" for r in (0, 1) for i in range(3000))
    for r in (0, 1):
        own = [t for t in texts if t.startswith(f"line {r} ")]
        assert own == [f"line {r} {i:06d}" for i in range(3000)]
    # Merged by time: the same order as the forward pages, which are merged by time too.
    full = client.get(f"/runs/{run_id}/logs", params={"tail": 10_000}).json()
    assert texts == [line["text"] for line in full["lines"]]
    # One replica only.
    only, _ = page_back_one(client, run_id)
    assert only == [f"line 1 {i:06d}" for i in range(3000)]


def page_back_one(client: httpx.Client, run_id: int) -> tuple[list[str], bool]:
    page = client.get(f"/runs/{run_id}/logs", params={"tail": 10, "replica": "worker-1"}).json()
    texts = [line["text"] for line in page["lines"]]
    while not page["start"]:
        page = client.get(
            f"/runs/{run_id}/logs",
            params={"before": page["before_cursor"], "limit": 999, "replica": "worker-1"},
        ).json()
        texts = [line["text"] for line in page["lines"]] + texts
    return texts, page["start"]


def test_bad_before_requests_are_refused(client: httpx.Client) -> None:
    run_id = run_printing(client, "short-log", 3)
    r = client.get(f"/runs/{run_id}/logs", params={"before": "not-a-cursor!"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    r = client.get(f"/runs/{run_id}/logs", params={"before": "", "limit": 0})
    assert r.status_code in (400, 422)
    r = client.get(f"/runs/{run_id}/logs", params={"before": "", "replica": "ps-0"})
    assert r.status_code == 404
    assert client.get("/runs/999999/logs", params={"before": ""}).status_code == 404
    # An empty cursor reads from the end; a short log is all one page.
    page = client.get(f"/runs/{run_id}/logs", params={"before": ""}).json()
    assert [x["text"] for x in page["lines"]] == [f"line 0 {i:06d}" for i in range(3)]
    assert page["start"] is True
