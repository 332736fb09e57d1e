"""Comparing runs in a real browser: the dashboard's metric and param columns (picked in the
Columns menu, sorted by the server, kept through the 2 s refresh), picking runs with check
boxes, the compare page (legend, overlay charts, params diff, parallel coordinates), its
refusals, and the leaderboard set from its own form."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qsl, urlparse

import httpx
from browser_support import shoot
from playwright.sync_api import expect

XSS = "<img src=x onerror=alert(1)>"


def _seed(
    api: httpx.Client,
    user: str,
    acc: float,
    params: dict[str, Any],
    *,
    project: str = "default",
    task: str = "train",
    steps: int = 200,
    extra: dict[str, float] | None = None,
) -> int:
    """A finished external run of ``user`` whose ``acc`` climbs to ``acc`` and ``loss`` falls
    to ``1 - acc`` over ``steps`` steps, with ``params`` and one point of each ``extra`` key."""
    body = {"name": task, "submitted_by": user}
    run = api.post(f"/projects/{project}/external-runs", json=body).json()
    points = []
    for step in range(steps):
        grow = math.sqrt((step + 1) / steps)  # ends exactly at ``acc``
        points.append({"key": "acc", "value": acc * grow, "step": step})
        points.append({"key": "loss", "value": 2.0 * (1 - grow) + (1 - acc), "step": step})
    points.append({"key": "system/cpu_percent", "value": 42.0, "step": 0})
    for key, value in (extra or {}).items():
        points.append({"key": key, "value": value, "step": 0})
    assert api.post(f"/runs/{run['id']}/metrics", json={"points": points}).status_code == 200
    assert api.post(f"/runs/{run['id']}/params", json={"params": params}).status_code == 200
    assert api.post(f"/runs/{run['id']}/finish", json={"status": "complete"}).status_code == 200
    return int(run["id"])


def _header_cols(page: Any) -> list[str]:
    return [
        c
        for c in page.locator("table.runs thead th.valcol").evaluate_all(
            "ths => ths.map(th => th.dataset.col)"
        )
    ]


def test_dashboard_columns_sort_and_pick_runs_to_compare(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    ids = [
        _seed(api, "ada", 0.81, {"lr": 0.1, "layers": 4, "opt": "adam"}, extra={"f1": 0.7}),
        _seed(api, "grace", 0.93, {"lr": 0.01, "layers": 4, "opt": "sgd"}, extra={"f1": 0.9}),
        _seed(api, "linus", 0.88, {"lr": 0.03, "layers": 8, "opt": XSS}),
        _seed(api, "ada", 0.75, {"lr": 0.3, "layers": 2, "opt": "adam"}, extra={"f1": 0.5}),
    ]
    base = f"{live_server.url}/projects/default/runs"
    page.goto(base)
    # Default: the first three metric keys; resource metrics (system/) are never columns.
    expect(page.locator("table.runs thead th.valcol")).to_have_count(3)
    assert _header_cols(page) == ["metric:acc", "metric:f1", "metric:loss"]
    row = page.locator(f'tr[data-run="{ids[1]}"]')
    expect(row.locator('td[data-col="metric:acc"]')).to_have_text("0.93")
    expect(page.locator(f'tr[data-run="{ids[2]}"] td[data-col="metric:f1"]')).to_have_text("—")

    # The Columns menu: tick a param, untick f1 and loss, Apply; the URL remembers them.
    page.locator("#col-picker > summary").click()
    menu = page.locator(".colmenu")
    expect(menu.get_by_label("opt")).to_be_visible()
    expect(menu.get_by_label("system/cpu_percent")).to_have_count(0)
    menu.get_by_label("f1").uncheck()
    menu.get_by_label("loss").uncheck()
    menu.get_by_label("opt").check()
    menu.get_by_label("lr").check()
    shoot(page, "dashboard-columns-menu")
    menu.get_by_role("button", name="Apply").click()
    expect(page.locator("table.runs thead th.valcol")).to_have_count(3)
    assert _header_cols(page) == ["metric:acc", "param:lr", "param:opt"]
    cols = [v for k, v in parse_qsl(urlparse(page.url).query) if k == "cols"]
    assert cols == ["metric:acc", "param:lr", "param:opt"]
    # Markup in a param is text.
    xss_cell = page.locator(f'tr[data-run="{ids[2]}"] td[data-col="param:opt"]')
    expect(xss_cell).to_have_text(XSS)
    expect(page.locator("table.runs img")).to_have_count(0)

    # Headers sort on the server: acc, highest first, then lowest first.
    page.locator('th[data-col="metric:acc"] a').click()
    expect(page.locator('th[data-col="metric:acc"] a.on')).to_contain_text("▾")
    order = [ids[1], ids[2], ids[0], ids[3]]
    expect(page.locator("tr[data-run]")).to_have_count(4)
    rows = page.locator("tr[data-run]").evaluate_all("rs => rs.map(r => Number(r.dataset.run))")
    assert rows == order
    assert dict(parse_qsl(urlparse(page.url).query))["sort"] == "metric:acc"
    page.locator('th[data-col="param:lr"] a').click()
    expect(page.locator('th[data-col="param:lr"] a.on')).to_be_visible()
    page.locator('th[data-col="param:lr"] a').click()  # again: ascending
    expect(page.locator('th[data-col="param:lr"] a.on')).to_contain_text("▴")
    rows = page.locator("tr[data-run]").evaluate_all("rs => rs.map(r => Number(r.dataset.run))")
    assert rows == [ids[1], ids[2], ids[0], ids[3]]  # lr 0.01, 0.03, 0.1, 0.3

    # Pick three runs; the pick survives the table's 2 s refresh.
    button = page.locator("#compare-button")
    expect(button).to_have_attribute("aria-disabled", "true")
    for run_id in ids[:3]:
        page.locator(f'tr[data-run="{run_id}"] input.pick').check()
    expect(button).to_have_text("Compare (3)")
    expect(button).to_have_attribute("aria-disabled", "false")
    with page.expect_response(re.compile(r"/runs/table\?")):
        pass  # one refresh of the table...
    with page.expect_response(re.compile(r"/runs/table\?.*cols=param%3Aopt")):
        pass  # ...and the next one, still with the chosen columns
    for run_id in ids[:3]:
        expect(page.locator(f'tr[data-run="{run_id}"] input.pick')).to_be_checked()
    expect(page.locator(f'tr[data-run="{ids[3]}"] input.pick')).not_to_be_checked()
    expect(page.locator("tr.picked")).to_have_count(3)
    assert _header_cols(page) == ["metric:acc", "param:lr", "param:opt"]
    shoot(page, "dashboard-metric-columns")

    button.click()
    page.wait_for_url(re.compile(r"/projects/default/compare\?"))
    picked = [int(v) for k, v in parse_qsl(urlparse(page.url).query) if k == "runs"]
    assert sorted(picked) == sorted(ids[:3])
    _check_compare_page(page, ids[:3])


def _check_compare_page(page: Any, ids: list[int]) -> None:
    legend = page.locator("#compare-legend .legenditem")
    expect(legend).to_have_count(3)
    # Overlay charts: acc and loss were logged by all three, f1 by two; one series per run.
    charts = page.locator("#compare-charts .chart")
    expect(charts.locator("h3")).to_have_text(["acc", "f1", "loss"])
    for key, series in (("acc", 3), ("f1", 2), ("loss", 3)):
        chart = page.locator(f'#compare-charts .chart[data-key="{key}"]')
        chart.scroll_into_view_if_needed()
        expect(chart).to_have_attribute("data-loaded", "true")
        expect(chart.locator("canvas")).to_have_count(1)
        expect(chart).to_have_attribute("data-series", str(series))
        count = chart.evaluate("c => c.uplot.series.length - 1")
        assert count == series
    acc = page.locator('#compare-charts .chart[data-key="acc"]')
    last = acc.evaluate("c => c.uplot.data.slice(1).map(s => s.filter(v => v !== null).at(-1))")
    assert max(last) > 0.9
    # Colours of the legend are those of the chart series.
    swatches = legend.locator(".swatch").evaluate_all(
        "s => s.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert len(set(swatches)) == 3

    # Params side by side: the rows that differ are marked; the toggle hides the others.
    params = page.locator("#compare-params tbody tr")
    expect(params).to_have_count(3)
    expect(page.locator("#compare-params tr.diff")).to_have_count(3)
    expect(page.locator('#compare-params tr[data-key="opt"] td').nth(2)).to_have_text(XSS)
    expect(page.locator("#compare-params img")).to_have_count(0)
    shoot(page, "compare")

    # Parallel coordinates: one axis per param and the metric, one line per run.
    box = page.locator("#parallel")
    box.scroll_into_view_if_needed()
    expect(box.locator("path.pcline")).to_have_count(3)
    expect(box).to_have_attribute("data-axes", "4")
    expect(box).to_have_attribute("data-metric", "acc")
    page.locator("#parallel-metric").select_option("f1")
    expect(box).to_have_attribute("data-metric", "f1")
    expect(box.locator("path.pcline")).to_have_count(3)
    expect(box.locator("path.pcline.nometric")).to_have_count(1)  # linus logged no f1
    expect(box.locator("text.pcrun")).to_have_count(3)
    shoot(page, "compare-parallel")


def test_compare_page_diff_toggle_and_what_it_refuses(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    same = {"seed": 7, "opt": "adam"}
    ids = [
        _seed(api, "ada", 0.8, {**same, "lr": 0.1}, steps=50),
        _seed(api, "bob", 0.9, {**same, "lr": 0.2}, steps=50),
    ]
    api.post("/projects", json={"name": "elsewhere"})
    foreign = _seed(api, "cy", 0.5, {"lr": 0.5}, project="elsewhere", steps=5)
    base = f"{live_server.url}/projects/default/compare"

    page.goto(f"{base}?runs={ids[0]}&runs={ids[1]}&runs={foreign}&runs=4242&runs=abc")
    expect(page.locator("#compare-missing")).to_contain_text(
        f"Not in project default: runs {foreign}, 4242"
    )
    expect(page.locator("#compare-bad")).to_contain_text("Not run ids: abc")
    expect(page.locator("#compare-legend .legenditem")).to_have_count(2)
    rows = page.locator("#compare-params tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#compare-diffcount")).to_have_text("1 of 3 differ")
    page.get_by_label("Show only differences").check()
    expect(page.locator("#compare-params tbody tr:visible")).to_have_count(1)
    expect(page.locator('#compare-params tr[data-key="lr"]')).to_be_visible()
    expect(page.locator('#compare-params tr[data-key="seed"]')).to_be_hidden()
    page.get_by_label("Show only differences").uncheck()
    expect(page.locator('#compare-params tr[data-key="seed"]')).to_be_visible()
    expect(page.locator("#parallel path.pcline")).to_have_count(2)
    shoot(page, "compare-missing")

    page.goto(f"{base}?runs={ids[0]}")
    expect(page.locator("#compare-empty")).to_contain_text("Pick 2 to 10 runs to compare.")
    expect(page.locator("#compare-empty")).to_contain_text("tick the box in front of each run")
    page.get_by_role("link", name="Experiments dashboard").click()
    page.wait_for_url(re.compile(r"/projects/default/runs$"))

    page.goto(base + "?" + "&".join(f"runs={i}" for i in range(1, 12)))
    expect(page.locator("#compare-error")).to_contain_text(
        "11 runs picked: compare at most 10 at a time."
    )
    chips = page.locator("#compare-chips a")
    expect(chips).to_have_count(11)
    shoot(page, "compare-too-many")
    chips.last.click()  # removing one leaves 10: the page compares the runs it finds
    expect(page.locator("#compare-error")).to_have_count(0)
    expect(page.locator("#compare-legend .legenditem")).to_have_count(2)


def test_leaderboard_is_set_from_its_page_and_ranks_each_users_best_run(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    ada = [_seed(api, "ada", 0.81, {"lr": 0.1}), _seed(api, "ada", 0.86, {"lr": 0.05})]
    bob = _seed(api, "bob", 0.93, {"lr": 0.01, "note": XSS})
    eve = _seed(api, XSS, 0.70, {"lr": 0.3})
    url = f"{live_server.url}/projects/default/leaderboard"

    page.goto(f"{live_server.url}/projects/default/runs")
    page.get_by_role("link", name="Leaderboard").click()
    page.wait_for_url(url)
    expect(page.locator("#leaderboard-unset")).to_contain_text("No evaluation metric yet")
    expect(page.locator("#leaderboard-unset")).to_contain_text(
        "trainyard project leaderboard default --metric val/acc --higher-is-better"
    )
    shoot(page, "leaderboard-unset")
    # A bad key is refused by the API, its message shown next to the form.
    page.locator("#leaderboard-metric").fill("system/cpu_percent")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#leaderboard-error")).to_contain_text("is a resource metric")
    # The logged keys are offered; one click fills the field.
    page.locator('.lbkeys [data-metric="acc"]').click()
    expect(page.locator("#leaderboard-metric")).to_have_value("acc")
    page.get_by_label("Higher is better").check()
    page.get_by_role("button", name="Save").click()

    board = page.locator("#leaderboard tbody tr")
    expect(board).to_have_count(3)
    expect(page.locator("#leaderboard-criteria")).to_contain_text(
        "Ranked by acc · higher is better"
    )
    runs = board.evaluate_all("rs => rs.map(r => [Number(r.dataset.rank), Number(r.dataset.run)])")
    assert runs == [[1, bob], [2, ada[1]], [3, eve]]
    expect(board.nth(0).locator(".lbvalue")).to_have_text(re.compile(r"^0\.9\d+$"))
    expect(board.nth(0).locator(".lbparams")).to_contain_text(f"note={XSS}")
    expect(board.nth(2).locator("td.user")).to_contain_text(XSS)
    expect(page.locator("#leaderboard img")).to_have_count(0)
    expect(board.nth(1).get_by_role("link")).to_have_attribute("href", f"/runs/{ada[1]}")
    shoot(page, "leaderboard")

    # Lower is better: the order turns over, and ada's other run is now her best.
    page.get_by_text("Change the metric").click()
    page.get_by_label("Lower is better").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#leaderboard-criteria")).to_contain_text("lower is better")
    runs = board.evaluate_all("rs => rs.map(r => Number(r.dataset.run))")
    assert runs == [eve, ada[0], bob]

    # The project page names the metric; the dashboard's default column is that metric.
    page.goto(f"{live_server.url}/projects/default")
    expect(page.locator("#project-leaderboard")).to_contain_text("Ranked by acc · lower is better")
    page.goto(f"{live_server.url}/projects/default/runs")
    assert _header_cols(page) == ["metric:acc"]

    page.goto(url)
    page.get_by_text("Change the metric").click()
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#leaderboard-unset")).to_be_visible()
    assert api.get("/projects/default").json()["leaderboard"] is None


def test_leaderboard_with_a_metric_no_run_logged_shows_how_to_log_it(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    _seed(api, "ada", 0.8, {"lr": 0.1}, steps=5)
    put = api.put("/projects/default/leaderboard", json={"metric": "val/acc", "goal": "max"})
    assert put.status_code == 200
    page.goto(f"{live_server.url}/projects/default/leaderboard")
    empty = page.locator("#leaderboard-empty")
    expect(empty).to_contain_text("No run has logged val/acc yet.")
    expect(empty).to_contain_text('trainyard.log_metric("val/acc", value, step=step)')
    shoot(page, "leaderboard-empty")
    page.goto(f"{live_server.url}/projects/nowhere/leaderboard")
    expect(page.get_by_text("project 'nowhere' not found")).to_be_visible()
