"""The run commands against a real server: run (--wait), ps, logs, describe, stop."""

from __future__ import annotations

import getpass
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
from cli_support import COMMAND, RunCli, run_cli_process, write_task

from trainyard.client import TrainyardClient
from trainyard.core.errors import NotFoundError
from trainyard.core.models import Run

TWO_WORKERS = """\
name: {name}
resources:
  - name: worker
    replicas: 2
    command: python work.py {{{{ .steps }}}}
parameters:
  - name: steps
    type: int
    default: 2
"""
WORK_PY = """\
import os, sys
steps = int(sys.argv[1])
for i in range(steps):
    print(f"step {i + 1}/{steps} of replica {os.environ['REPLICA_INDEX']}", flush=True)
code = int(os.environ.get("FAIL_REPLICA_INDEX", "-1") == os.environ["REPLICA_INDEX"]) * 3
if code:
    print("failing on purpose", file=sys.stderr, flush=True)
sys.exit(code)
"""


def make_task(tmp_path: Path, name: str, env_fail: int | None = None) -> Path:
    text = TWO_WORKERS.format(name=name)
    if env_fail is not None:
        text = text.replace(
            "    replicas: 2\n",
            f'    replicas: 2\n    env:\n      FAIL_REPLICA_INDEX: "{env_fail}"\n',
        )
    return write_task(tmp_path / name, text, {"work.py": WORK_PY})


def test_run_wait_streams_both_replicas_and_exits_0(live_cli: RunCli, tmp_path: Path) -> None:
    manifest = make_task(tmp_path, "two-ok")
    result = live_cli("run", str(manifest), "--param", "steps=3", "--wait")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("submitted default/two-ok#1 (run ")
    for replica in (0, 1):
        mine = [line for line in lines if line.startswith(f"worker-{replica} | ")]
        assert mine == [f"worker-{replica} | step {i}/3 of replica {replica}" for i in (1, 2, 3)]
    assert "default/two-ok#1: complete" in result.stderr


