"""``services.runs.transition``: every legal and illegal move, one event per change."""

from __future__ import annotations

import itertools

import pytest
from server_support import make_spec

from trainyard.core.errors import IllegalTransitionError
from trainyard.core.status import TERMINAL_STATUSES, RunStatus
from trainyard.server.services.runs import transition
from trainyard.server.store import Database
from trainyard.server.store import events as events_store
from trainyard.server.store import projects as projects_store
from trainyard.server.store import runs as runs_store
from trainyard.server.store import tasks as tasks_store

S = RunStatus
LEGAL = {
    (S.QUEUED, S.STARTING),
    (S.QUEUED, S.STOPPED),
    (S.QUEUED, S.ERROR),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.STOPPING),
    (S.STARTING, S.ERROR),
    (S.STARTING, S.COMPLETE),
    (S.RUNNING, S.COMPLETE),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.ERROR),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.ERROR),
}
ALL_MOVES = list(itertools.product(RunStatus, RunStatus))


def _new_run(db: Database, status: RunStatus) -> int:
    with db.write() as s:
        project = projects_store.get_or_insert_project(s, "default")
        task = tasks_store.insert_or_update_task(s, project, make_spec(), "m")
        row = runs_store.insert_run(
            s,
            project=project,
            task=task,
            build_id=tasks_store.update_next_build_id(s, task.id),
            spec=make_spec(),
            manifest="m",
            parameters={},
            git=None,
            snapshot_id=None,
            executor="local",
        )
        row.status = status.value
        return row.id


@pytest.mark.parametrize(
    ("current", "new"), ALL_MOVES, ids=[f"{a.value}-{b.value}" for a, b in ALL_MOVES]
)
def test_every_move(db: Database, current: RunStatus, new: RunStatus) -> None:
    run_id = _new_run(db, current)
    if (current, new) in LEGAL:
        with db.write() as s:
            row = runs_store.get_run(s, run_id, lock=True)
            assert row is not None
            transition(s, row, new, f"because {new.value}", message="details")
        with db.read() as s:
            row = runs_store.get_run(s, run_id)
            assert row is not None
            events = events_store.list_events(s, run_id)
        assert row.status == new.value
        assert row.reason == f"because {new.value}"
        assert [(e.kind, e.status, e.reason, e.message) for e in events] == [
            ("status", new.value, f"because {new.value}", "details")
        ]
        assert row.updated_at == events[0].time
        assert (row.started_at is not None) == (new is RunStatus.RUNNING)
        assert (row.finished_at is not None) == (new in TERMINAL_STATUSES)
    else:
        with pytest.raises(IllegalTransitionError) as info, db.write() as s:
            row = runs_store.get_run(s, run_id, lock=True)
            assert row is not None
            transition(s, row, new, "nope")
        assert info.value.fields == {
            "run": "default/train#1",
            "from": current.value,
            "to": new.value,
        }
        assert "default/train#1" in info.value.message
        with db.read() as s:
            row = runs_store.get_run(s, run_id)
            assert row is not None and row.status == current.value
            assert events_store.list_events(s, run_id) == []


def test_a_full_life_records_one_event_per_change(db: Database) -> None:
    run_id = _new_run(db, RunStatus.QUEUED)
    path = [RunStatus.STARTING, RunStatus.RUNNING, RunStatus.STOPPING, RunStatus.STOPPED]
    for status in path:
        with db.write() as s:
            row = runs_store.get_run(s, run_id, lock=True)
            assert row is not None
            transition(s, row, status, status.value)
    with db.read() as s:
        row = runs_store.get_run(s, run_id)
        events = events_store.list_events(s, run_id)
    assert row is not None
    assert [e.status for e in events] == [s.value for s in path]
    assert row.started_at is not None and row.finished_at is not None
    assert row.started_at <= row.finished_at
    # started_at is the moment the run entered `running`, not later moves.
    assert row.started_at == events[1].time
