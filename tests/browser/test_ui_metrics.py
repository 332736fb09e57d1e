"""The run view's Metrics tab in a real browser: one uPlot chart per key with its summary,
log scale, smoothing, step/time x axis, drag-to-zoom re-reading the window, the system
section, logged params shown as text, live updates while the run is running. (The System
section's resource charts: test_ui_resources.py.)"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser_support import manifest, shoot, submit, wait_status
from playwright.sync_api import expect

XSS = "<img src=x onerror=alert(1)>"
STEPS = 5_000


def _points(start: float) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    for step in range(STEPS):
        loss = 2.5 * math.exp(-step / 900) + 0.05 + 0.04 * math.sin(step / 7)
        if 3_000 <= step < 3_040:
            loss += 4.0  # a spike that downsampling must keep
        points.append({"key": "loss", "value": loss, "step": step, "time": start + step * 0.1})
        if step % 50 == 0:
            acc = 1 - 0.9 * math.exp(-step / 1200)
            points.append({"key": "acc", "value": acc, "step": step, "time": start + step * 0.1})
        if step % 500 == 0:
            val = 0.95 - 0.8 * math.exp(-step / 1500)
            t = start + step * 0.1
            points.append({"key": "val/acc", "value": val, "step": step, "time": t})
        if step % 100 == 0:
            cpu = 60 + 30 * math.sin(step / 400)
            t = start + step * 0.1
            points.append({"key": "system/cpu_percent", "value": cpu, "step": step, "time": t})
    return points


def _post(api: httpx.Client, run_id: int, points: list[dict[str, Any]]) -> None:
    response = api.post(f"/runs/{run_id}/metrics", json={"points": points})
    assert response.status_code == 200, response.text


@pytest.fixture
def running(api: httpx.Client) -> Iterator[dict[str, Any]]:
    run = submit(api, manifest("train", "sleep 60"))
    try:
        yield wait_status(api, run["id"], {"running"})
    finally:
        api.post(f"/runs/{run['id']}/stop")
        wait_status(api, run["id"], {"stopped", "complete", "error"})


def _plot(page: Any, key: str, expression: str) -> Any:
    """``expression`` evaluated on the uPlot instance (``u``) of the chart of ``key``."""
    script = f"u => {expression}"
    return page.locator(f'.chart[data-key="{key}"]').evaluate(f"card => ({script})(card.uplot)")


def _open_metrics(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Metrics").click()
    expect(page.locator("#pane-metrics")).to_be_visible()


def test_metrics_tab_draws_a_chart_per_key_with_options_and_live_updates(
    page: Any, live_server: Any, api: httpx.Client, running: dict[str, Any]
) -> None:
    run_id = running["id"]
    # Keys are restricted: markup in a key is refused by the API, so it never reaches a page.
    bad = api.post(f"/runs/{run_id}/metrics", json={"points": [{"key": XSS, "value": 1}]})
    assert bad.status_code in (400, 422), bad.text
    _post(api, run_id, _points(time.time() - 600))
    params = {"lr": 0.0003, "optimizer": "adamw", "note": XSS}
    assert api.post(f"/runs/{run_id}/params", json={"params": params}).status_code == 200

    _open_metrics(page, f"{live_server.url}/runs/{run_id}")
    user = page.locator("#metrics-charts .chart")
    expect(user).to_have_count(3)
    expect(user.locator("h3")).to_have_text(["acc", "loss", "val/acc"])
    for chart in (user.nth(0), user.nth(1), user.nth(2)):
        expect(chart.locator("canvas")).to_have_count(1)
    loss = page.locator('.chart[data-key="loss"]')
    summary = re.compile(r"last [\d.]+ · min [\d.]+ · max [\d.]+")
    expect(loss.locator(".stats")).to_contain_text(summary)
    # The chart asks for about 2 points per pixel: 5,000 points are downsampled.
    expect(loss).to_have_attribute("data-points", re.compile(r"^\d+$"))
    drawn = int(loss.get_attribute("data-points"))
    assert 100 < drawn < STEPS, drawn
    expect(loss.locator(".note")).to_contain_text(f"of {STEPS} points")
    # The spike survives downsampling (min/max buckets).
    peak = _plot(page, "loss", "Math.max(...u.data[1])")
    assert peak > 4.0, peak

    # The system section, below the user metrics: a key without a replica part (as logged
    # before per-replica keys) under its own heading. The replicas' own resource charts are
    # tested in test_ui_resources.py.
    system = page.locator("#metrics-system")
    expect(system).to_be_visible()
    other = system.locator('.sysreplica[data-replica=""]')
    expect(other.locator(".chart h3")).to_have_text(["system/cpu_percent"])
    expect(other.locator("canvas")).to_have_count(1)
    expect(other.locator(".chart")).to_have_attribute("data-points", "50")  # all, the first too

    # Params: a table, the markup in a value shown as text.
    table = page.locator("#metrics-params")
    expect(table.locator("th")).to_have_text(["lr", "note", "optimizer"])
    expect(table.locator("tr", has_text="note").locator("td")).to_have_text(XSS)
    expect(table.locator("img")).to_have_count(0)
    shoot(page, "run-metrics")
    page.locator("#metrics-params-box").scroll_into_view_if_needed()
    shoot(page, "run-metrics-system")
    page.evaluate("() => window.scrollTo(0, 0)")

    # Smoothing changes the drawn smoothed line, the raw one stays.
    page.locator("#metrics-smoothing").fill("0")
    expect(loss).to_have_attribute("data-smoothing", "0")
    raw_last = float(loss.get_attribute("data-smoothed-last"))
    page.locator("#metrics-smoothing").fill("0.95")
    expect(loss).to_have_attribute("data-smoothing", "0.95")
    smoothed_last = float(loss.get_attribute("data-smoothed-last"))
    assert smoothed_last != pytest.approx(raw_last, rel=1e-6)
    expect(page.locator("#metrics-smoothing-value")).to_have_text("0.95")
    series = _plot(page, "loss", "[u.data[1].at(-1), u.data[2].at(-1)]")
    assert series[0] != pytest.approx(series[1], rel=1e-6)

    # Log scale on y.
    log = page.get_by_role("button", name="Log scale")
    log.click()
    expect(log).to_have_attribute("aria-pressed", "true")
    expect(loss).to_have_attribute("data-log", "true")
    assert _plot(page, "loss", "u.scales.y.distr") == 3
    shoot(page, "run-metrics-log")
    log.click()
    expect(loss).to_have_attribute("data-log", "false")

    # x axis: relative wall time (seconds from the first point), then back to steps.
    page.locator("#metrics-x").select_option("time")
    expect(loss).to_have_attribute("data-x", "time")
    first_x = _plot(page, "loss", "u.data[0][0]")
    assert first_x == pytest.approx(0, abs=1)
    shoot(page, "run-metrics-time")
    page.locator("#metrics-x").select_option("step")
    expect(loss).to_have_attribute("data-x", "step")

    # Drag to zoom: the window is read again at full detail; double-click resets.
    box = loss.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.58, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.62, y, steps=5)
    page.mouse.up()
    expect(loss).to_have_attribute("data-zoomed", "true")
    expect(loss.locator(".note")).to_contain_text("zoomed: steps")
    xs = _plot(page, "loss", "u.data[0]")
    assert 2_500 < xs[0] < xs[-1] < 3_500, (xs[0], xs[-1])
    assert all(b - a == 1 for a, b in itertools.pairwise(xs)), "a zoomed window is not downsampled"
    shoot(page, "run-metrics-zoomed")
    loss.locator(".u-over").dblclick()
    expect(loss).to_have_attribute("data-zoomed", "false")

    # Live: new points show without a reload.
    t = time.time()
    more = [{"key": "loss", "value": 0.001, "step": STEPS + i, "time": t + i} for i in range(10)]
    _post(api, run_id, [*more, {"key": "val/acc", "value": 0.99, "step": STEPS, "time": t}])
    expect(loss.locator(".stats")).to_contain_text("last 0.001", timeout=10_000)
    expect(loss).to_have_attribute("data-count", str(STEPS + 10), timeout=10_000)
    expect(page.locator('.chart[data-key="val/acc"] .stats')).to_contain_text("last 0.99")
    expect(page.locator("#metrics-live")).to_contain_text("live")


def test_metrics_tab_empty_state_names_the_sdk(
    page: Any, live_server: Any, api: httpx.Client, running: dict[str, Any]
) -> None:
    _open_metrics(page, f"{live_server.url}/runs/{running['id']}#metrics")
    empty = page.locator("#metrics-empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("No metrics logged yet")
    expect(empty).to_contain_text("docs/sdk.md")
    expect(page.locator("#metrics-params-box")).to_be_hidden()
    expect(page.get_by_role("toolbar", name="Chart options")).to_be_hidden()
    shoot(page, "run-metrics-empty")
    # The first point appears without a reload.
    _post(api, running["id"], [{"key": "loss", "value": 1.5, "step": 0}])
    expect(page.locator('.chart[data-key="loss"] canvas')).to_have_count(1, timeout=10_000)
    expect(empty).to_be_hidden()
