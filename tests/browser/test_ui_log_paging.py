"""The Logs tab pages back on scroll: earlier lines come from the API's ``before`` pages and
are put on top without moving what is in view."""

from __future__ import annotations

from typing import Any

import httpx
from browser_support import manifest, submit, wait_for, wait_status
from playwright.sync_api import expect


def test_scrolling_up_on_a_5000_line_log_loads_earlier_lines(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    run = submit(api, manifest("scroll-back", "seq 1 5000"))
    wait_status(api, run["id"], {"complete"})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/logs?" in r.url else None)
    page.goto(f"{live_server.url}/runs/{run['id']}")
    lines = page.locator("#log-lines .line .x")
    expect(lines).to_have_count(1000)  # the last window only
    expect(lines.first).to_have_text("4001")
    expect(lines.last).to_have_text("5000")
    # Searching first: lines loaded later are highlighted too.
    page.locator("#log-search").fill("3500")
    expect(page.locator("#log-lines mark")).to_have_count(0)

    box = page.locator("#log-lines")
    box.evaluate("b => { b.scrollTop = 0; }")
    expect(lines).to_have_count(2000)
    expect(lines.first).to_have_text("3001")
    expect(lines.last).to_have_text("5000")
    # The line that was on top stays in view: the page did not jump to the new first line.
    shift = box.evaluate(
        """b => b.querySelectorAll('.line')[1000].getBoundingClientRect().top
                 - b.getBoundingClientRect().top"""
    )
    assert lines.nth(1000).text_content() == "4001"
    assert abs(shift) < 30, f"line 4001 moved {shift}px away from the top of the view"
    expect(page.locator("#log-lines mark")).to_have_count(1)
    expect(page.locator("#log-matches")).to_have_text("1 match in loaded lines")
    expect(page.get_by_role("button", name="Paused")).to_be_visible()

    # Keep scrolling up until the start of the log.
    def scrolled_to_start() -> bool:
        box.evaluate("b => { b.scrollTop = 0; }")
        return bool(lines.first.text_content() == "1")

    wait_for("the first line of the log", scrolled_to_start)
    expect(lines).to_have_count(5000)
    texts = lines.all_text_contents()
    assert texts == [str(i) for i in range(1, 5001)]  # every line once, in order
    expect(page.get_by_role("button", name="Load earlier lines")).to_be_disabled()
    # Paging used the backward pages, never a longer tail.
    assert any("before=" in url for url in requests)
    assert not any("tail=" in url and "tail=1000" not in url for url in requests)
