"""The store on SQLite and PostgreSQL: CRUD, queries, counters, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from server_support import make_spec

from trainyard.core.models import GitInfo, Replica
from trainyard.core.status import ReplicaStatus, RunStatus
from trainyard.server.store import Database
from trainyard.server.store import events as events_store
from trainyard.server.store import projects as projects_store
from trainyard.server.store import runs as runs_store
from trainyard.server.store import snapshots as snapshots_store
from trainyard.server.store import tasks as tasks_store
from trainyard.server.store.tables import ProjectRow, TaskRow


def _task(db: Database, name: str = "train", project: str = "default") -> int:
    with db.write() as s:
        p = projects_store.get_or_insert_project(s, project)
        row = tasks_store.insert_or_update_task(s, p, make_spec(name), "manifest")
        return row.id


def _run(db: Database, task_id: int, **kw: object) -> int:
    with db.write() as s:
        task = s.get(TaskRow, task_id)
        assert task is not None
        build = tasks_store.update_next_build_id(s, task_id)
        row = runs_store.insert_run(
            s,
            project=task.project,
            task=task,
            build_id=build,
            spec=make_spec(task.name),
            manifest="m",
            parameters=dict(kw.get("parameters", {})),  # type: ignore[call-overload]
            git=kw.get("git"),  # type: ignore[arg-type]
            snapshot_id=None,
            executor="local",
        )
        return row.id


def test_default_project_exists_after_migration(db: Database) -> None:
    with db.read() as s:
        names = [p.name for p in projects_store.list_projects(s)]
    assert names == ["default"]


def test_project_insert_get_list_and_duplicate(db: Database) -> None:
    with db.write() as s:
        row = projects_store.insert_project(s, "vision", "# Vision")
        assert row is not None and row.id > 0
        assert projects_store.insert_project(s, "vision") is None  # exists: no exception
    with db.read() as s:
        got = projects_store.get_project(s, "vision")
        assert got is not None
        project = projects_store.to_project(got)
        assert project.summary == "# Vision"
        assert project.created_at.tzinfo is not None
        assert projects_store.get_project(s, "nope") is None
        assert [p.name for p in projects_store.list_projects(s)] == ["default", "vision"]


def test_project_summary_update(db: Database) -> None:
    with db.write() as s:
        row = projects_store.get_or_insert_project(s, "nlp")
        projects_store.update_project_summary(s, row, "**bold**")
    with db.read() as s:
        got = projects_store.get_project(s, "nlp")
        assert got is not None and got.summary == "**bold**"


def test_ensure_project_is_idempotent(db: Database) -> None:
    with db.write() as s:
        a = projects_store.get_or_insert_project(s, "x").id
    with db.write() as s:
        b = projects_store.get_or_insert_project(s, "x").id
    assert a == b


def test_task_insert_conflict_upsert_and_update(db: Database) -> None:
    with db.write() as s:
        p = projects_store.get_or_insert_project(s, "default")
        first = tasks_store.insert_task(s, p, make_spec("train", command="echo 1"), "v1")
        assert first is not None
        assert tasks_store.insert_task(s, p, make_spec("train"), "v2") is None
        again = tasks_store.insert_or_update_task(s, p, make_spec("train", command="echo 3"), "v3")
        assert again.id == first.id
    with db.read() as s:
        found = projects_store.get_project(s, "default")
        assert found is not None
        p = found
        row = tasks_store.get_task(s, p, "train")
        assert row is not None
        task = tasks_store.to_task(row)
        assert task.manifest == "v3"
        assert task.spec.resources[0].command == "echo 3"
        assert task.project == "default"
        assert task.updated_at >= task.created_at
        assert tasks_store.get_task(s, p, "other") is None
        assert [t.name for t in tasks_store.list_tasks(s, p)] == ["train"]


def test_same_task_name_in_two_projects_is_two_tasks(db: Database) -> None:
    a = _task(db, "train", "default")
    b = _task(db, "train", "other")
    assert a != b


def test_build_ids_count_per_task(db: Database) -> None:
    t1 = _task(db, "a")
    t2 = _task(db, "b")
    ids = [_run(db, t1), _run(db, t1), _run(db, t2), _run(db, t1)]
    with db.read() as s:
        builds = [(r.task.name, r.build_id) for r in (runs_store.get_run(s, i) for i in ids) if r]
    assert builds == [("a", 1), ("a", 2), ("b", 1), ("a", 3)]


def test_rolled_back_submission_gives_its_build_id_back(db: Database) -> None:
    task_id = _task(db)
    with pytest.raises(RuntimeError), db.write() as s:
        assert tasks_store.update_next_build_id(s, task_id) == 1
        raise RuntimeError("boom")
    with db.write() as s:
        assert tasks_store.update_next_build_id(s, task_id) == 1


def test_run_round_trip(db: Database) -> None:
    task_id = _task(db)
    git = GitInfo(branch="main", commit="a" * 40, dirty=True, remote="git@x:y.git")
    run_id = _run(db, task_id, parameters={"steps": 200, "lr": 0.1, "tags": ["a"]}, git=git)
    with db.read() as s:
        row = runs_store.get_run(s, run_id)
        assert row is not None
        run = runs_store.to_run(row)
    assert run.status is RunStatus.QUEUED
    assert run.ref == "default/train#1"
    assert run.parameters == {"steps": 200, "lr": 0.1, "tags": ["a"]}
    assert run.git == git
    assert run.spec.name == "train"
    assert run.replicas == []
    assert run.created_at.tzinfo is not None
    assert abs(run.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_get_run_by_build_and_missing(db: Database) -> None:
    run_id = _run(db, _task(db))
    with db.read() as s:
        row = runs_store.get_run_by_build(s, "default", "train", 1)
        assert row is not None and row.id == run_id
        assert runs_store.get_run_by_build(s, "default", "train", 2) is None
        assert runs_store.get_run_by_build(s, "nope", "train", 1) is None
        assert runs_store.get_run(s, 999) is None


def test_list_runs_filters_pages_newest_first(db: Database) -> None:
    a = _task(db, "a")
    b = _task(db, "b", "other")
    ids = [_run(db, a), _run(db, b), _run(db, a), _run(db, a)]
    with db.write() as s:
        row = runs_store.get_run(s, ids[0], lock=True)
        assert row is not None
        row.status = RunStatus.RUNNING.value
    with db.read() as s:
        rows, total = runs_store.list_runs(s)
        assert total == 4 and [r.id for r in rows] == ids[::-1]
        rows, total = runs_store.list_runs(s, limit=2, offset=1)
        assert total == 4 and [r.id for r in rows] == [ids[2], ids[1]]
        p = projects_store.get_project(s, "default")
        assert p is not None
        rows, total = runs_store.list_runs(s, project_id=p.id)
        assert total == 3
        rows, total = runs_store.list_runs(s, task_id=a, statuses=[RunStatus.QUEUED])
        assert total == 2 and {r.id for r in rows} == {ids[2], ids[3]}
        rows, total = runs_store.list_runs(s, statuses=[RunStatus.RUNNING, RunStatus.ERROR])
        assert [r.id for r in rows] == [ids[0]]
        rows, total = runs_store.list_runs(s, offset=10)
        assert rows == [] and total == 4


def test_claim_next_queued_is_fifo(db: Database) -> None:
    task_id = _task(db)
    ids = [_run(db, task_id) for _ in range(3)]
    claimed: list[int | None] = []
    for _ in range(4):
        with db.write() as s:
            row = runs_store.get_next_queued(s)
            if row is None:
                claimed.append(None)
                continue
            row.status = RunStatus.STARTING.value
            claimed.append(row.id)
    assert claimed == [*ids, None]


def test_list_run_states(db: Database) -> None:
    task_id = _task(db)
    ids = [_run(db, task_id) for _ in range(3)]
    with db.write() as s:
        row = runs_store.get_run(s, ids[1], lock=True)
        assert row is not None
        row.status = RunStatus.RUNNING.value
        row.observe_cursor = 7
    with db.read() as s:
        states = runs_store.list_run_states(s, [RunStatus.RUNNING, RunStatus.STARTING])
        assert [(st.id, st.status, st.observe_cursor) for st in states] == [
            (ids[1], RunStatus.RUNNING, 7)
        ]
        assert len(runs_store.list_run_states(s, [RunStatus.QUEUED])) == 2


def test_replicas_upsert_by_name(db: Database) -> None:
    run_id = _run(db, _task(db))
    started = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    first = [
        Replica(name="worker-0", resource="worker", index=0, address="127.1.1.1"),
        Replica(name="worker-1", resource="worker", index=1, address="127.1.1.2"),
    ]
    with db.write() as s:
        row = runs_store.get_run(s, run_id, lock=True)
        assert row is not None
        runs_store.update_replicas(s, row, first)
    update = first[1].model_copy(
        update={"status": ReplicaStatus.FAILED, "exit_code": 3, "pid": 4242, "started_at": started}
    )
    with db.write() as s:
        row = runs_store.get_run(s, run_id, lock=True)
        assert row is not None
        runs_store.update_replicas(s, row, [update])
    with db.read() as s:
        row = runs_store.get_run(s, run_id)
        assert row is not None
        replicas = runs_store.to_run(row).replicas
    assert [r.name for r in replicas] == ["worker-0", "worker-1"]
    assert replicas[0].status is ReplicaStatus.PENDING
    assert replicas[1].status is ReplicaStatus.FAILED
    assert (replicas[1].exit_code, replicas[1].pid) == (3, 4242)
    assert replicas[1].started_at == started  # microseconds and zone survive


def test_times_are_stored_as_utc(db: Database) -> None:
    run_id = _run(db, _task(db))
    local = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    with db.write() as s:
        row = runs_store.get_run(s, run_id, lock=True)
        assert row is not None
        row.started_at = local
    with db.read() as s:
        row = runs_store.get_run(s, run_id)
        assert row is not None and row.started_at is not None
        assert row.started_at == local
        assert row.started_at.utcoffset() == timedelta(0)
        assert row.started_at.hour == 10


def test_naive_datetimes_are_refused(db: Database) -> None:
    run_id = _run(db, _task(db))
    with pytest.raises(Exception, match="naive datetime"), db.write() as s:
        row = runs_store.get_run(s, run_id, lock=True)
        assert row is not None
        row.started_at = datetime(2026, 1, 1)
        s.flush()


def test_events_insert_list_after(db: Database) -> None:
    run_id = _run(db, _task(db))
    with db.write() as s:
        a = events_store.insert_event(s, run_id, "status", status=RunStatus.QUEUED, reason="x")
        events_store.insert_event(s, run_id, "replica", replica="worker-0", message="started")
        events_store.insert_event(s, run_id, "info", message="hello")
        s.flush()
        first_id = a.id
    with db.read() as s:
        every = [events_store.to_event(e) for e in events_store.list_events(s, run_id)]
        later = events_store.list_events(s, run_id, after=first_id)
        found = events_store.get_last_event(s, run_id, "replica", "")
    assert [e.kind for e in every] == ["status", "replica", "info"]
    assert every[0].status is RunStatus.QUEUED and every[0].reason == "x"
    assert every[1].replica == "worker-0"
    assert [e.kind for e in later] == ["replica", "info"]
    assert found is not None and found.message == "started"


def test_snapshots_are_recorded_once(db: Database) -> None:
    sha = "ab" * 32
    with db.write() as s:
        snapshots_store.insert_snapshot(s, sha, 10)
        snapshots_store.insert_snapshot(s, sha, 10)
    with db.read() as s:
        row = snapshots_store.get_snapshot(s, sha)
        assert row is not None and row.size == 10
        assert snapshots_store.get_snapshot(s, "cd" * 32) is None


def test_deleting_a_project_cascades(db: Database) -> None:
    run_id = _run(db, _task(db, "t", "gone"))
    with db.write() as s:
        events_store.insert_event(s, run_id, "info", message="x")
    with db.write() as s:
        p = projects_store.get_project(s, "gone")
        assert p is not None
        s.delete(p)
    with db.read() as s:
        assert runs_store.get_run(s, run_id) is None
        assert events_store.list_events(s, run_id) == []
        assert s.get(ProjectRow, 1) is not None  # default untouched
