"""Utilities for driving ``LocalExecutor`` directly on temporary run directories."""

from __future__ import annotations

import json
import random
import shutil
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from trainyard.core.models import ResourceSpec, TaskSpec
from trainyard.executors.base import ObservedEvent, RunObservation
from trainyard.executors.env import build_launch_request
from trainyard.executors.local import LocalExecutor

TERMINAL = frozenset({"complete", "error", "stopped"})
_used_ids: set[int] = set()


def fresh_run_id() -> int:
    """A run id unlikely to be used by a concurrent test: it decides the replicas' loopback
    addresses and MASTER_PORT, so two tests must not share one."""
    while True:
        run_id = random.randrange(1000, 65000)
        if run_id not in _used_ids:
            _used_ids.add(run_id)
            return run_id


def resource(name: str, command: str, **kwargs: Any) -> ResourceSpec:
    return ResourceSpec(name=name, command=command, **kwargs)


def task(*resources: ResourceSpec, name: str = "t", **kwargs: Any) -> TaskSpec:
    return TaskSpec(name=name, resources=list(resources), **kwargs)


@dataclass
class Run:
    run_id: int
    run_dir: Path
    code_dir: Path
    events: list[ObservedEvent] = field(default_factory=list)
    cursor: int = 0

    @property
    def output_dir(self) -> Path:
        return self.run_dir / "output"

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "state.json").read_text())
        return data

    def messages(self) -> list[str]:
        return [e.message for e in self.events]


class Runs:
    """Starts runs under one executor and cleans up after them."""

    def __init__(self, root: Path, executor: LocalExecutor) -> None:
        self.root = root
        self.executor = executor
        self.started: list[Run] = []

    def start(
        self,
        spec: TaskSpec,
        *,
        files: dict[str, str] | None = None,
        code_from: Path | None = None,
        run_id: int | None = None,
        grace: float = 2.0,
    ) -> Run:
        """Write ``files`` (dedented) into a fresh code dir, build the request, launch."""
        run_id = run_id if run_id is not None else fresh_run_id()
        run_dir = self.executor.run_dir(run_id)
        code = run_dir / "code"
        if code_from is not None:
            shutil.copytree(code_from, code)
        code.mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            (code / name).parent.mkdir(parents=True, exist_ok=True)
            (code / name).write_text(textwrap.dedent(text))
        request = build_launch_request(
            run_id=run_id,
            run_ref=f"default/{spec.name}#{run_id}",
            project="default",
            task=spec.name,
            build_id=1,
            spec=spec,
            code_dir=code,
            run_dir=run_dir,
            training_dir=self.root / "training",
            server_url="http://127.0.0.1:9",
            token="test-token",
            python_executable=sys.executable,
            base_env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            stop_grace_seconds=grace,
        )
        self.executor.launch(request)
        run = Run(run_id=run_id, run_dir=run_dir, code_dir=code)
        self.started.append(run)
        return run

    def observe(self, run: Run) -> RunObservation:
        obs = self.executor.observe(run.run_id, run.cursor)
        assert obs is not None, f"run {run.run_id} unknown to the executor"
        run.events.extend(obs.events)
        run.cursor = obs.cursor
        return obs

    def wait(
        self, run: Run, phases: frozenset[str] | set[str] = TERMINAL, timeout: float = 30.0
    ) -> RunObservation:
        """Observe until the phase is one of ``phases``; fail with the last observation."""
        deadline = time.monotonic() + timeout
        while True:
            obs = self.observe(run)
            if obs.phase in phases:
                return obs
            if time.monotonic() > deadline:
                log = (run.run_dir / "supervisor.log").read_text(errors="replace")
                raise AssertionError(
                    f"run {run.run_id} still {obs.phase} after {timeout}s: {obs}\n{log}"
                )
            time.sleep(0.02)

    def wait_for(self, predicate: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    def cleanup(self) -> None:
        for run in self.started:
            self.executor.stop(run.run_id, 0)
        for run in self.started:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                obs = self.executor.observe(run.run_id)
                if obs is None or obs.phase in TERMINAL or obs.phase == "lost":
                    break
                time.sleep(0.05)
            self.executor.reap(run.run_id)
        self.executor.close()


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait for every pid to be gone; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if not gone(p)]
        if alive:
            time.sleep(0.02)
    return alive
