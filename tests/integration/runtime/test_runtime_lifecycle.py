"""How a run starts, completes and fails under the supervisor, driven through LocalExecutor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
from runtime_support import Runs, fresh_run_id, resource, task

from trainyard.executors.base import LaunchRequest, ReplicaLaunch
from trainyard.executors.local import LocalExecutor
from trainyard.executors.local_procs import lock_is_held

FAIL_AFTER_OUTPUT = """
    import sys
    for i in range(1, 31):
        print(f"line {i}")
    print("about to fail", file=sys.stderr)
    sys.exit(3)
"""


def test_completion_stops_the_ps_and_records_every_transition(runs: Runs) -> None:
    spec = task(
        resource("ps", "echo ps up; exec sleep 60"),
        resource("worker", "echo working $REPLICA_INDEX", replicas=2),
    )
    run = runs.start(spec)
    obs = runs.wait(run)
    assert (obs.phase, obs.reason) == ("complete", "")
    by_name = {r.name: r for r in obs.replicas}
    assert by_name["ps-0"].status == "stopped"
    assert by_name["ps-0"].reason == "stopped after the other replicas finished"
    assert by_name["ps-0"].signal == 15
    for name in ("worker-0", "worker-1"):
        assert (by_name[name].status, by_name[name].exit_code) == ("succeeded", 0)
        started, finished = by_name[name].started_at, by_name[name].finished_at
        assert started is not None and finished is not None and finished >= started
    assert [e.seq for e in run.events] == list(range(1, len(run.events) + 1))
    kinds = [(e.kind, e.message.split(":")[0]) for e in run.events if e.kind == "phase"]
    assert kinds == [("phase", "running"), ("phase", "complete")]
    assert run.state()["seq"] == len(run.events)
    assert runs.executor.log_replicas(run.run_id) == ["ps-0", "worker-0", "worker-1"]
    texts = [line.text for line in runs.executor.read_logs(run.run_id, "worker-1").lines]
    assert texts == ["working 1"]
    # The supervisor exits right after its final state: its lock goes with it.
    lock = run.run_dir / "supervisor.lock"
    runs.wait_for(lambda: not lock_is_held(lock), "the supervisor to exit")


def test_failure_stops_the_others_with_exit_code_and_last_lines(runs: Runs) -> None:
    spec = task(
        resource("worker", "python fail.py", replicas=1),
        resource("evaluator", "exec sleep 60"),
    )
    run = runs.start(spec, files={"fail.py": FAIL_AFTER_OUTPUT})
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "replica worker-0 failed: exit code 3"
    by_name = {r.name: r for r in obs.replicas}
    assert (by_name["worker-0"].status, by_name["worker-0"].exit_code) == ("failed", 3)
    assert by_name["evaluator-0"].status == "stopped"
    assert by_name["evaluator-0"].reason == "stopped because replica worker-0 failed"
    failure = next(e for e in run.events if e.reason == obs.reason and e.kind == "replica")
    assert failure.replica == "worker-0"
    tail = failure.message.splitlines()
    assert tail[0] == obs.reason
    assert tail[-20:] == [f"line {i}" for i in range(12, 31)] + ["about to fail"]
    assert "line 11" not in tail
    assert run.events[-1].kind == "phase" and run.events[-1].reason == obs.reason


def test_a_replica_killed_by_a_signal_is_reported_with_the_signal(runs: Runs) -> None:
    suicide = "exec python -c 'import os; os.kill(os.getpid(), 9)'"
    run = runs.start(task(resource("worker", suicide)))
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "replica worker-0 failed: killed by signal 9 (SIGKILL)"
    assert (obs.replicas[0].signal, obs.replicas[0].exit_code) == (9, None)


def test_a_signal_inside_the_shell_is_named_with_the_exit_code(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "python -c 'import os; os.kill(os.getpid(), 9)'")))
    obs = runs.wait(run)
    assert obs.reason == "replica worker-0 failed: exit code 137 (killed by SIGKILL)"


def test_a_daemon_dying_while_workers_run_fails_the_run(runs: Runs) -> None:
    spec = task(
        resource("ps", "echo ps crashed; exit 0"),
        resource("worker", "exec sleep 60"),
    )
    run = runs.start(spec)
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == (
        "replica ps-0 failed: exited with exit code 0 while other replicas were still running"
    )
    assert {r.name: r.status for r in obs.replicas} == {"ps-0": "failed", "worker-0": "stopped"}


def test_a_missing_work_dir_fails_the_run_with_the_reason(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "true", work_dir="missing")))
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason.startswith("replica worker-0 failed: cannot start: ")
    assert "workDir" in obs.reason and "No such file or directory" in obs.reason


def test_an_unknown_run_is_unknown(executor: LocalExecutor) -> None:
    assert executor.observe(123456) is None
    executor.stop(123456, 1.0)  # nothing to stop: no error
    executor.reap(123456)
    assert executor.log_replicas(123456) == []
    chunk = executor.read_logs(123456, "worker-0")
    assert (chunk.lines, chunk.size) == ([], 0)


def test_launching_twice_starts_one_supervisor(runs: Runs) -> None:
    spec = task(resource("worker", "echo started >> $TRAINYARD_OUTPUT_DIR/starts; exec sleep 60"))
    run = runs.start(spec)
    request = json.loads((run.run_dir / "launch.json").read_text())
    replay = LaunchRequest(
        run_id=request["run_id"],
        run_ref=request["run_ref"],
        replicas=[ReplicaLaunch(**r) for r in request["replicas"]],
        code_dir=request["code_dir"],
        stop_grace_seconds=request["stop_grace_seconds"],
    )
    # The same executor again at once, and a second one (another server process) too.
    runs.executor.launch(replay)
    LocalExecutor(runs.executor.runs_dir).launch(replay)
    runs.wait(run, {"running"})
    runs.executor.launch(replay)
    LocalExecutor(runs.executor.runs_dir).launch(replay)
    starts = run.output_dir / "starts"
    runs.wait_for(starts.exists, "the replica to start")
    # The other server could not see the first supervisor before it took its lock, so it may
    # have started a second one: that one finds the lock taken and exits without a replica.
    runs.wait_for(lambda: len(supervisors(run.run_dir)) == 1, "one supervisor left", 10)
    assert starts.read_text() == "started\n"
    assert runs.observe(run).phase == "running"


def supervisors(run_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            "trainyard.runtime" in cmdline
            and str(run_dir) in cmdline
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def test_a_stop_before_the_supervisor_starts_runs_nothing(runs: Runs, tmp_path: Path) -> None:
    run_id = fresh_run_id()
    run_dir = runs.executor.run_dir(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "stop").write_text("{}")
    run = runs.start(task(resource("worker", "touch $TRAINYARD_OUTPUT_DIR/ran")), run_id=run_id)
    obs = runs.wait(run)
    assert obs.phase == "stopped"
    assert obs.replicas[0].status == "stopped" and obs.replicas[0].pid is None
    assert not (run.output_dir / "ran").exists()


def test_a_malformed_launch_file_ends_in_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "5"
    run_dir.mkdir(parents=True)
    (run_dir / "launch.json").write_text('{"run_id": 5, "replicas": [{"name": "w-0"}]}')
    done = subprocess.run(
        [sys.executable, "-m", "trainyard.runtime", str(run_dir)],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 1
    executor = LocalExecutor(tmp_path / "runs")
    obs = executor.observe(5)
    assert obs is not None and obs.phase == "error"
    assert obs.reason.startswith("invalid launch file: ")
    assert [e.kind for e in obs.events] == ["phase"]


def test_the_supervisor_refuses_a_run_it_already_supervised(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "echo once >> $TRAINYARD_OUTPUT_DIR/count")))
    assert runs.wait(run).phase == "complete"
    done = subprocess.run(
        [sys.executable, "-m", "trainyard.runtime", str(run.run_dir)],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0
    assert b"supervised already" in done.stderr
    assert (run.output_dir / "count").read_text() == "once\n"


def test_observe_returns_events_after_the_cursor(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "true"), resource("other", "true")))
    runs.wait(run)
    everything = runs.executor.observe(run.run_id, 0)
    assert everything is not None
    seqs = [e.seq for e in everything.events]
    assert seqs == list(range(1, len(seqs) + 1)) and everything.cursor == seqs[-1]
    later = runs.executor.observe(run.run_id, 3)
    assert later is not None and [e.seq for e in later.events] == seqs[3:]
    none_left = runs.executor.observe(run.run_id, everything.cursor)
    assert none_left is not None
    assert (none_left.events, none_left.cursor) == ([], everything.cursor)


def test_usage_error_without_a_run_dir() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainyard.runtime"], capture_output=True, timeout=30
    )
    assert done.returncode == 2 and b"usage" in done.stderr


def test_concurrent_supervisors_of_one_run_start_its_replicas_once(runs: Runs) -> None:
    # A launcher that "crashes" right after writing launch.json: /bin/true is no supervisor.
    crashing = LocalExecutor(runs.executor.runs_dir, python_executable="/bin/true")
    spec = task(resource("worker", "echo started >> $TRAINYARD_OUTPUT_DIR/starts; sleep 0.5"))
    runs.executor, real = crashing, runs.executor
    try:
        run = runs.start(spec)
    finally:
        runs.executor = real
    assert (run.run_dir / "launch.json").exists() and not (run.run_dir / "state.json").exists()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trainyard.runtime", str(run.run_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        for proc in procs:
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            proc.kill()
    assert sorted(proc.returncode for proc in procs) == [0, 0, 0]
    assert runs.wait(run).phase == "complete"
    assert (run.output_dir / "starts").read_text() == "started\n"


def test_a_launch_whose_supervisor_never_started_is_relaunched(runs: Runs) -> None:
    crashing = LocalExecutor(runs.executor.runs_dir, python_executable="/bin/true")
    runs.executor, real = crashing, runs.executor
    try:
        run = runs.start(task(resource("worker", "echo ran >> $TRAINYARD_OUTPUT_DIR/ran")))
    finally:
        runs.executor = real
    request = json.loads((run.run_dir / "launch.json").read_text())
    replay = LaunchRequest(
        run_id=request["run_id"],
        run_ref=request["run_ref"],
        replicas=[ReplicaLaunch(**r) for r in request["replicas"]],
        code_dir=request["code_dir"],
    )
    runs.executor.launch(replay)  # no lock, no state: this launch must really start it
    assert runs.wait(run).phase == "complete"
    assert (run.output_dir / "ran").read_text() == "ran\n"


def test_a_supervisor_that_never_starts_is_lost_after_the_grace(tmp_path: Path) -> None:
    crashing = LocalExecutor(
        tmp_path / "runs", python_executable="/bin/true", start_grace_seconds=0.3
    )
    launcher = Runs(tmp_path, crashing)
    run = launcher.start(task(resource("worker", "true")))
    first = crashing.observe(run.run_id)
    assert first is not None and first.phase == "starting"
    assert [r.status for r in first.replicas] == ["pending"]
    obs = launcher.wait(run, {"lost"}, timeout=10)
    assert obs.reason == "supervisor lost: it never started (see supervisor.log)"
    assert [r.name for r in obs.replicas] == ["worker-0"]