def test_failing_run_exits_1_with_the_reason(live_cli: RunCli, tmp_path: Path) -> None:
    manifest = make_task(tmp_path, "two-fail", env_fail=1)
    result = live_cli("run", str(manifest), "--wait")
    assert result.code == 1
    assert "worker-1 | failing on purpose" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("default/two-fail#1: error: ")
    assert "worker-1" in last and "exit code 3" in last

    listed = live_cli("ps", "--all")
    assert listed.code == 0
    row = next(line for line in listed.stdout.splitlines() if "default/two-fail#1" in line)
    assert "error" in row.split() and "1/2 failed" in row
    assert "default/two-fail#1" not in live_cli("ps").stdout, "ps shows active runs only"
    only_errors = live_cli("ps", "--status", "error", "--json")
    refs = [r["ref"] for r in json.loads(only_errors.stdout)["items"]]
    assert "default/two-fail#1" in refs

    described = live_cli("describe", "default/two-fail#1", "--json")
    assert described.code == 0
    run = json.loads(described.stdout)
    assert run["ref"] == "default/two-fail#1" and run["status"] == "error"
    replicas = {r["name"]: r for r in run["replicas"]}
    assert set(replicas) == {"worker-0", "worker-1"}
    # worker-0 may have finished or been stopped when worker-1 failed: only worker-1 is certain.
    assert replicas["worker-1"]["exit_code"] == 3
    assert replicas["worker-1"]["status"] == "failed"
    statuses = [e["status"] for e in run["events"] if e["kind"] == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "error"

    text = live_cli("describe", str(run["id"]))
    assert text.code == 0
    assert "default/two-fail#1" in text.stdout and "exit code 3" in text.stdout
    assert "worker-1" in text.stdout and "events" in text.stdout


def test_run_records_the_os_user(
    live_cli: RunCli, online_env: dict[str, str], tmp_path: Path
) -> None:
    manifest = make_task(tmp_path, "who-ran")
    first = live_cli("run", str(manifest), "--no-code", "--json")
    assert first.code == 0, first.stderr
    run = json.loads(live_cli("describe", str(json.loads(first.stdout)["id"]), "--json").stdout)
    assert run["submitted_by"] == getpass.getuser()
    # getpass reads LOGNAME first: another OS user submitting is recorded as that user.
    env = {**online_env, "LOGNAME": "grace"}
    second = run_cli_process("run", str(manifest), "--no-code", "--json", env=env)
    assert second.code == 0, second.stderr
    ref = json.loads(second.stdout)["ref"]
    described = live_cli("describe", ref, "--json")
    assert json.loads(described.stdout)["submitted_by"] == "grace"
    assert "submitted by" in live_cli("describe", ref).stdout
    listed = live_cli("ps", "--all").stdout.splitlines()
    assert listed[0].split()[4] == "USER"
    row = next(line for line in listed if ref in line)
    assert row.split()[4] == "grace"


def test_logs_filters_replicas_tails_and_timestamps(live_cli: RunCli, tmp_path: Path) -> None:
    manifest = make_task(tmp_path, "logs-task")
    assert live_cli("run", str(manifest), "-p", "steps=4", "--wait").code == 0
    only = live_cli("logs", "default/logs-task#1", "--replica", "worker-1")
    assert only.code == 0
    assert only.stdout.splitlines() == [f"worker-1 | step {i}/4 of replica 1" for i in (1, 2, 3, 4)]
    both = live_cli("logs", "default/logs-task#1")
    assert sorted(both.stdout.splitlines()) == sorted(
        f"worker-{r} | step {i}/4 of replica {r}" for r in (0, 1) for i in (1, 2, 3, 4)
    )
    tail = live_cli("logs", "default/logs-task#1", "-r", "worker-0", "--tail", "2")
    assert tail.stdout.splitlines() == [
        "worker-0 | step 3/4 of replica 0",
        "worker-0 | step 4/4 of replica 0",
    ]
    stamped = live_cli("logs", "default/logs-task#1", "-r", "worker-0", "--timestamps")
    first = stamped.stdout.splitlines()[0]
    assert first.endswith(" worker-0 | step 1/4 of replica 0") and first[:2] == "20"
    assert first.split(" ", 1)[0].endswith("Z")
    tail_follow = live_cli("logs", "default/logs-task#1", "-r", "worker-1", "--tail", "1", "-f")
    assert tail_follow.code == 0
    assert tail_follow.stdout.splitlines() == ["worker-1 | step 4/4 of replica 1"]
    unknown = live_cli("logs", "default/logs-task#1", "--replica", "worker-7")
    assert unknown.code == 1 and "no replica 'worker-7'" in unknown.stderr


GATED = """\
name: {name}
resources:
  - name: worker
    replicas: 1
    command: python gate.py {gate}
"""
GATE_PY = """\
import os, sys, time
print("waiting", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
print("data:", open("data.txt").read().strip(), flush=True)
"""


def test_logs_follow_ends_when_the_run_ends(live_cli: RunCli, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    manifest = write_task(
        tmp_path / "follow",
        GATED.format(name="follow", gate=gate),
        {"gate.py": GATE_PY, "data.txt": "one"},
    )
    submitted = live_cli("run", str(manifest))
    assert submitted.code == 0, submitted.stderr
    # Open the gate from a second command so the follower below starts before the run ends.
    gate.touch()
    followed = live_cli("logs", "default/follow#1", "--follow")
    assert followed.code == 0
    assert followed.stdout.splitlines() == ["worker-0 | waiting", "worker-0 | data: one"]
    assert "default/follow#1: complete" in followed.stderr


def test_later_edits_do_not_change_a_submitted_run(live_cli: RunCli, tmp_path: Path) -> None:
    gate = tmp_path / "go-edit"
    code = tmp_path / "edited"
    manifest = write_task(
        code, GATED.format(name="edited", gate=gate), {"gate.py": GATE_PY, "data.txt": "original"}
    )
    assert live_cli("run", str(manifest)).code == 0
    (code / "data.txt").write_text("edited after submit")
    (code / "gate.py").write_text("print('replaced')\n")
    gate.touch()
    followed = live_cli("logs", "default/edited#1", "-f")
    assert followed.stdout.splitlines()[-1] == "worker-0 | data: original"


SLEEPER = """\
name: sleeper
resources:
  - name: worker
    replicas: 2
    command: python -c "import time; print('up', flush=True); time.sleep(300)"
"""


def wait_for_status(url: str, ref: str, status: str, timeout: float = 30.0) -> Run:
    """Poll until the run exists and has ``status``; the last state seen at the deadline."""
    deadline = time.monotonic() + timeout
    with TrainyardClient(url) as client:
        while True:
            try:
                run = client.runs.resolve(ref)
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise
            else:
                if run.status == status or time.monotonic() > deadline:
                    return run
            time.sleep(0.05)


def test_stop_of_a_running_run(live_cli: RunCli, shared_server: Any, tmp_path: Path) -> None:
    manifest = write_task(tmp_path / "sleeper", SLEEPER)
    assert live_cli("run", str(manifest), "--no-code").code == 0
    run = wait_for_status(shared_server.url, "default/sleeper#1", "running")
    assert run.status == "running"
    pids = [r.pid for r in run.replicas if r.pid is not None]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    stopped = live_cli("stop", "default/sleeper#1", "--wait")
    assert stopped.code == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == "default/sleeper#1: stopped"
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []
    again = live_cli("stop", "default/sleeper#1")
    assert again.code == 0 and "already stopped" in again.stdout


def test_run_wait_exits_1_when_the_run_is_stopped(
    live_cli: RunCli, online_env: dict[str, str], shared_server: Any, tmp_path: Path
) -> None:
    manifest = write_task(tmp_path / "sleeper2", SLEEPER.replace("sleeper", "sleeper-two"))
    waiter = subprocess.Popen(
        [*COMMAND, "run", str(manifest), "--no-code", "--wait"],
        env=online_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_status(shared_server.url, "default/sleeper-two#1", "running")
        assert live_cli("stop", "default/sleeper-two#1").code == 0
        stdout, stderr = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert waiter.returncode == 1
    assert "worker-0 | up" in stdout and "worker-1 | up" in stdout
    assert stderr.strip().splitlines()[-1].startswith("default/sleeper-two#1: stopped")


def test_unknown_runs_are_named(live_cli: RunCli) -> None:
    by_ref = live_cli("describe", "default/nope#9")
    assert by_ref.code == 1
    assert by_ref.stderr.strip() == "error: run 'default/nope#9' not found"
    by_id = live_cli("logs", "987654")
    assert by_id.code == 1 and "run 987654 not found" in by_id.stderr
    stop = live_cli("stop", "other/nope#1")
    assert stop.code == 1 and "run 'other/nope#1' not found" in stop.stderr
