"""Fixtures of the server suite: a migrated database and service contexts on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainyard.core.settings import Settings
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import ensure_default_project
from trainyard.server.services.scheduling import register_node
from trainyard.server.store import Database
from trainyard.server.store.migrations import upgrade

NODE = "node-a"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database (SQLite and PostgreSQL) holding only the ``default`` project."""
    database = Database(db_url)
    upgrade(database)
    ensure_default_project(database)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, make_settings: Any) -> Settings:
    made: Settings = make_settings(tmp_path / "home", db_url, runs={"stop_grace_seconds": 1.0})
    return made


@pytest.fixture
def ctx(db: Database, settings: Settings) -> Iterator[ServiceContext]:
    """Services on ``db`` with a real local executor, and no launcher or reconciler running
    (runs stay where the test puts them)."""
    from trainyard.executors.local import LocalExecutor

    executor = LocalExecutor(settings.runs_dir)
    # The node the scheduler places runs on: this machine, with no GPU (tests that need GPUs
    # simulate them).
    register_node(db, NODE, cpu_millis=8000, memory_bytes=16 * 1024**3, gpus=[])
    yield ServiceContext(
        settings=settings,
        db=db,
        executor=executor,
        server_url="http://127.0.0.1:9",
        node_name=NODE,
    )
    executor.close()
