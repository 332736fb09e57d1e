"""Processes of a local run, seen from outside its supervisor: liveness and the reaper.

A process is identified by its pid *and* its start time in clock ticks since boot
(``/proc/<pid>/stat`` field 22, the basis of psutil's ``create_time``), recorded by the
supervisor in ``state.json``: a reused pid has a later start time and is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = ["kill_run_processes", "lock_is_held", "start_ticks"]


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def same_process(pid: Any, ticks: Any) -> bool:
    """Is the process recorded as (pid, start ticks) still alive (and not a reused pid)?"""
    if not isinstance(pid, int) or not isinstance(ticks, int) or pid <= 0:
        return False
    return start_ticks(pid) == ticks


def lock_is_held(lock_path: Path) -> bool:
    """True while a supervisor holds ``supervisor.lock`` (it does for its whole life).

    Probes with a shared lock for a few microseconds; the kernel drops the supervisor's
    lock when it dies, however it dies, so this never mistakes a reused pid for it.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases our probe lock
    return False


def _environ_marks(proc: psutil.Process, run_id: int, replica: str) -> bool:
    try:
        env = proc.environ()
    except psutil.Error:
        return False
    return env.get("TRAINYARD_RUN_ID") == str(run_id) and env.get("TRAINYARD_REPLICA") == replica


def _run_processes(run_id: int, state: dict[str, Any]) -> dict[int, psutil.Process]:
    """Every live process of the run: its supervisor, replicas, and their descendants."""
    found: dict[int, psutil.Process] = {}

    def add(pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            found.setdefault(pid, psutil.Process(pid))

    if same_process(state.get("supervisor_pid"), state.get("supervisor_start_ticks")):
        add(int(state["supervisor_pid"]))
    # session id -> (the leader is verified alive, replica name)
    sessions: dict[int, tuple[bool, str]] = {}
    for r in state.get("replicas") or []:
        if not isinstance(r, dict) or not isinstance(r.get("pid"), int):
            continue
        verified = same_process(r["pid"], r.get("start_ticks"))
        if verified:
            add(r["pid"])
        sessions[int(r.get("pgid") or r["pid"])] = (verified, str(r.get("name", "")))
    if sessions:
        for proc in psutil.process_iter():
            try:
                sid = os.getsid(proc.pid)
            except OSError:
                continue
            entry = sessions.get(sid)
            if entry is None:
                continue
            # Without a live, verified leader the session id could in theory be a reused
            # pid: then only processes carrying this run's environment are ours.
            verified, replica = entry
            if verified or _environ_marks(proc, run_id, replica):
                found.setdefault(proc.pid, proc)
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    found.pop(os.getpid(), None)
    return found


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def kill_run_processes(run_id: int, state: dict[str, Any], timeout: float = 1.0) -> int:
    """SIGKILL every process of the run recorded in ``state``; wait up to ``timeout`` for
    them to go. Returns how many were signalled."""
    procs = _run_processes(run_id, state)
    for proc in procs.values():
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue
    deadline = time.monotonic() + timeout
    pending = list(procs.values())
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if not _gone(p)]
        if pending:
            time.sleep(0.01)
    return len(procs)
