"""Fixtures for the CLI tests: the real ``trainyard`` command run in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import Result, RunCli, clean_env, free_port, run_cli_process


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose server URL points at a port where nothing listens."""
    return clean_env(tmp_path, {"TRAINYARD_SERVER_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture
def cli(offline_env: dict[str, str]) -> RunCli:
    """Run ``trainyard ARGS`` with no server reachable (for the offline commands)."""

    def run(*args: str, cwd: Path | None = None) -> Result:
        return run_cli_process(*args, env=offline_env, cwd=cwd)

    return run


@pytest.fixture(scope="module")
def shared_server(server_factory: Any) -> Iterator[Any]:
    """One live server for a whole test module (tests there must not assume run numbers)."""
    server = server_factory.start()
    try:
        yield server
    finally:
        server.close()
        server_factory.servers.remove(server)


@pytest.fixture
def online_env(shared_server: Any, tmp_path: Path) -> dict[str, str]:
    """An environment for CLI subprocesses that talk to the module's server."""
    return clean_env(tmp_path, shared_server.settings_env)


@pytest.fixture
def live_cli(online_env: dict[str, str]) -> RunCli:
    """Run ``trainyard ARGS`` against the module's live server."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 120.0) -> Result:
        return run_cli_process(*args, env=online_env, cwd=cwd, timeout=timeout)

    return run
