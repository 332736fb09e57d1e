"""A log flood meets a visible quota, and a log that cannot be written says so at once;
neither blocks nor kills the replica."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_support import Run, Runs, fresh_run_id, resource, task

from trainyard.core.models import RestartPolicy
from trainyard.executors.local import LocalExecutor

QUOTA = 64 * 1024
MARKER = (
    "[trainyard] log quota of 64Ki reached for worker-0: further output is dropped "
    "(set TRAINYARD_RUNS__LOG_QUOTA_BYTES to change it)"
)

# Writes `size` bytes of 100-byte lines as fast as it can, records how much it wrote, then
# waits for the test's go-ahead (so the test sees the run while the replica still lives),
# prints a last line and exits with `code`.
FLOOD = """
    import os, sys, time
    size, code = int(sys.argv[1]), int(sys.argv[2])
    out = os.environ["TRAINYARD_OUTPUT_DIR"]
    line = b"x" * 99 + b"\\n"
    block = line * 10000
    written = 0
    while written < size:
        piece = block[: size - written]
        sys.stdout.buffer.write(piece)
        written += len(piece)
    sys.stdout.buffer.flush()
    with open(os.path.join(out, "flooded"), "w") as f:
        f.write(str(written))
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(out, "go")):
        assert time.monotonic() < deadline, "no go-ahead from the test"
        time.sleep(0.01)
    print("the last words", flush=True)
    sys.exit(code)
