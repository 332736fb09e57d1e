"""The run view's Artifacts tab in a real browser: what the run logged with
``trainyard.log_artifact`` and what its replica wrote to $TRAINYARD_OUTPUT_DIR, with sizes and
download links; names with markup shown as text; the empty state."""

from __future__ import annotations

from typing import Any

import httpx
from browser_support import manifest, shoot, submit, wait_status
from playwright.sync_api import expect

XSS = "<img src=x onerror=alert(1)>.txt"


def test_artifacts_tab_lists_and_downloads(page: Any, live_server: Any, api: httpx.Client) -> None:
    command = (
        'python -c "import os, trainyard as ty; ty.init(); '
        "open('model.bin','wb').write(b'w' * 3000); ty.log_artifact('model.bin', 'checkpoints'); "
        "out = os.environ['TRAINYARD_OUTPUT_DIR']; "
        "open(os.path.join(out, 'metrics.json'), 'w').write('{}'); "
        f"open(os.path.join(out, {XSS!r}), 'w').write('x')\""
    )
    run = submit(api, manifest("artifacts", command))
    done = wait_status(api, run["id"], {"complete", "error"})
    assert done["status"] == "complete", done

    page.goto(f"{live_server.url}/runs/{run['id']}")
    page.get_by_role("tab", name="Artifacts").click()
    rows = page.locator("#artifacts-table tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.locator("td:first-child")).to_have_text(
        ["<img src=x onerror=alert(1)>.txt", "checkpoints/", "model.bin", "metrics.json"]
    )
    expect(page.locator("#artifacts-table img")).to_have_count(0)  # markup stays text
    expect(page.locator("#artifacts-summary")).to_have_text("3 files · 2.9 KiB")
    model = page.locator('#artifacts-table tr[data-path="checkpoints/model.bin"]')
    expect(model.locator("td.num")).to_have_text("2.9 KiB")
    href = model.get_by_role("link", name="Download checkpoints/model.bin").get_attribute("href")
    got = page.request.get(f"{live_server.url}{href}")
    assert got.status == 200 and got.body() == b"w" * 3000
    shoot(page, "run-artifacts")

    # A run without artifacts says how to make some.
    empty = submit(api, manifest("no-artifacts", "true"))
    wait_status(api, empty["id"], {"complete"})
    page.goto(f"{live_server.url}/runs/{empty['id']}#artifacts")
    expect(page.locator("#artifacts-empty")).to_be_visible()
    expect(page.locator("#artifacts-empty")).to_contain_text("trainyard.log_artifact")
    expect(page.locator("#artifacts-table")).to_be_hidden()
