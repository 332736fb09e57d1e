"""``python -m trainyard.runtime <run_dir>``: supervise the run described by ``launch.json``.

Exit status: 0 when the run was supervised to its end (whatever its outcome) or another
supervisor already owns it; 1 when the launch file is unusable or the supervisor crashed
(both recorded in ``state.json`` as phase ``error``); 2 on a usage error.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from trainyard.runtime.files import EventLog, acquire_lock, iso_utc, write_json_atomic
from trainyard.runtime.spec import load_launch_spec

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    from trainyard.runtime.supervisor import Supervisor

# Observers probe the lock for microseconds; a live supervisor holds it for good. Retrying
# for this long tells the two apart, and lets a duplicate supervisor give up quickly.
_LOCK_WAIT_SECONDS = 0.3


def _fail(run_dir: str, reason: str) -> None:
    """Record phase ``error`` when no supervisor loop could run (or it crashed)."""
    events_path = os.path.join(run_dir, "events.jsonl")
    events = EventLog(events_path)
    try:
        with open(events_path, "rb") as f:
            events.seq = sum(1 for _ in f)
        events.add("phase", f"error: {reason}", reason=reason)
        events.flush()
    finally:
        events.close()
    state = {
        "version": 1,
        "phase": "error",
        "reason": reason,
        "supervisor_pid": os.getpid(),
        "replicas": [],
        "seq": events.seq,
        "updated_at": iso_utc(),
    }
    state_path = os.path.join(run_dir, "state.json")
    try:  # keep what the replicas were, for reap()
        with open(state_path, "rb") as f:
            state["replicas"] = json.loads(f.read()).get("replicas", [])
    except (OSError, ValueError, AttributeError):
        pass
    write_json_atomic(state_path, state)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m trainyard.runtime RUN_DIR", file=sys.stderr)
        return 2
    run_dir = os.path.abspath(argv[0])
    lock_fd = acquire_lock(os.path.join(run_dir, "supervisor.lock"), _LOCK_WAIT_SECONDS)
    if lock_fd is None:
        print(f"run directory {run_dir} is supervised by another process", file=sys.stderr)
        return 0
    if os.path.exists(os.path.join(run_dir, "state.json")):
        # A supervisor ran (or runs) this launch already: never start replicas twice.
        print(f"run directory {run_dir} was supervised already", file=sys.stderr)
        return 0
    try:
        spec = load_launch_spec(os.path.join(run_dir, "launch.json"))
    except (OSError, ValueError) as exc:
        _fail(run_dir, f"invalid launch file: {exc}")
        return 1
    from trainyard.runtime.supervisor import Supervisor

    supervisor = Supervisor(run_dir, spec)
    try:
        return supervisor.run()
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        _crash_cleanup(supervisor)
        _fail(run_dir, f"supervisor crashed: {exc!r}")
        return 1


def _crash_cleanup(supervisor: Supervisor) -> None:
    """Kill every replica of a supervisor that crashed, so nothing runs unsupervised."""
    from trainyard.runtime.proc import kill_group, kill_tree

    for r in supervisor.replicas:
        if r.running and r.pid is not None:
            kill_group(r.pid, signal.SIGKILL)
    kill_tree(os.getpid(), include_root=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
