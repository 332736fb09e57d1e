"""Alembic migrations on empty SQLite and PostgreSQL databases; idempotence; concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, text

from trainyard.server.store import Database
from trainyard.server.store.migrations import HEAD, current_revision, script_head, upgrade
from trainyard.server.store.tables import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database with no schema at all."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    dbs: Any = request.getfixturevalue("pg_database")
    url: str = dbs.create()
    return url


def test_head_constant_matches_the_scripts() -> None:
    assert script_head() == HEAD


def test_upgrade_creates_the_schema_of_the_tables_module(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        assert current_revision(db) is None
        upgrade(db)
        assert current_revision(db) == HEAD
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            names = conn.execute(text("SELECT name FROM projects")).scalars().all()
        assert diff == [], f"migrations and tables.py disagree: {diff}"
        assert names == ["default"]
    finally:
        db.dispose()


def test_upgrade_twice_is_a_no_op(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        upgrade(db)
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE projects SET summary = 'kept' WHERE name = 'default'"))
        upgrade(db)
        upgrade(db, "head")
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT name, summary FROM projects")).all()
        assert [tuple(r) for r in rows] == [("default", "kept")]
        assert current_revision(db) == HEAD
        tables = set(inspect(db.engine).get_table_names())
        assert {"projects", "tasks", "runs", "replicas", "events", "snapshots"} <= tables
    finally:
        db.dispose()


def test_upgrade_from_0001_keeps_existing_runs(empty_url: str) -> None:
    """A database made by the first release: its runs survive 0002 with submitted_by ''."""
    db = Database(empty_url)
    try:
        upgrade(db, "0001")
        assert current_revision(db) == "0001"
        now = datetime.now(UTC)
        if db.engine.dialect.name == "sqlite":
            now = now.replace(tzinfo=None)  # SQLite stores naive UTC
        with db.engine.begin() as conn:
            meta = MetaData()
            tasks = Table("tasks", meta, autoload_with=conn)
            runs = Table("runs", meta, autoload_with=conn)
            assert "submitted_by" not in runs.c
            project_id = conn.execute(text("SELECT id FROM projects")).scalar_one()
            task_id = conn.execute(
                insert(tasks).returning(tasks.c.id),
                {
                    "project_id": project_id,
                    "name": "old",
                    "format": "trainyard",
                    "manifest": "name: old",
                    "spec": {"name": "old"},
                    "runs_count": 2,
                    "created_at": now,
                    "updated_at": now,
                },
            ).scalar_one()
            common = {
                "project_id": project_id,
                "task_id": task_id,
                "reason": "",
                "parameters": {"steps": 3},
                "manifest": "name: old",
                "spec": {"name": "old"},
                "executor": "local",
                "created_at": now,
                "updated_at": now,
                "archived": False,
                "observe_cursor": 0,
            }
            conn.execute(
                insert(runs),
                [
                    {**common, "build_id": 1, "status": "complete"},
                    {**common, "build_id": 2, "status": "running"},
                ],
            )
            run_ids = conn.execute(text("SELECT id FROM runs ORDER BY id")).scalars().all()
            events = Table("events", meta, autoload_with=conn)
            conn.execute(
                insert(events),
                [
                    {
                        "run_id": r,
                        "time": now,
                        "kind": "status",
                        "status": "queued",
                        "replica": None,
                        "reason": "submitted",
                        "message": "",
                    }
                    for r in run_ids
                ],
            )
        upgrade(db)
        assert current_revision(db) == HEAD
        with db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT build_id, status, parameters, submitted_by FROM runs ORDER BY id")
            ).all()
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert [(r[0], r[1], r[3]) for r in rows] == [(1, "complete", ""), (2, "running", "")]
        # Rebuilding `runs` (SQLite batch mode) must not cascade-delete the events that
        # reference it, nor leave the new scheduling columns unset.
        with db.engine.connect() as conn:
            kept = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            sched = conn.execute(
                text("SELECT priority, start_immediately, gpus, overtaken FROM runs")
            ).all()
            group = conn.execute(text("SELECT group_id FROM projects")).scalars().all()
        assert kept == 2
        assert [tuple(r) for r in sched] == [(0, False, 0, 0), (0, False, 0, 0)]
        assert group == [1]
        assert all("steps" in str(r[2]) for r in rows)
        assert diff == [], f"upgraded schema and tables.py disagree: {diff}"
        # New rows written without the column (an old server still running) get '' too.
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (project_id, task_id, build_id, status, reason, parameters,"
                    " manifest, spec, executor, created_at, updated_at, archived, observe_cursor)"
                    " SELECT project_id, task_id, 3, status, reason, parameters, manifest, spec,"
                    " executor, created_at, updated_at, archived, observe_cursor FROM runs"
                    " WHERE build_id = 1"
                )
            )
            added = conn.execute(
                text("SELECT submitted_by FROM runs WHERE build_id = 3")
            ).scalar_one()
        assert added == ""
    finally:
        db.dispose()


def test_concurrent_upgrades_migrate_once(empty_url: str) -> None:
    """Several servers starting at once against one empty database."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        db = Database(empty_url)
        try:
            barrier.wait()
            upgrade(db)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    db = Database(empty_url)
    try:
        with db.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM projects")).scalar_one()
        assert count == 1
        assert current_revision(db) == HEAD
    finally:
        db.dispose()


def test_up_to_date_start_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = Database(url)
    upgrade(db)
    db.dispose()
    code = (
        "import sys\n"
        "from trainyard.server.store import Database\n"
        "from trainyard.server.store.migrations import upgrade\n"
        f"upgrade(Database({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
