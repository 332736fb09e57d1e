"""Fixtures for the local runtime suite: an executor on a temporary runs dir, and ``runs``,
which launches runs through it and stops and reaps every one of them after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_support import Runs

from trainyard.executors.local import LocalExecutor


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    """A ``LocalExecutor`` with fast restart back-off and memory sampling for tests."""
    return LocalExecutor(tmp_path / "runs", restart_backoff_seconds=0.1, sample_interval=0.1)


@pytest.fixture
def runs(tmp_path: Path, executor: LocalExecutor) -> Iterator[Runs]:
    """Launch runs with ``runs.start(spec, files=...)``; all are stopped and reaped after."""
    launcher = Runs(tmp_path, executor)
    yield launcher
    launcher.cleanup()
