"""The Operator area and a run's placement in a real browser: simulated GPUs and who holds
them, pools, groups, the queue with its reasons (refreshed live), the queued run's position,
start-immediately runs sharing GPUs, and GPU names that hold markup shown as text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from browser_support import shoot, submit, wait_for, wait_status
from playwright.sync_api import expect

from trainyard.core.scheduling import Gpu, GpuUse, Group, Node, Pool, QueueEntry
from trainyard.server.web.operator import duration, operator_view, size
from trainyard.server.web.pages import templates

V100 = "Tesla-V100-SXM3-32GB"
XSS = "<img src=x onerror=alert(1)>"
XSS_NO_SPACE = "<img/src=x/onerror=alert(1)>"  # survives the server turning spaces into "-"


def gpu_manifest(name: str, gpus: int, replicas: int = 1, extra: str = "") -> str:
    """A native manifest: ``replicas`` workers sleeping 60 s, each asking for ``gpus`` GPUs."""
    return (
        f"apiVersion: trainyard/v1\nname: {name}\n{extra}resources:\n  - name: worker\n"
        f"    replicas: {replicas}\n    command: {json.dumps('sleep 60')}\n"
        f"    resources:\n      requests: {{cpu: 100m, memory: 64Mi, gpu: {gpus}}}\n"
    )


@pytest.fixture
def started(api: httpx.Client) -> Iterator[list[int]]:
    """Ids of the runs a test starts; each is stopped at the end."""
    ids: list[int] = []
    yield ids
    for run_id in ids:
        api.post(f"/runs/{run_id}/stop")
    for run_id in ids:
        wait_status(api, run_id, {"stopped", "complete", "error"})


def _node(api: httpx.Client) -> str:
    name: str = api.get("/nodes").json()["items"][0]["name"]
    return name


def _simulate(api: httpx.Client, count: int, gpu_type: str = V100) -> httpx.Response:
    return api.put(f"/nodes/{_node(api)}/simulated-gpus", json={"count": count, "type": gpu_type})


def _queued_reason(api: httpx.Client, run_id: int, prefix: str) -> str:
    def probe() -> str | None:
        for item in api.get("/queue").json()["items"]:
            if item["run_id"] == run_id and item["reason"].startswith(prefix):
                return str(item["reason"])
        return None

    reason: str = wait_for(f"run {run_id} to wait with a reason", probe)
    return reason


def test_operator_shows_gpus_holders_pools_groups_and_a_live_queue(
    page: Any, live_server: Any, api: httpx.Client, started: list[int]
) -> None:
    assert _simulate(api, 4).status_code == 200
    assert api.post("/groups", json={"name": "research"}).status_code == 201
    pool = api.post("/pools", json={"name": "v100", "gpu_type": V100, "group": "research"})
    assert pool.status_code == 201, pool.text
    assert api.post("/pools/v100/gpus", json={"count": 1}).status_code == 200
    assert api.post("/projects", json={"name": "vision", "group": "research"}).status_code == 201
    # The default pool keeps 3 GPUs: a (2 replicas) and b take them all, c must queue.
    a = submit(api, gpu_manifest("pair", 1, replicas=2), submitted_by="ada")
    b = submit(api, gpu_manifest("solo", 1))
    started += [a["id"], b["id"]]
    wait_status(api, a["id"], {"running"})
    wait_status(api, b["id"], {"running"})
    c = submit(api, gpu_manifest("wide", 2, extra="timeout: 5m\n"), priority=3)
    started.append(c["id"])
    reason = _queued_reason(api, c["id"], f"waiting for 2 × {V100}")

    page.goto(f"{live_server.url}/projects/default/runs")
    page.get_by_role("link", name="Operator").click()
    expect(page).to_have_url(f"{live_server.url}/operator")
    expect(page.get_by_role("link", name="Operator")).to_have_attribute("aria-current", "page")
    page.evaluate("window.__same_page = true")
    summary = page.locator("#op-summary")
    expect(summary).to_contain_text("4 GPUs (4 simulated)")
    expect(summary).to_contain_text("1 free")
    expect(summary).to_contain_text("1 queued")
    expect(page.locator("#op-readonly")).to_contain_text("trainyard pool")

    card = page.locator("article.node")
    expect(card).to_have_count(1)
    expect(card.locator("[data-seen]")).to_have_text(re.compile(r"^last seen \d+ s ago$"))
    expect(card).to_contain_text("cores")
    tiles = card.locator("li.gpu")
    expect(tiles).to_have_count(4)
    expect(tiles.locator(".badge.sim")).to_have_text(["simulated"] * 4)
    expect(tiles.locator(".gpuproduct")).to_have_text([V100] * 4)
    free = tiles.filter(has=page.locator(".gpupool", has_text=re.compile("^v100$")))
    expect(free).to_have_attribute("data-state", "free")
    expect(free.locator(".holder")).to_have_count(0)
    expect(card.locator('li.gpu[data-state="busy"]')).to_have_count(3)
    expect(card.locator(f'.holder[data-run="{a["id"]}"]')).to_have_count(2)
    expect(card.locator(f'.holder[data-run="{a["id"]}"]')).to_contain_text(
        [f"{a['ref']} worker-0", f"{a['ref']} worker-1"]
    )
    holder_b = card.locator(f'.holder[data-run="{b["id"]}"]')
    expect(holder_b).to_have_count(1)
    shoot(page, "operator-nodes")
    holder_b.get_by_role("link", name=b["ref"]).click()
    expect(page).to_have_url(f"{live_server.url}/runs/{b['id']}")
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/operator")
    page.evaluate("window.__same_page = true")

    page.get_by_role("tab", name=re.compile("Pools")).click()
    expect(page).to_have_url(f"{live_server.url}/operator#pools")
    default_pool = page.locator('tr[data-pool="default"] td')
    expect(default_pool).to_have_text(
        [re.compile(r"default\s+default"), "any", "default", "3", "0", "3"]
    )
    expect(page.locator('tr[data-pool="v100"] td')).to_have_text(
        ["v100", V100, "research", "1", "1", "1"]
    )
    shoot(page, "operator-pools")

    page.get_by_role("tab", name=re.compile("Groups")).click()
    expect(page.locator('tr[data-group="default"] td')).to_have_text(
        [re.compile(r"default\s+default"), "default", "default"]
    )
    research = page.locator('tr[data-group="research"] td')
    expect(research).to_have_text(["research", "v100", "vision"])
    expect(research.get_by_role("link", name="vision")).to_have_attribute(
        "href", "/projects/vision/runs"
    )
    shoot(page, "operator-groups")

    page.get_by_role("tab", name=re.compile("Queue")).click()
    expect(page.locator("#count-queue")).to_have_text("1")
    row = page.locator(f'#op-queue tr[data-run="{c["id"]}"]')
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("1")
    expect(cells.nth(1)).to_contain_text(c["ref"])
    expect(cells.nth(2)).to_have_text("default")
    expect(cells.nth(3)).to_have_text("default")
    expect(cells.nth(4)).to_have_text("3")
    expect(cells.nth(5)).to_have_text("2")
    expect(cells.nth(6)).to_have_text(re.compile(r"^\d+ s$|^\d+ min"))
    expect(cells.nth(7)).to_have_text("5 min")
    expect(cells.nth(8)).to_have_text(reason)
    expect(row.locator(".badge")).to_have_count(0)  # not a start-immediately run
    shoot(page, "operator-queue")

    # Live: once a and b end, c is placed; the queue empties without a reload, on its tab.
    for run in (a, b):
        assert api.post(f"/runs/{run['id']}/stop").status_code == 200
    expect(page.get_by_text("Nothing is waiting.")).to_be_visible(timeout=20_000)
    expect(page.locator("#count-queue")).to_have_text("0")
    expect(page.locator("#tab-queue")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name=re.compile("Nodes")).click()
    expect(page.locator(f'.holder[data-run="{c["id"]}"]')).to_have_count(2)
    expect(page.locator(f'.holder[data-run="{a["id"]}"]')).to_have_count(0)
    assert page.evaluate("window.__same_page") is True, "the page reloaded"


def test_run_view_shows_the_placement_and_a_queued_runs_position(
    page: Any, live_server: Any, api: httpx.Client, started: list[int]
) -> None:
    assert _simulate(api, 2).status_code == 200
    a = submit(api, gpu_manifest("pair", 1, replicas=2))
    started.append(a["id"])
    wait_status(api, a["id"], {"running"})
    first = submit(api, gpu_manifest("next", 1), priority=2)
    second = submit(api, gpu_manifest("later", 2))
    started += [first["id"], second["id"]]
    _queued_reason(api, second["id"], "waiting for 2 ×")

    page.goto(f"{live_server.url}/runs/{a['id']}#replicas")
    rows = page.locator("table.placement tbody tr")
    expect(rows).to_have_count(2)
    node = _node(api)
    for i in (0, 1):
        cells = rows.nth(i).locator("td")
        expect(cells).to_have_text(
            [f"worker-{i}", node, re.compile(rf"^\d:{V100}$"), "100m", "64Mi"]
        )
    chips = page.locator("table.placement .gpuchip")
    labels = chips.all_text_contents()
    assert sorted(labels) == [f"0:{V100}", f"1:{V100}"]
    expect(chips.first).to_have_attribute(
        "title", re.compile(rf"^{node}:\d · GPU-sim-.* · simulated$")
    )
    expect(page.locator("table.placement .badge")).to_have_count(0)  # nothing shared
    expect(page.locator("#queue-notice")).to_have_count(0)
    shoot(page, "run-placement")

    page.goto(f"{live_server.url}/runs/{second['id']}#replicas")
    notice = page.locator("#queue-notice")
    expect(notice).to_contain_text("Queued — position 2")
    expect(notice).to_contain_text(f"waiting for 2 × {V100} in pool 'default'")
    expect(page.locator("#placement-none")).to_contain_text("queued at position 2")
    expect(page.locator("#run-priority")).to_have_count(0)
    notice.get_by_role("link", name=re.compile("See the queue")).click()
    expect(page).to_have_url(f"{live_server.url}/operator#queue")
    expect(page.locator("#tab-queue")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#op-queue tbody tr")).to_have_count(2)
    expect(page.locator("#op-queue tbody tr").nth(0)).to_have_attribute(
        "data-run", str(first["id"])
    )

    page.goto(f"{live_server.url}/runs/{first['id']}")
    expect(page.locator("#queue-notice")).to_contain_text("Queued — position 1")
    expect(page.locator("#run-priority")).to_have_text("priority 2")
    shoot(page, "run-queued")

    # Once a ends, first is placed: the notice goes and its placement appears, live.
    assert api.post(f"/runs/{a['id']}/stop").status_code == 200
    expect(page.locator("#run-status")).to_contain_text("running", timeout=20_000)
    expect(page.locator("#queue-notice")).to_have_count(0)
    page.get_by_role("tab", name="Replicas").click()
    expect(page.locator("table.placement tbody tr")).to_have_count(1)


def test_start_immediately_shares_a_gpu_and_says_so(
    page: Any, live_server: Any, api: httpx.Client, started: list[int]
) -> None:
    assert _simulate(api, 1).status_code == 200
    holder = submit(api, gpu_manifest("holder", 1))
    started.append(holder["id"])
    wait_status(api, holder["id"], {"running"})
    sharer = submit(api, gpu_manifest("sharer", 1), start_immediately=True)
    started.append(sharer["id"])
    wait_status(api, sharer["id"], {"running"})

    page.goto(f"{live_server.url}/operator")
    tile = page.locator("li.gpu")
    expect(tile).to_have_attribute("data-state", "busy")
    expect(tile.locator(".holder")).to_have_count(2)
    expect(tile.locator(f'.holder[data-run="{sharer["id"]}"] .badge')).to_have_text("shared")
    expect(tile.locator(f'.holder[data-run="{holder["id"]}"] .badge')).to_have_count(0)
    shoot(page, "operator-shared")

    page.goto(f"{live_server.url}/runs/{sharer['id']}#replicas")
    expect(page.locator("#shared-notice")).to_contain_text("Started immediately")
    expect(page.locator("table.placement tbody tr .badge")).to_have_text("shared")
    page.goto(f"{live_server.url}/runs/{holder['id']}")
    expect(page.locator("#shared-notice")).to_have_count(0)


def test_gpu_and_pool_names_with_markup_are_refused(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    """GPU types are product names: markup is refused by the API, so it never reaches a page
    (how the pages escape a hostile name anyway is tested without a browser below)."""
    for bad in (XSS, XSS_NO_SPACE):
        response = _simulate(api, 1, bad)
        assert response.status_code == 400, response.text
        assert "GPU type" in response.json()["error"]["message"]
        made = api.post("/pools", json={"name": "xss", "gpu_type": bad})
        assert made.status_code == 400, made.text
    page.goto(f"{live_server.url}/operator")
    expect(page.locator("li.gpu")).to_have_count(0)
    assert page.locator("main img").count() == 0


def test_operator_panes_render_absent_gpus_and_start_immediately_runs() -> None:
    """What the API cannot set up on one machine: an absent GPU, a waiting start-immediately
    run, a stale node; and every name escaped in the live fragments."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    gpu = Gpu(uuid="GPU-1", index=0, product=XSS, node="n1", pool="default", present=False)
    held = Gpu(
        uuid="GPU-2",
        index=1,
        product=V100,
        memory_bytes=32 * 1024**3,
        node="n1",
        pool="default",
        used_by=[GpuUse(run_id=7, run="p/t#1", replica="worker-0", shared=True)],
    )
    node = Node(
        name="n1",
        cpu_millis=8000,
        memory_bytes=64 * 1024**3,
        reserved_cpu_millis=7500,
        reserved_memory_bytes=1024**3,
        registered_at=now,
        heartbeat_at=now - timedelta(minutes=5),
        gpus=[held, gpu],
    )
    entry = QueueEntry(
        position=1,
        run_id=9,
        run="p/t#2",
        project="p",
        group="default",
        start_immediately=True,
        submitted_by=XSS,
        queued_at=now,
        waiting_seconds=3725,
        gpus=1,
        reason="waiting for the next scheduling pass",
    )
    pools = [Pool(name="default", gpu_type=None, group="default", default=True, total=1, free=1)]
    groups = [Group(name="default", default=True, pools=["default"], projects=["p"])]
    html = templates.get_template("_operator_live.html").render(
        operator_view([node], pools, groups, [entry], now)
    )
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'data-state="absent"' in html and ">absent</span>" in html
    assert 'data-state="shared"' in html
    assert "start immediately</span>" in html
    assert "not reporting" in html and "last seen 5 min ago" in html
    assert "7.5 of 8 cores" in html and 'class="meter full"' in html
    assert "1 h 2 min" in html
    assert html.count('hx-swap-oob="true"') == 9


def test_human_sizes_and_durations() -> None:
    assert size(0) == "0 B"
    assert size(201326592) == "192 MiB"
    assert size(25276510208) == "23.5 GiB"
    assert size(32 * 1024**3) == "32 GiB"
    assert duration(None) == "—"
    assert duration(42.9) == "42 s"
    assert duration(185) == "3 min 5 s"
    assert duration(7800) == "2 h 10 min"
    assert duration(90000) == "1 d 1 h"
