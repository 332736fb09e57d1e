"""What ``LocalExecutor`` raises, as ``Executor``'s docstrings promise: ``ExecutorError`` when
the run's files cannot be read or written, nothing at all for an unknown run.

The broken files are real: a directory where a file should be gives a real ``EISDIR`` (tests
run as root too, where permission bits would not stop anything).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from trainyard.executors.base import ExecutorError, LaunchRequest, ReplicaLaunch
from trainyard.executors.local import LocalExecutor


def launched_without_supervisor(executor: LocalExecutor, run_id: int) -> Path:
    """A run directory as launch() leaves it before the supervisor writes anything."""
    run_dir = executor.run_dir(run_id)
    (run_dir / "logs").mkdir(parents=True)
    launch = {"version": 1, "run_id": run_id, "replicas": [{"name": "worker-0"}]}
    (run_dir / "launch.json").write_text(json.dumps(launch))
    return run_dir


def request(run_id: int, tmp_path: Path) -> LaunchRequest:
    replica = ReplicaLaunch(
        name="worker-0",
        resource="worker",
        index=0,
        address="127.1.0.1",
        command="true",
        work_dir=str(tmp_path),
        env={},
    )
    return LaunchRequest(run_id=run_id, run_ref="p/t#1", replicas=[replica], code_dir=str(tmp_path))


def test_an_unknown_run_is_not_an_error(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    assert executor.observe(5) is None
    executor.stop(5, 1.0)
    executor.reap(5)
    assert executor.log_replicas(5) == []
    assert executor.read_logs(5, "worker-0").lines == []
    assert not (tmp_path / "runs" / "5").exists()  # stop and reap created nothing


def test_observe_raises_when_the_state_cannot_be_read(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = launched_without_supervisor(executor, 7)
    (run_dir / "state.json").mkdir()
    with pytest.raises(ExecutorError, match=r"cannot read .*7/state\.json: Is a directory"):
        executor.observe(7)


def test_observe_raises_when_the_events_cannot_be_read(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = launched_without_supervisor(executor, 8)
    state = {"phase": "complete", "reason": "", "replicas": []}
    (run_dir / "state.json").write_text(json.dumps(state))
    (run_dir / "events.jsonl").mkdir()
    with pytest.raises(ExecutorError, match=r"events\.jsonl"):
        executor.observe(8)


def test_observe_raises_on_a_damaged_state(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = launched_without_supervisor(executor, 9)
    state = {"phase": "complete", "replicas": [{"name": "worker-0", "index": "first"}]}
    (run_dir / "state.json").write_text(json.dumps(state))
    with pytest.raises(ExecutorError, match=r"cannot observe run 9: .*state\.json is damaged"):
        executor.observe(9)


def test_stop_raises_when_the_request_cannot_be_recorded(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = launched_without_supervisor(executor, 10)
    (run_dir / "stop" / "in-the-way").mkdir(parents=True)
    with pytest.raises(ExecutorError, match="cannot request the stop of run 10"):
        executor.stop(10, 1.0)


def test_reap_raises_when_it_cannot_know_what_to_kill(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = launched_without_supervisor(executor, 11)
    (run_dir / "state.json").mkdir()
    with pytest.raises(ExecutorError, match=r"state\.json: Is a directory"):
        executor.reap(11)


def test_log_replicas_raises_when_the_run_cannot_be_read(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    (executor.run_dir(12) / "launch.json").mkdir(parents=True)
    with pytest.raises(ExecutorError, match=r"launch\.json: Is a directory"):
        executor.log_replicas(12)
    (executor.run_dir(13)).mkdir()
    (executor.run_dir(13) / "logs").write_text("not a directory")
    with pytest.raises(ExecutorError, match="cannot list the logs of run 13"):
        executor.log_replicas(13)


def test_read_logs_raises_on_an_unreadable_log(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = launched_without_supervisor(executor, 14)
    (run_dir / "logs" / "worker-0.log").mkdir()
    with pytest.raises(ExecutorError, match="cannot read the log of replica worker-0"):
        executor.read_logs(14, "worker-0")


def test_launch_raises_when_the_run_directory_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file where the runs directory should be")
    executor = LocalExecutor(tmp_path / "runs")
    with pytest.raises(ExecutorError, match=r"cannot start the supervisor of run 'p/t#1'"):
        executor.launch(request(15, tmp_path))


def test_launch_raises_when_the_supervisor_cannot_be_spawned(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs", python_executable=str(tmp_path / "no-python"))
    with pytest.raises(ExecutorError, match="No such file or directory"):
        executor.launch(request(16, tmp_path))
    assert executor.observe(16) is not None  # launch.json was written: "starting", then lost


@pytest.mark.parametrize("run_id", [-1, True, "3"])
def test_a_bad_run_id_is_a_value_error(tmp_path: Path, run_id: object) -> None:
    executor = LocalExecutor(tmp_path / "runs", python_executable=sys.executable)
    for call in (executor.observe, executor.reap, executor.log_replicas):
        with pytest.raises(ValueError, match="must be a non-negative integer"):
            call(run_id)  # type: ignore[arg-type]
