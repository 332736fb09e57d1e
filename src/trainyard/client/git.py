"""What a code directory's git checkout says about it: branch, commit, dirty flag, remote."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from trainyard.core.models import GitInfo

__all__ = ["git_info"]

_GIT_TIMEOUT = 10.0
# https://user:token@host/repo -> https://host/repo: credentials must not be stored on a run.
_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")


def _git(directory: Path, *args: str) -> str | None:
    """Run git in ``directory``; its stdout stripped, or None if git failed or is missing."""
    try:
        done = subprocess.run(
            # --no-optional-locks: `git status` must not take index.lock behind the user's back.
            ["git", "--no-optional-locks", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def _strip_credentials(url: str) -> str:
    return _USERINFO.sub(r"\g<scheme>", url)


def git_info(directory: Path) -> GitInfo | None:
    """Git facts about ``directory``, or None when it is not inside a git checkout or git is not
    installed. ``branch`` is None on a detached HEAD, ``commit`` None before the first commit;
    ``dirty`` is true when ``git status --porcelain`` lists anything (untracked files count).
    """
    if _git(directory, "rev-parse", "--is-inside-work-tree") != "true":
        return None
    commit = _git(directory, "rev-parse", "--verify", "--quiet", "HEAD^{commit}") or None
    branch = _git(directory, "symbolic-ref", "--quiet", "--short", "HEAD") or None
    status = _git(directory, "status", "--porcelain")
    remote = _git(directory, "config", "--get", "remote.origin.url")
    return GitInfo(
        branch=branch,
        commit=commit,
        dirty=bool(status),
        remote=_strip_credentials(remote) if remote else None,
    )
