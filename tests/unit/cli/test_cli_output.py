"""Pure pieces of the CLI's output: ages, replica summaries, GPUs, the task-name rewrite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainyard.cli.output import format_age, format_duration, replicas_summary, requested_gpus
from trainyard.cli.state import default_server_url
from trainyard.core.models import Replica, ResourceAmounts, ResourceSpec, Run, TaskSpec
from trainyard.core.settings import ServerSettings, Settings
from trainyard.core.status import ReplicaStatus, RunStatus

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0s"), (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (7300, "2h"), (200000, "2d")],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_age_accepts_naive_times_as_utc() -> None:
    assert format_age(NOW - timedelta(minutes=3), NOW) == "3m"
    assert format_age((NOW - timedelta(hours=2)).replace(tzinfo=None), NOW) == "2h"


def make_run(status: RunStatus, replica_statuses: list[ReplicaStatus]) -> Run:
    spec = TaskSpec(
        name="t",
        resources=[
            ResourceSpec(name="ps", replicas=1, command="x"),
            ResourceSpec(name="worker", replicas=2, command="y", limits=ResourceAmounts(gpu=2)),
        ],
    )
    names = ["ps-0", "worker-0", "worker-1"]
    replicas = [
        Replica(name=n, resource=n.split("-")[0], index=int(n[-1]), status=s)
        for n, s in zip(names, replica_statuses, strict=False)
    ]
    return Run(
        id=1,
        project="default",
        task="t",
        build_id=1,
        status=status,
        spec=spec,
        created_at=NOW,
        updated_at=NOW,
        replicas=replicas,
    )


def test_replica_summaries() -> None:
    R = ReplicaStatus
    assert replicas_summary(make_run(RunStatus.QUEUED, [])) == "0/3 running"
    running = make_run(RunStatus.RUNNING, [R.RUNNING, R.RUNNING, R.PENDING])
    assert replicas_summary(running) == "2/3 running"
    done = make_run(RunStatus.COMPLETE, [R.STOPPED, R.SUCCEEDED, R.SUCCEEDED])
    assert replicas_summary(done) == "2/3 succeeded"
    failed = make_run(RunStatus.ERROR, [R.STOPPED, R.FAILED, R.SUCCEEDED])
    assert replicas_summary(failed) == "1/3 failed"
    stopped = make_run(RunStatus.STOPPED, [R.STOPPED, R.STOPPED, R.STOPPED])
    assert replicas_summary(stopped) == "3/3 stopped"


def test_requested_gpus_multiply_by_replicas() -> None:
    assert requested_gpus(make_run(RunStatus.QUEUED, [])) == 4


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000"),
        ("127.0.0.5", "http://127.0.0.5:9000"),
        ("localhost", "http://localhost:9000"),
        ("::1", "http://[::1]:9000"),
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("10.1.2.3", "http://127.0.0.1:9000"),
        ("gpu-box.example.com", "http://127.0.0.1:9000"),
    ],
)
def test_default_url_is_a_loopback_address_on_the_configured_port(host: str, url: str) -> None:
    settings = Settings(server=ServerSettings(host=host, port=9000))
    assert default_server_url(settings) == url