"""


@pytest.fixture
def quota_runs(tmp_path: Path) -> Iterator[Runs]:
    executor = LocalExecutor(tmp_path / "runs", log_quota_bytes=QUOTA, restart_backoff_seconds=0.1)
    launcher = Runs(tmp_path, executor)
    yield launcher
    launcher.cleanup()


def warnings_of(run: Run) -> list[str]:
    return [e.message for e in run.events if e.kind == "warning" and e.replica == "worker-0"]


def flood_until_warned(runs: Runs, run: Run, expected: str) -> None:
    """Wait for the warning event while the replica is still running, then let it finish."""
    runs.wait_for(lambda: (run.output_dir / "flooded").exists(), "the flood to be written")

    def warned() -> bool:
        runs.observe(run)
        return any(expected in message for message in warnings_of(run))

    runs.wait_for(warned, f"a warning event containing {expected!r}")
    obs = runs.observe(run)
    assert obs.phase == "running"
    assert [r.status for r in obs.replicas] == ["running"]  # neither blocked nor killed
    (run.output_dir / "go").touch()


def test_a_flood_stops_at_the_quota_with_a_marker_and_a_warning(quota_runs: Runs) -> None:
    size = 20 * 1024 * 1024
    spec = task(resource("worker", f"python flood.py {size} 0"))
    run = quota_runs.start(spec, files={"flood.py": FLOOD})
    flood_until_warned(quota_runs, run, MARKER.removeprefix("[trainyard] "))
    obs = quota_runs.wait(run)
    assert obs.phase == "complete", obs
    assert int((run.output_dir / "flooded").read_text()) == size

    log = run.run_dir / "logs" / "worker-0.log"
    assert log.stat().st_size <= QUOTA
    lines = quota_runs.executor.read_logs(run.run_id, "worker-0").lines
    assert lines[-1].text == MARKER
    assert lines[-1].end == log.stat().st_size
    stored = lines[:-1]
    assert stored and all(line.text == "x" * 99 for line in stored)
    assert "the last words" not in log.read_text()

    # Every byte the replica wrote is either in the log or counted as dropped.
    dropped = size + len("the last words\n") - 100 * len(stored)
    (replica,) = run.state()["replicas"]
    assert replica["log_dropped_bytes"] == dropped
    assert replica["log_bytes"] == log.stat().st_size
    assert warnings_of(run) == [
        MARKER.removeprefix("[trainyard] "),
        f"worker-0: {dropped} bytes of output were not stored because its log reached the "
        f"quota of 64Ki; {log.stat().st_size} bytes are in its log",
    ]


def test_a_replica_failing_after_a_flood_still_shows_its_last_lines(quota_runs: Runs) -> None:
    spec = task(
        resource(
            "worker",
            "python flood.py 1000000 3",
            restart_policy=RestartPolicy.ON_FAILURE,
            backoff_limit=1,
        )
    )
    run = quota_runs.start(spec, files={"flood.py": FLOOD})
    flood_until_warned(quota_runs, run, "log quota of 64Ki reached for worker-0")
    obs = quota_runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "replica worker-0 failed: exit code 3 after 1 restart"
    failure = next(e for e in run.events if e.reason == obs.reason)
    # The last line was dropped from the log, not from the failure's story.
    assert failure.message.endswith("x" * 99 + "\nthe last words")
    log = run.run_dir / "logs" / "worker-0.log"
    assert log.stat().st_size <= QUOTA
    # The restart appended to the same full log: one marker, not one per attempt.
    assert log.read_text().count("log quota of 64Ki reached") == 1
    assert warnings_of(run)[0] == MARKER.removeprefix("[trainyard] ")
    assert run.state()["replicas"][0]["log_dropped_bytes"] > 1_000_000


def test_a_log_that_cannot_be_written_warns_at_once_and_fails_the_run(runs: Runs) -> None:
    # A log file that is /dev/full: every write fails with ENOSPC, as on a full disk.
    run_id = fresh_run_id()
    logs = runs.executor.run_dir(run_id) / "logs"
    logs.mkdir(parents=True)
    (logs / "worker-0.log").symlink_to("/dev/full")
    spec = task(resource("worker", "python flood.py 500000 0"))
    run = runs.start(spec, files={"flood.py": FLOOD}, run_id=run_id)
    flood_until_warned(runs, run, "cannot write the log of worker-0: No space left on device")
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "logs could not be written: No space left on device (worker-0.log)"
    (replica,) = run.state()["replicas"]
    assert replica["status"] == "succeeded"  # the replica itself was never disturbed
    assert replica["log_dropped_bytes"] == 500000 + len("the last words\n")
    messages = warnings_of(run)
    assert len(messages) == 2
    assert messages[0].startswith("cannot write the log of worker-0: No space left on device")
    assert "errno 28" in messages[0]
    assert messages[1].startswith(f"worker-0: {replica['log_dropped_bytes']} bytes of output")


@pytest.fixture
def tiny_logs_fs(runs: Runs) -> Iterator[tuple[int, Path]]:
    """A run id whose ``logs`` directory is a 64 KiB tmpfs (needs root: fails otherwise)."""
    run_id = fresh_run_id()
    logs = runs.executor.run_dir(run_id) / "logs"
    logs.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.fail(
            "needs root (CAP_SYS_ADMIN) to mount a 64 KiB tmpfs: run the suite as root, as CI does"
        )
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(logs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield run_id, logs
    finally:
        # Lazy: the supervisor of a failed test may still hold the file open.
        subprocess.run(["umount", "-l", str(logs)], check=True)


def test_a_full_disk_under_the_logs_fails_loudly(
    runs: Runs, tiny_logs_fs: tuple[int, Path]
) -> None:
    run_id, logs = tiny_logs_fs
    spec = task(resource("worker", "python flood.py 300000 0"))
    run = runs.start(spec, files={"flood.py": FLOOD}, run_id=run_id)
    flood_until_warned(runs, run, "cannot write the log of worker-0: No space left on device")
    obs = runs.wait(run)
    assert obs.phase == "error"
    assert obs.reason == "logs could not be written: No space left on device (worker-0.log)"
    (replica,) = run.state()["replicas"]
    size = (logs / "worker-0.log").stat().st_size
    assert 0 < size <= 64 * 1024
    assert replica["log_bytes"] == size
    # What is in the log plus what was dropped covers everything, give or take the lines of
    # the batch that was cut short by the full disk.
    assert replica["log_dropped_bytes"] >= 300000 - size
    assert any("bytes of output were not stored" in m for m in warnings_of(run))
