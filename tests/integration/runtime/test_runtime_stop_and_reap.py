"""Stopping runs and reaping what a lost supervisor left: no process may survive."""

from __future__ import annotations

import os
import signal
import time

from runtime_support import Run, Runs, gone, resource, task, wait_gone

# sh -> python (level 1) -> python (level 2) -> python (level 3). Options: "stubborn" ignores
# SIGTERM at every level; "escape" makes level 2 leave the process group (setsid).
TREE = """
    import os, signal, subprocess, sys, time
    level = int(sys.argv[1])
    options = sys.argv[2:]
    if "stubborn" in options:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "escape" in options and level == 2:
        os.setsid()
    if level < 3:
        subprocess.Popen([sys.executable, __file__, str(level + 1), *options])
    with open(os.path.join(os.environ["TRAINYARD_OUTPUT_DIR"], "pids"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    print(f"level {level} pid {os.getpid()} running", flush=True)
    time.sleep(600)
"""


def tree_pids(runs: Runs, run: Run, count: int) -> list[int]:
    pids_file = run.output_dir / "pids"

    def ready() -> bool:
        return pids_file.exists() and len(pids_file.read_text().split()) >= count

    runs.wait_for(ready, f"{count} processes of the tree to start")
    pids = [int(p) for p in pids_file.read_text().split()]
    state = run.state()
    pids += [r["pid"] for r in state["replicas"] if r["pid"]]
    return [*pids, state["supervisor_pid"]]


def test_stop_kills_a_three_level_process_tree(runs: Runs) -> None:
    spec = task(resource("worker", "python tree.py 1", replicas=2))
    run = runs.start(spec, files={"tree.py": TREE}, grace=5.0)
    runs.wait(run, {"running"})
    pids = tree_pids(runs, run, 6)
    assert not any(gone(p) for p in pids)
    started = time.monotonic()
    runs.executor.stop(run.run_id, 5.0)
    obs = runs.wait(run, timeout=20)
    assert obs.phase == "stopped" and obs.reason == "stopped by request"
    assert time.monotonic() - started < 4.0  # SIGTERM was enough: no need for the grace
    assert {r.status for r in obs.replicas} == {"stopped"}
    assert {r.reason for r in obs.replicas} == {"stopped by request"}
    assert wait_gone(pids) == []
    assert any(e.message == "stop requested" for e in run.events)
    assert run.events[-1].kind == "phase" and run.events[-1].message == "stopped by request"
    runs.executor.stop(run.run_id, 5.0)  # idempotent on a finished run
    assert not (run.run_dir / "stop").exists() or runs.observe(run).phase == "stopped"


def test_stop_escalates_to_sigkill_and_finds_escaped_processes(runs: Runs) -> None:
    spec = task(resource("worker", "python tree.py 1 stubborn escape"))
    run = runs.start(spec, files={"tree.py": TREE}, grace=30.0)
    runs.wait(run, {"running"})
    pids = tree_pids(runs, run, 3)
    started = time.monotonic()
    runs.executor.stop(run.run_id, 0.5)  # the stop's grace wins over the launch's
    obs = runs.wait(run, timeout=20)
    assert obs.phase == "stopped"
    assert 0.4 < time.monotonic() - started < 8.0
    assert wait_gone(pids) == []


def test_stop_file_alone_stops_the_run(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "exec sleep 600")))
    runs.wait(run, {"running"})
    (run.run_dir / "stop").write_text("")  # no signal at all: the supervisor polls for it
    assert runs.wait(run, timeout=10).phase == "stopped"


def test_a_graceful_shutdown_is_logged_after_sigterm(runs: Runs) -> None:
    graceful = """
        import signal, sys, time
        def bye(*_):
            time.sleep(0.5)  # longer than the supervisor's drain of an exited shell
            print("saved checkpoint", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("training", flush=True)
        time.sleep(600)
    """
    run = runs.start(
        task(resource("worker", "python graceful.py")), files={"graceful.py": graceful}
    )
    runs.wait_for(
        lambda: bool(runs.executor.read_logs(run.run_id, "worker-0").lines), "first output"
    )
    runs.executor.stop(run.run_id, 10.0)
    assert runs.wait(run).phase == "stopped"
    texts = [line.text for line in runs.executor.read_logs(run.run_id, "worker-0").lines]
    assert texts == ["training", "saved checkpoint"]


def test_supervisor_sigkill_is_lost_and_reap_leaves_nothing(runs: Runs) -> None:
    run = runs.start(
        task(resource("worker", "python tree.py 1", replicas=2)), files={"tree.py": TREE}
    )
    runs.wait(run, {"running"})
    pids = tree_pids(runs, run, 6)
    os.kill(run.state()["supervisor_pid"], signal.SIGKILL)
    obs = runs.wait(run, {"lost"}, timeout=10)
    assert obs.reason == "supervisor lost"
    assert {r.name for r in obs.replicas} == {"worker-0", "worker-1"}
    survivors = [p for p in pids if not gone(p)]
    assert survivors, "the grandchildren outlive a killed supervisor until reaped"
    runs.executor.reap(run.run_id)
    assert wait_gone(pids, timeout=5) == []
    runs.executor.reap(run.run_id)  # idempotent
    assert runs.observe(run).phase == "lost"


def test_a_stop_right_after_launch_ends_stopped_not_lost(runs: Runs) -> None:
    for _ in range(3):
        run = runs.start(task(resource("worker", "exec sleep 600", replicas=2)))
        runs.executor.stop(run.run_id, 1.0)  # the supervisor is still starting
        obs = runs.wait(run, {"stopped", "lost", "error", "complete"}, timeout=20)
        assert (obs.phase, obs.reason) == ("stopped", "stopped by request")
