"""`trainyard project leaderboard` and `trainyard project runs` against a real server: set,
show and clear the leaderboard, list runs sorted by a metric or a param, and the usage and
server errors (exit 2 and 1) with messages that name the fix."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cli_support import RunCli

from trainyard.client import TrainyardClient

XSS = "<b>eve</b>"


@pytest.fixture(scope="module")
def runs(shared_server: Any) -> list[int]:
    """Project ``cli-lb``: four finished runs of three users with ``acc``, ``loss`` and
    params, logged through the client."""
    ids = []
    users = (("ada", 0.7, 0.1), ("bob", 0.9, 0.01), ("ada", 0.8, 0.05), (XSS, 0.6, 0.3))
    with (
        TrainyardClient(shared_server.url) as client,
        httpx.Client(base_url=f"{shared_server.url}/api/v1") as api,
    ):
        client.projects.create("cli-lb")
        for user, acc, lr in users:
            body = {"name": "train", "submitted_by": user}
            run = api.post("/projects/cli-lb/external-runs", json=body).json()
            client.metrics.log_batch(run["id"], [("acc", acc / 2, 0, None), ("acc", acc, 1, None)])
            client.metrics.log_batch(run["id"], [("loss", 1 - acc, 1, None)])
            client.metrics.log_params(run["id"], {"lr": lr, "opt": "adam"})
            api.post(f"/runs/{run['id']}/finish", json={"status": "complete"})
            ids.append(int(run["id"]))
    return ids


def test_leaderboard_set_show_json_and_clear(live_cli: RunCli, runs: list[int]) -> None:
    unset = live_cli("project", "leaderboard", "cli-lb")
    assert unset.code == 0
    assert "project cli-lb has no leaderboard metric yet" in unset.stderr
    assert "trainyard project leaderboard cli-lb --metric METRIC --higher-is-better" in unset.stderr

    shown = live_cli("project", "leaderboard", "cli-lb", "--metric", "acc", "--higher-is-better")
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "leaderboard of cli-lb: acc, higher is better; each user's best run by its last value"
    )
    assert lines[1].split()[:5] == ["RANK", "USER", "RUN", "ID", "ACC"]
    body = [line.split() for line in lines[2:]]
    assert [(r[0], r[1], r[2], r[4]) for r in body] == [
        ("1", "bob", "cli-lb/train#2", "0.9"),
        ("2", "ada", "cli-lb/train#3", "0.8"),
        ("3", XSS, "cli-lb/train#4", "0.6"),
    ]
    assert "lr=0.05 opt=adam" in lines[3]

    as_json = live_cli("project", "leaderboard", "cli-lb", "--json")
    board = json.loads(as_json.stdout)
    assert (board["metric"], board["goal"]) == ("acc", "max")
    assert [e["run_id"] for e in board["entries"]] == [runs[1], runs[2], runs[3]]

    lower = live_cli("project", "leaderboard", "cli-lb", "--metric", "loss", "--lower-is-better")
    assert lower.code == 0 and "loss, lower is better" in lower.stdout
    show = live_cli("project", "show", "cli-lb")
    assert "leaderboard loss (lower is better)" in show.stdout

    cleared = live_cli("project", "leaderboard", "cli-lb", "--clear")
    assert cleared.code == 0 and "project cli-lb has no leaderboard metric now" in cleared.stdout
    assert "leaderboard -" in live_cli("project", "show", "cli-lb").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "acc"], "say which way is better: add --higher-is-better"),
        (["--higher-is-better"], "go with --metric KEY"),
        (["--metric", "acc", "--higher-is-better", "--lower-is-better"], "give one of"),
        (["--metric", "acc", "--higher-is-better", "--clear"], "give --metric or --clear"),
    ],
    ids=["no-goal", "no-metric", "both-goals", "metric-and-clear"],
)
def test_leaderboard_usage_errors_exit_2(
    live_cli: RunCli, runs: list[int], args: list[str], message: str
) -> None:
    result = live_cli("project", "leaderboard", "cli-lb", *args)
    assert result.code == 2 and message in result.stderr, result.stderr


def test_leaderboard_server_refusals_exit_1(live_cli: RunCli, runs: list[int]) -> None:
    system = live_cli(
        "project", "leaderboard", "cli-lb", "--metric", "system/cpu_percent", "--higher-is-better"
    )
    assert system.code == 1
    assert "error: metric 'system/cpu_percent' is a resource metric" in system.stderr
    missing = live_cli("project", "leaderboard", "nowhere")
    assert missing.code == 1
    assert "error: project 'nowhere' not found — create it with" in missing.stderr


def test_project_runs_sorted_by_a_metric_or_a_param(live_cli: RunCli, runs: list[int]) -> None:
    result = live_cli("project", "runs", "cli-lb", "--sort", "metric:acc", "--col", "param:lr")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RUN", "ID", "STATUS", "USER", "ACC", "LR", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == [
        "cli-lb/train#2",
        "cli-lb/train#3",
        "cli-lb/train#1",
        "cli-lb/train#4",
    ]
    assert lines[1].split()[4:6] == ["0.9", "0.01"]

    ascending = live_cli("project", "runs", "cli-lb", "--sort", "param:lr", "--asc", "--json")
    page = json.loads(ascending.stdout)
    assert [i["params"]["lr"] for i in page["items"]] == ["0.01", "0.05", "0.1", "0.3"]
    assert page["items"][0]["metrics"]["acc"] == {"last": 0.9, "min": 0.45, "max": 0.9, "step": 1}
    assert (page["sort"], page["order"], page["total"]) == ("param:lr", "asc", 4)

    minimum = live_cli("project", "runs", "cli-lb", "--sort", "metric:acc:min", "--limit", "1")
    assert minimum.code == 0 and "ACC (MIN)" in minimum.stdout.splitlines()[0]
    assert "showing 1 of 4 runs (use --limit)" in minimum.stderr


def test_project_runs_refusals(live_cli: RunCli, runs: list[int]) -> None:
    bad = live_cli("project", "runs", "cli-lb", "--sort", "fastest")
    assert bad.code == 2 and "sort: unknown sort 'fastest'" in bad.stderr
    col = live_cli("project", "runs", "cli-lb", "--col", "lr")
    assert col.code == 2 and "column 'lr' is not metric:<key> or param:<key>" in col.stderr
    unknown = live_cli("project", "runs", "cli-lb", "--sort", "metric:accuracy")
    assert unknown.code == 1
    assert "has logged the metric 'accuracy'; its metrics: acc, loss" in unknown.stderr
    empty = live_cli("project", "runs", "cli-lb", "--status", "queued")
    assert empty.code == 0 and "no runs in project cli-lb" in empty.stderr
