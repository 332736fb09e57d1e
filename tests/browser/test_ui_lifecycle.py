"""The run lifecycle in a real browser: archive/restore, delete with a dialog, replica
history after a restart, log search, and editing the project summary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from browser_support import manifest, shoot, submit, wait_status
from playwright.sync_api import expect

XSS = "<img src=x onerror=alert(1)> <script>alert(2)</script>"


def test_archive_hides_a_run_and_the_archived_toggle_restores_it(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    run = submit(api, manifest("shelf", "echo done"))
    keep = submit(api, manifest("keep", "echo done"))
    wait_status(api, run["id"], {"complete"})
    wait_status(api, keep["id"], {"complete"})
    page.goto(f"{live_server.url}/runs/{run['id']}")
    page.get_by_role("button", name="Archive").click()
    expect(page.locator("#archived-badge")).to_be_visible()
    expect(page.get_by_role("button", name="Restore")).to_be_visible()
    assert api.get(f"/runs/{run['id']}").json()["archived"] is True

    page.goto(f"{live_server.url}/projects/default/runs")
    expect(page.locator(f'tr[data-run="{keep["id"]}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run="{run["id"]}"]')).to_have_count(0)
    page.locator("#archived-toggle input").check()  # submits the filter form
    expect(page).to_have_url(re.compile(r"archived=1"))
    row = page.locator(f'tr[data-run="{run["id"]}"]')
    expect(row).to_be_visible()
    expect(page.locator(f'tr[data-run="{keep["id"]}"]')).to_have_count(0)
    shoot(page, "dashboard-archived")
    row.get_by_role("button", name="Restore").click()
    expect(page.get_by_text("No archived runs match.")).to_be_visible()
    assert api.get(f"/runs/{run['id']}").json()["archived"] is False
    page.goto(f"{live_server.url}/projects/default/runs")
    expect(page.locator(f'tr[data-run="{run["id"]}"]')).to_be_visible()


def test_delete_asks_in_a_dialog_and_removes_the_run(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    running = submit(api, manifest("doomed", "echo bye; sleep 1"))
    page.goto(f"{live_server.url}/runs/{running['id']}")
    # No Delete while the run is active; it appears once the run has finished, without reload.
    expect(page.locator("#stop-button")).to_be_visible()
    expect(page.locator("#delete-button")).to_have_count(0)
    expect(page.locator("#delete-button")).to_be_visible(timeout=20_000)
    page.locator("#delete-button").click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(running["ref"])
    shoot(page, "run-delete-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert api.get(f"/runs/{running['id']}").status_code == 200
    page.locator("#delete-button").click()
    dialog.get_by_role("button", name=f"Delete {running['ref']}").click()
    expect(page).to_have_url(f"{live_server.url}/projects/default/runs")
    assert api.get(f"/runs/{running['id']}").status_code == 404
    expect(page.locator(f'tr[data-run="{running["id"]}"]')).to_have_count(0)


def test_history_lists_every_replica_instance_after_an_on_failure_restart(
    page: Any, live_server: Any, api: httpx.Client, tmp_path: Path
) -> None:
    flag = tmp_path / "tried"
    command = f"if [ -e {flag} ]; then echo second try; else touch {flag}; echo first; exit 3; fi"
    text = (
        "name: flaky\nresources:\n  - name: worker\n    replicas: 1\n"
        f"    command: {json.dumps(command)}\n    restartPolicy: OnFailure\n    backoffLimit: 2\n"
    )
    run = submit(api, text)
    wait_status(api, run["id"], {"complete"})
    page.goto(f"{live_server.url}/runs/{run['id']}#history")
    rows = page.locator("#pane-history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-outcome", "failed · restarted")
    expect(rows.nth(0)).to_contain_text("exit code 3")
    expect(rows.nth(1)).to_have_attribute("data-outcome", "succeeded")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("1")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("2")
    for row in (rows.nth(0), rows.nth(1)):
        for cell in (2, 3):  # started and ended times
            expect(row.locator("td").nth(cell)).to_have_text(re.compile(r"\d{4}-\d\d-\d\d "))
    shoot(page, "run-history")


def test_log_search_marks_matches_as_text(page: Any, live_server: Any, api: httpx.Client) -> None:
    command = "echo 'alpha NEEDLE one'; echo 'beta'; echo '<b>needle</b> and needle'; echo gamma"
    run = submit(api, manifest("search", command))
    wait_status(api, run["id"], {"complete"})
    page.goto(f"{live_server.url}/runs/{run['id']}")
    lines = page.locator("#log-lines .line")
    expect(lines).to_have_count(4)
    page.locator("#log-search").fill("needle")
    marks = page.locator("#log-lines mark")
    expect(marks).to_have_count(3)
    expect(marks).to_have_text(["NEEDLE", "needle", "needle"])
    expect(page.locator("#log-matches")).to_have_text("3 matches in loaded lines")
    # The markup in the log stays text: no <b> element was made from it.
    expect(page.locator("#log-lines b")).to_have_count(0)
    expect(lines.nth(2)).to_contain_text("<b>needle</b> and needle")
    page.locator("#log-search").press("Enter")
    expect(page.locator("#log-lines mark.current")).to_have_count(1)
    shoot(page, "run-log-search")
    page.locator("#log-search").fill("")
    expect(marks).to_have_count(0)
    expect(lines.nth(0)).to_have_text(re.compile("alpha NEEDLE one"))


def test_summary_edit_round_trip_shows_html_as_text(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    page.goto(f"{live_server.url}/projects/default")
    page.get_by_role("button", name="Edit").click()
    box = page.locator("#summary-text")
    expect(box).to_be_focused()
    expect(page.get_by_role("button", name="Edit")).to_be_hidden()
    box.fill(f"# Goals\n\nShip **fast**. {XSS}")
    shoot(page, "project-summary-edit")
    page.get_by_role("button", name="Save").click()
    summary = page.locator("#summary")
    expect(summary.locator("h1")).to_have_text("Goals")
    expect(summary.locator("strong")).to_have_text("fast")
    expect(summary).to_contain_text("<img src=x onerror=alert(1)>")
    expect(summary.locator("img, script")).to_have_count(0)
    assert api.get("/projects/default").json()["summary"].endswith(XSS)
    shoot(page, "project-summary")
    # The editor opens with the saved text.
    page.get_by_role("button", name="Edit").click()
    expect(box).to_have_value(f"# Goals\n\nShip **fast**. {XSS}")
