"""Running the real ``trainyard`` command in a subprocess, for the CLI tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("trainyard")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "trainyard.cli"]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any TRAINYARD_* setting, with HOME and
    TRAINYARD_HOME pointing at ``home`` so nothing touches the real ~/.trainyard."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update({"HOME": str(home), "TRAINYARD_HOME": str(home / ".trainyard")})
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


RunCli = Callable[..., Result]


def run_cli_process(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 120.0
) -> Result:
    done = subprocess.run(
        [*COMMAND, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write_task(directory: Path, text: str, files: Mapping[str, str] | None = None) -> Path:
    """Write ``task.yaml`` (and ``files``) into ``directory``; returns the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {}).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    manifest = directory / "task.yaml"
    manifest.write_text(text)
    return manifest
