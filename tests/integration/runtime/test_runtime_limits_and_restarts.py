"""Memory limits (OOM kill of the replica's tree) and the restart policy."""

from __future__ import annotations

from runtime_support import Runs, resource, task, wait_gone

from trainyard.core.models import ResourceAmounts, RestartPolicy

# Allocates ~300 MB in a child process (so the limit must count the whole tree), then waits.
HOG = """
    import os, subprocess, sys, time
    if len(sys.argv) > 1:
        data = b"x" * (300 * 1024 * 1024)  # touches every page: resident, not just reserved
        print("allocated", len(data), flush=True)
        time.sleep(600)
    child = subprocess.Popen([sys.executable, __file__, "child"])
    with open(os.path.join(os.environ["TRAINYARD_OUTPUT_DIR"], "pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    child.wait()
"""

# Fails (exit 3) until it has run `need` times, counting attempts in the output dir.
FLAKY = """
    import os, sys
    need = int(sys.argv[1])
    path = os.path.join(os.environ["TRAINYARD_OUTPUT_DIR"], "attempts")
    with open(path, "a") as f:
        f.write("x")
    attempt = len(open(path).read())
    print(f"attempt {attempt}", flush=True)
    sys.exit(0 if attempt >= need else 3)
"""


def test_memory_limit_kills_the_replica_tree(runs: Runs) -> None:
    spec = task(
        resource(
            "worker",
            "python hog.py",
            limits=ResourceAmounts(memory_bytes=100 * 1024 * 1024),
        ),
        resource("other", "exec sleep 600"),
    )
    run = runs.start(spec, files={"hog.py": HOG})
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "error"
    assert obs.reason.startswith("OOMKilled: memory limit 100Mi exceeded")
    assert "worker-0" in obs.reason
    worker = next(r for r in obs.replicas if r.name == "worker-0")
    assert (worker.status, worker.reason) == ("failed", "OOMKilled: memory limit 100Mi exceeded")
    assert worker.signal == 9
    pids = [int(p) for p in (run.output_dir / "pids").read_text().split()]
    assert wait_gone(pids, timeout=5) == []


def test_on_failure_restarts_until_success(runs: Runs) -> None:
    spec = task(
        resource(
            "worker",
            "python flaky.py 3",
            restart_policy=RestartPolicy.ON_FAILURE,
            backoff_limit=3,
        )
    )
    run = runs.start(spec, files={"flaky.py": FLAKY})
    obs = runs.wait(run)
    assert obs.phase == "complete"
    (worker,) = obs.replicas
    assert (worker.status, worker.restarts, worker.exit_code) == ("succeeded", 2, 0)
    assert (run.output_dir / "attempts").read_text() == "xxx"
    restarts = [m for m in run.messages() if m.startswith("restarting")]
    assert restarts == [
        "restarting worker-0 after exit code 3 (restart 1 of 3) in 0.1s",
        "restarting worker-0 after exit code 3 (restart 2 of 3) in 0.2s",
    ]
    # Every attempt appends to the same log.
    texts = [line.text for line in runs.executor.read_logs(run.run_id, "worker-0").lines]
    assert texts == ["attempt 1", "attempt 2", "attempt 3"]


def test_on_failure_gives_up_after_the_backoff_limit(runs: Runs) -> None:
    spec = task(
        resource(
            "worker",
            "python flaky.py 99",
            restart_policy=RestartPolicy.ON_FAILURE,
            backoff_limit=2,
        )
    )
    run = runs.start(spec, files={"flaky.py": FLAKY})
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "replica worker-0 failed: exit code 3 after 2 restarts"
    assert obs.replicas[0].restarts == 2
    assert (run.output_dir / "attempts").read_text() == "xxx"


def test_never_does_not_restart(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "python flaky.py 2")), files={"flaky.py": FLAKY})
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "replica worker-0 failed: exit code 3"
    assert obs.replicas[0].restarts == 0
    assert (run.output_dir / "attempts").read_text() == "x"
    assert not [m for m in run.messages() if m.startswith("restarting")]


def test_a_stop_during_the_backoff_cancels_the_restart(runs: Runs) -> None:
    spec = task(
        resource(
            "worker",
            "python flaky.py 99",
            restart_policy=RestartPolicy.ON_FAILURE,
            backoff_limit=3,
        ),
        resource("other", "exec sleep 600"),
    )
    runs.executor.restart_backoff_seconds = 30.0
    run = runs.start(spec, files={"flaky.py": FLAKY})
    runs.wait_for(
        lambda: (
            runs.observe(run) is not None  # collects the new events
            and any(m.startswith("restarting") for m in run.messages())
        ),
        "the first restart to be scheduled",
    )
    runs.executor.stop(run.run_id, 2.0)
    obs = runs.wait(run, timeout=10)
    assert obs.phase == "stopped"
    worker = next(r for r in obs.replicas if r.name == "worker-0")
    assert (worker.status, worker.restarts) == ("stopped", 0)
    assert (run.output_dir / "attempts").read_text() == "x"
