"""Fixtures for the SDK tests: the fake server of :mod:`sdk_support`, and trackers on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_support import RUN_ID, FakeServer, MakeTracker

from trainyard.sdk.context import RunContext
from trainyard.sdk.tracker import Tracker


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    fake.start()
    try:
        yield fake
    finally:
        if fake.hold is not None:
            fake.hold.set()
        fake.stop()


@pytest.fixture
def make_tracker(server: FakeServer, tmp_path: Path) -> Iterator[MakeTracker]:
    """Trackers on the fake server (spool under tmp_path), finished at the end of the test."""
    made: list[Tracker] = []

    def make(run_id: int = RUN_ID, **kwargs: Any) -> Tracker:
        context = RunContext(
            run_id=run_id,
            server_url=server.url,
            token=None,
            replica="worker-0",
            spool_root=tmp_path / "spool",
        )
        kwargs.setdefault("flush_interval", 0.05)
        kwargs.setdefault("request_timeout", 2.0)
        tracker = Tracker(context, **kwargs)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.finish(timeout=2.0)
