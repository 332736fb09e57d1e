"""The MLflow search subset: filter and order_by parsing, matching, ordering, slugs."""

from __future__ import annotations

import pytest

from trainyard.server.services.mlflow import slugify
from trainyard.server.services.mlflow_search import (
    Clause,
    MlflowApiError,
    OrderKey,
    RunView,
    matches,
    parse_filter,
    parse_order_by,
    sort_runs,
)


def _run(
    run_id: int,
    start: int,
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> RunView:
    return RunView(
        run_id=run_id,
        status="FINISHED",
        run_name=f"r{run_id}",
        user_id="ana",
        start_time=start,
        end_time=None,
        metrics=metrics or {},
        params=params or {},
        tags=tags or {},
    )


def test_parse_filter_clauses() -> None:
    assert parse_filter("") == [] and parse_filter("  ") == []
    got = parse_filter(
        "metrics.acc > 0.5 and params.opt = 'adam' AND tags.`my tag` LIKE 'v%' "
        'and attributes.status != "FAILED" and metrics."val loss" <= 1e-3'
    )
    assert got == [
        Clause("metric", "acc", ">", 0.5),
        Clause("param", "opt", "=", "adam"),
        Clause("tag", "my tag", "LIKE", "v%"),
        Clause("attribute", "status", "!=", "FAILED"),
        Clause("metric", "val loss", "<=", 0.001),
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("metrics.a > 1 OR metrics.b > 1", "'OR'"),
        ("params.p IN ('a')", "'IN'"),
        ("attributes.artifact_uri = 'x'", "artifact_uri"),
        ("datasets.name = 'x'", "'datasets'"),
        ("metrics.a > 'high'", "number"),
        ("params.p > 'a'", "string 'p'"),
        ("params.p = 3", "quoted string"),
        ("(metrics.a > 1)", "'('"),
        ("metrics.a", "no comparison"),
    ],
)
def test_unsupported_filters_are_named(text: str, named: str) -> None:
    with pytest.raises(MlflowApiError) as info:
        parse_filter(text)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert named in info.value.message


def test_matching_and_like() -> None:
    run = _run(1, 0, metrics={"acc": 0.7}, params={"opt": "Adam"}, tags={"t": "x"})
    assert matches(run, parse_filter("metrics.acc >= 0.7 and params.opt ILIKE 'ad%'"))
    assert not matches(run, parse_filter("params.opt LIKE 'ad%'"))
    assert not matches(run, parse_filter("metrics.missing != 1"))  # missing never matches
    assert matches(run, parse_filter("attributes.run_id = '1' and tags.t = 'x'"))


def test_order_by() -> None:
    assert parse_order_by(["metrics.acc DESC", "params.p"]) == [
        OrderKey("metric", "acc", True),
        OrderKey("param", "p", False),
    ]
    with pytest.raises(MlflowApiError):
        parse_order_by(["metrics.acc DOWN"])
    runs = [
        _run(1, 10, metrics={"acc": 0.5}),
        _run(2, 20),
        _run(3, 30, metrics={"acc": 0.9}),
        _run(4, 40, metrics={"acc": 0.5}),
    ]
    by_acc = sort_runs(runs, parse_order_by(["metrics.acc DESC"]))
    assert [r.run_id for r in by_acc] == [3, 4, 1, 2]  # ties: newest first; missing last
    by_acc_asc = sort_runs(runs, parse_order_by(["metrics.acc"]))
    assert [r.run_id for r in by_acc_asc] == [4, 1, 3, 2]
    assert [r.run_id for r in sort_runs(runs, [])] == [4, 3, 2, 1]


def test_slugify() -> None:
    assert slugify("My Experiment #1") == "my-experiment-1"
    assert slugify("Éxpé  rience") == "expe-rience"
    assert slugify("!!!") == ""
    assert len(slugify("x" * 100)) == 63
