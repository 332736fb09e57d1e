"""The web UI in a real browser: dashboard, run view, logs, stop, picker, 404, XSS, keyboard."""

from __future__ import annotations

import re
from typing import Any

import httpx
from browser_support import manifest, shoot, submit, wait_status
from playwright.sync_api import expect

XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def test_root_redirects_to_the_default_dashboard(page: Any, live_server: Any) -> None:
    page.goto(live_server.url + "/")
    assert page.url == f"{live_server.url}/projects/default/runs"
    expect(page.get_by_role("heading", name=re.compile("Experiments"))).to_be_visible()
    expect(page.get_by_text("No runs match.")).to_be_visible()
    shoot(page, "dashboard-empty")


def test_dashboard_shows_a_run_appear_and_finish_without_reload(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    page.goto(f"{live_server.url}/projects/default/runs")
    page.evaluate("window.__same_page = true")
    run = submit(
        api,
        manifest("train", "sleep 2; echo done", replicas=2),
        git={"branch": "feature/x", "commit": "0123456789abcdef"},
        submitted_by="ada",
    )
    row = page.locator(f'tr[data-run="{run["id"]}"]')
    # Who started it: an initial avatar and the name.
    expect(row.locator("td.user")).to_have_text(re.compile(r"^\s*A\s+ada\s*$"))
    expect(row.locator("td.user .avatar")).to_have_text("A")
    # Appears, runs and completes through the 2 s table poll alone.
    expect(row).to_have_attribute("data-status", "running", timeout=15_000)
    expect(row.locator(".pip.live")).to_have_count(2)
    expect(row).to_contain_text("feature/x")
    expect(row).to_contain_text("0123456")
    expect(row).to_contain_text("512Mi")  # 256Mi x 2 replicas
    shoot(page, "dashboard-running")
    expect(row).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(row.locator(".pip.ok")).to_have_count(2)
    expect(row.locator(".badge")).to_have_text(re.compile("complete"))
    assert page.evaluate("window.__same_page") is True, "the page reloaded"
    shoot(page, "dashboard")


def test_dashboard_filters_search_sort_and_pages(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    for name in ("alpha", "beta", "alpha"):
        submit(api, manifest(name, "true"))
    for run_id in (1, 2, 3):
        wait_status(api, run_id, {"complete"})
    base = f"{live_server.url}/projects/default/runs"
    page.goto(base + "?task=alpha")
    expect(page.locator("tr[data-run]")).to_have_count(2)
    # Submitted without a user (as the web form does): a dash, no avatar.
    expect(page.locator("tr[data-run] td.user")).to_have_text(["—", "—"])
    assert page.locator("tr[data-run] .avatar").count() == 0
    page.goto(base + "?q=bet")
    expect(page.locator("tr[data-run]")).to_have_count(1)
    page.goto(base + "?status=running")
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.goto(base + "?sort=task&order=asc")
    expect(page.locator("tr[data-run] td:nth-child(2)")).to_have_text(["alpha", "alpha", "beta"])
    page.goto(base + "?page=99")
    expect(page.get_by_text("page 99 of 1")).to_be_visible()
    expect(page.get_by_text("Page 99 is past the end.")).to_be_visible()
    page.goto(base + "?status=bogus&sort=bogus&q=%25")  # nonsense is ignored, not a 500
    expect(page.get_by_text("No runs match.")).to_be_visible()


def test_logs_arrive_live_with_utc_times_and_stop_by_keyboard(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    command = "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.4; done; sleep 60"
    run = submit(api, manifest("ticker", command, extra=""))
    page.goto(f"{live_server.url}/runs/{run['id']}")
    # The title is the run's ref alone (the delete dialog once leaked into it).
    expect(page).to_have_title(f"{run['ref']} · trainyard")
    expect(page.locator("dialog#delete-dialog")).to_have_count(1)
    expect(page.get_by_text("Logs are displayed in UTC")).to_be_visible()
    lines = page.locator("#log-lines .line")
    expect(lines.filter(has_text="tick-1")).to_have_count(1, timeout=15_000)
    expect(lines.filter(has_text="tick-5")).to_have_count(1, timeout=15_000)
    first = lines.filter(has_text="tick-1")
    expect(first.locator(".t")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))
    expect(first.locator(".r")).to_have_text("worker-0")
    shoot(page, "run-logs")

    page.get_by_role("tab", name="Replicas").click()
    expect(page.locator('tr[data-replica="worker-0"]')).to_contain_text("running")
    shoot(page, "run-replicas")
    page.get_by_role("tab", name="Parameters and manifest").click()
    expect(page.locator("#manifest")).to_contain_text("name: ticker")
    shoot(page, "run-parameters")

    stop = page.get_by_role("button", name="Stop")
    stop.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#run-status")).to_contain_text("stopped", timeout=20_000)
    expect(stop).to_have_count(0)
    assert api.get(f"/runs/{run['id']}").json()["status"] == "stopped"
    page.get_by_role("tab", name="Replicas").click()
    expect(page.locator("table.events")).to_contain_text("stop requested by user")


def test_log_download_and_replica_selector(page: Any, live_server: Any, api: httpx.Client) -> None:
    run = submit(api, manifest("pair", "echo from-$TRAINYARD_REPLICA", replicas=2))
    wait_status(api, run["id"], {"complete"})
    page.goto(f"{live_server.url}/runs/{run['id']}")
    lines = page.locator("#log-lines .line")
    expect(lines).to_have_count(2)
    page.select_option("#log-replica", "worker-1")
    expect(lines).to_have_count(1)
    expect(lines.locator(".r")).to_have_text("worker-1")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    text = open(info.value.path()).read()  # noqa: SIM115 - the browser's temp file
    assert " worker-1 " in text and " worker-0 " not in text
    full = httpx.get(f"{live_server.url}/runs/{run['id']}/logs.txt")
    assert full.status_code == 200
    assert "attachment" in full.headers["content-disposition"]
    assert len(full.text.splitlines()) == 2


def test_project_picker_switches_project(page: Any, live_server: Any, api: httpx.Client) -> None:
    assert api.post("/projects", json={"name": "vision"}).status_code == 201
    page.goto(f"{live_server.url}/projects/default/runs")
    page.select_option("#project-picker", label="vision")
    page.wait_for_url(f"{live_server.url}/projects/vision/runs")
    expect(page.get_by_role("heading", name=re.compile("vision"))).to_be_visible()
    expect(page.locator("#project-picker")).to_have_value("/projects/vision/runs")


def test_unknown_run_and_project_get_a_friendly_404(page: Any, live_server: Any) -> None:
    response = page.goto(f"{live_server.url}/runs/424242")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("run 424242 not found")).to_be_visible()
    shoot(page, "not-found")
    response = page.goto(f"{live_server.url}/projects/nope/runs")
    assert response.status == 404
    expect(page.get_by_text("project 'nope' not found")).to_be_visible()
    page.get_by_role("link", name="Back to the experiments").click()
    page.wait_for_url(f"{live_server.url}/projects/default/runs")


def test_xss_payloads_are_shown_as_text(page: Any, live_server: Any, api: httpx.Client) -> None:
    summary = (
        f"# Vision\n\nSome **bold** text.\n\n{XSS[0]}\n\n{XSS[1]}\n\n[link](javascript:alert(1))"
    )
    assert api.put("/projects/default/summary", json={"summary": summary}).status_code == 200
    extra = "parameters:\n  - name: note\n    type: string\n    default: x\n"
    command = "printf '%s\\n' '" + XSS[0] + "' '" + XSS[1] + "'"
    run = submit(
        api,
        manifest("xss", command, extra=extra),
        parameters={"note": XSS[1]},
        submitted_by=XSS[1],
    )
    wait_status(api, run["id"], {"complete"})

    page.goto(f"{live_server.url}/projects/default/runs")
    user_cell = page.locator(f'tr[data-run="{run["id"]}"] td.user')
    expect(user_cell).to_contain_text(XSS[1])  # the user name is text, not markup
    assert user_cell.locator("img").count() == 0

    page.goto(f"{live_server.url}/projects/default")
    summary_box = page.locator("#summary")
    expect(summary_box.locator("strong")).to_have_text("bold")  # markdown is rendered
    for payload in XSS:
        expect(summary_box).to_contain_text(payload)  # raw HTML is text
    assert summary_box.locator("script, img").count() == 0
    assert summary_box.locator('a[href^="javascript"]').count() == 0
    shoot(page, "project")

    page.goto(f"{live_server.url}/runs/{run['id']}")
    lines = page.locator("#log-lines .line .x")
    expect(lines).to_have_text(XSS)
    assert page.locator("#log-lines img, #log-lines script").count() == 0
    page.get_by_role("tab", name="Parameters and manifest").click()
    expect(page.locator("table.kv")).to_contain_text(XSS[1])
    assert page.locator("main img").count() == 0
    page.wait_for_timeout(300)  # give any injected handler a chance to fire (none must)
    assert page.dialogs == []


def test_theme_toggle_switches_and_remembers(page: Any, live_server: Any) -> None:
    page.goto(f"{live_server.url}/projects/default/runs")
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    page.get_by_role("button", name=re.compile("Theme")).click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = page.evaluate(background)
    assert dark != light
    page.reload()
    assert page.evaluate(background) == dark


def test_long_log_shows_a_window_and_pages_back(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    run = submit(api, manifest("long", "seq 1 3000"))
    wait_status(api, run["id"], {"complete"})
    page.goto(f"{live_server.url}/runs/{run['id']}")
    lines = page.locator("#log-lines .line .x")
    expect(lines).to_have_count(1000)  # the last window, not the whole log
    expect(lines.first).to_have_text("2001")
    expect(lines.last).to_have_text("3000")
    page.get_by_role("button", name="Load earlier lines").click()
    expect(lines).to_have_count(2000)
    expect(lines.first).to_have_text("1001")
    expect(page.get_by_role("button", name="Paused")).to_be_visible()
    page.get_by_role("button", name="Load earlier lines").click()
    expect(lines).to_have_count(3000)
    expect(lines.first).to_have_text("1")
    expect(page.get_by_role("button", name="Load earlier lines")).to_be_disabled()
