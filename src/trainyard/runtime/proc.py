"""Processes: spawning a replica in its own session, identifying it, killing its tree.

A replica is ``/bin/sh -c <command>`` started with ``fork`` + ``execve`` (not ``subprocess``:
its import costs start-up time, and the supervisor reaps every child itself with
``waitpid(-1)`` because it is a child subreaper). In the child, before ``exec``: a new session
(so the whole tree can be signalled as one group), ``PR_SET_PDEATHSIG`` = SIGKILL (a killed
supervisor takes its direct children with it), default signal dispositions, stdin from
/dev/null, stdout and stderr to one pipe.

psutil is imported lazily, after the replicas are running: it costs ~20 ms at start-up.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    import psutil

__all__ = [
    "become_subreaper",
    "confirm_start",
    "describe_exit",
    "kill_group",
    "kill_tree",
    "spawn_shell",
    "start_shell",
    "start_ticks",
    "tree_rss",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc: ctypes.CDLL | None = None


def _prctl(option: int, arg: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(option, arg, 0, 0, 0)


def become_subreaper() -> None:
    """Orphaned descendants of replicas are re-parented to us, so a stop can find and kill
    processes that left their replica's session, and their exit statuses come to us."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def spawn_shell(command: str, cwd: str, env: dict[str, str], out_fd: int) -> int:
    """Start ``/bin/sh -c command`` in a new session and wait until it has exec'd; return
    its pid. Raises ``OSError`` as :func:`confirm_start`."""
    pid, err_r = start_shell(command, cwd, env, out_fd)
    confirm_start(pid, err_r)
    return pid


def start_shell(command: str, cwd: str, env: dict[str, str], out_fd: int) -> tuple[int, int]:
    """Fork the child that will exec ``/bin/sh -c command``; return (pid, error pipe).

    Several children can be started before any is confirmed, so their set-up overlaps.
    Raises ``OSError`` only when the fork itself fails.
    """
    if _libc is None:
        _prctl(0, 0)  # load libc in the parent: the child must not do anything slow
    parent = os.getpid()
    err_r, err_w = os.pipe()  # both close-on-exec: EOF on err_r means exec succeeded
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits; coverage cannot see it
        step = "setsid"
        try:
            os.close(err_r)
            os.setsid()
            step = "prctl"
            assert _libc is not None
            _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:  # the supervisor died before prctl took effect
                os._exit(127)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            step = "redirect"
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_fd, 1)
            os.dup2(out_fd, 2)
            step = f"workDir {cwd}"
            os.chdir(cwd)
            step = "exec /bin/sh"
            os.execve("/bin/sh", ["/bin/sh", "-c", command], env)
        except OSError as exc:
            os.write(err_w, f"{exc.errno or 0}:{step}: {exc.strerror or exc}".encode())
        except BaseException as exc:
            os.write(err_w, f"0:{step}: {exc!r}".encode())
        os._exit(127)
    os.close(err_w)
    return pid, err_r


def confirm_start(pid: int, err_r: int) -> None:
    """Wait until the child started by :func:`start_shell` has exec'd (closes ``err_r``).

    Raises ``OSError`` (with the child's errno and the failing step) when it could not be set
    up or exec'd, e.g. a missing working directory; the child is then already reaped.
    """
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(err_r, 4096)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        if not chunk:
            break
        chunks.append(chunk)
    os.close(err_r)
    if chunks:
        _wait_quietly(pid)
        code, _, message = b"".join(chunks).decode(errors="replace").partition(":")
        raise OSError(int(code) if code.isdigit() else 0, message)


def _wait_quietly(pid: int) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    Together with the pid it names one process for good: a reused pid has a later start.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def describe_exit(status: int) -> tuple[int | None, int | None, str]:
    """A ``waitpid`` status as (exit code, signal, words): ``exit code 3`` or
    ``killed by signal 9 (SIGKILL)``."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"SIG{sig}"
        return None, sig, f"killed by signal {sig} ({name})"
    code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else status
    words = f"exit code {code}"
    if 128 < code < 128 + signal.NSIG:
        # The shell reports a command killed by signal N as 128 + N.
        try:  # noqa: SIM105 - contextlib costs start-up time
            words += f" (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return code, None, words


def kill_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group that is gone already is fine."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - a reused group id of another user
        pass


def _tree(pid: int) -> list[psutil.Process]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in bytes (0 if it is gone)."""
    import psutil

    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def kill_tree(pid: int, sig: int = signal.SIGKILL, *, include_root: bool = True) -> int:
    """Send ``sig`` to ``pid``'s descendants (and ``pid``); return how many were signalled.

    Catches processes that left the replica's process group (``setsid``, daemonising).
    """
    tree = _tree(pid)
    if not include_root:
        tree = tree[1:]
    count = 0
    for proc in tree:
        try:
            os.kill(proc.pid, sig)
            count += 1
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.EPERM):  # pragma: no cover
                raise
    return count
