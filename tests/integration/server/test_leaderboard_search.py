"""Run search and leaderboards on SQLite and PostgreSQL: sorting by a metric's summary or a
param (missing keys last, ties by id), the JSON search API and its query budget, refusals
(unknown keys, malformed sorts, SQL-looking text), the leaderboard's best run per user, and
the compare and leaderboard pages over HTTP (also after the server is SIGKILLed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.leaderboard import LeaderboardGoal
from trainyard.core.run_search import UnknownKeyError, parse_sort
from trainyard.core.status import RunStatus
from trainyard.server.services import leaderboard as leaderboard_service
from trainyard.server.services import metrics as metric_service
from trainyard.server.services import projects as project_service
from trainyard.server.services import run_search
from trainyard.server.services import runs as run_service
from trainyard.server.services.context import ServiceContext
from trainyard.server.store import run_search as search_store
from trainyard.server.store.projects import get_project

XSS = "<script>alert(1)</script>"


def _run(
    ctx: ServiceContext,
    metrics: dict[str, list[float]] | None = None,
    params: dict[str, Any] | None = None,
    *,
    user: str = "",
    project: str = "default",
    task: str = "train",
    finish: bool = True,
) -> int:
    """An external run that logged ``metrics`` (each key's values at steps 0, 1, …) and
    ``params``; finished ``complete`` unless ``finish`` is False."""
    run = run_service.create_external_run(ctx, project, task, submitted_by=user)
    if params:
        metric_service.log_params(ctx, run.id, params)
    rows = [(k, v, step, None) for k, vs in (metrics or {}).items() for step, v in enumerate(vs)]
    if rows:
        metric_service.log_rows(ctx, run.id, rows)
    if finish:
        run_service.finish_external_run(ctx, run.id, RunStatus.COMPLETE)
    return run.id


def _ids(ctx: ServiceContext, sort: str, order: str = "desc", **kw: Any) -> list[int]:
    page = run_search.search_runs(ctx, "default", sort=sort, order=order, **kw)
    return [item["id"] for item in page["items"]]


# --------------------------------------------------------------------------------------
# Sorting and searching (services and store, both databases)
# --------------------------------------------------------------------------------------


def test_metric_sorts_put_missing_last_both_ways_and_break_ties_by_id(
    ctx: ServiceContext,
) -> None:
    # acc's last value, min and max differ so the three sorts give three orders.
    a = _run(ctx, {"acc": [0.1, 0.9, 0.5]})  # last 0.5, min 0.1, max 0.9
    b = _run(ctx, {"acc": [0.7, 0.7]})  # last 0.7, min 0.7, max 0.7
    c = _run(ctx, {"loss": [1.0]})  # no acc
    d = _run(ctx, {"acc": [0.3, 0.5]})  # last 0.5 (ties with a), min 0.3, max 0.5
    e = _run(ctx)  # nothing logged
    assert _ids(ctx, "metric:acc", "desc") == [b, d, a, e, c]
    assert _ids(ctx, "metric:acc", "asc") == [a, d, b, c, e]
    assert _ids(ctx, "metric:acc:min", "asc") == [a, d, b, c, e]
    assert _ids(ctx, "metric:acc:max", "desc") == [a, b, d, e, c]
    # Run columns still sort as before, ties by id.
    assert _ids(ctx, "id", "asc") == [a, b, c, d, e]
    assert _ids(ctx, "created", "desc") == [e, d, c, b, a]


def test_param_sort_orders_numbers_by_value_before_text_on_both_databases(
    ctx: ServiceContext,
) -> None:
    values = ["10", "9", "0.5", "1e-3", "-2", "adam", "Zeta", "sgd"]
    ids = {v: _run(ctx, params={"p": v}) for v in values}
    missing = _run(ctx, params={"other": 1})
    ascending = ["-2", "1e-3", "0.5", "9", "10", "Zeta", "adam", "sgd"]  # text byte-wise
    assert _ids(ctx, "param:p", "asc") == [ids[v] for v in ascending] + [missing]
    assert _ids(ctx, "param:p", "desc") == [ids[v] for v in reversed(ascending[:5])] + [
        ids[v] for v in reversed(ascending[5:])
    ] + [missing]


def test_search_answers_params_and_metrics_in_four_queries_whatever_the_page_size(
    ctx: ServiceContext,
) -> None:
    for i in range(30):
        _run(
            ctx,
            {"acc": [i / 100, i / 50], "loss": [1 - i / 30], "system/cpu_percent": [50.0]},
            {"lr": (0.1, 0.2, 0.3)[i % 3], "layers": i % 4, "name": f"r{i}"},
            user=f"u{i % 3}",
        )
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    try:
        for limit in (5, 30):
            statements.clear()
            page = run_search.search_runs(ctx, "default", sort="metric:acc", limit=limit)
            assert len(statements) <= 4, statements
            assert len(page["items"]) == limit and page["total"] == 30
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", count)
    best = page["items"][0]
    assert best["metrics"]["acc"] == {"last": 29 / 50, "min": 29 / 100, "max": 29 / 50, "step": 1}
    assert best["metrics"]["system/cpu_percent"]["last"] == 50.0
    assert best["params"] == {"layers": "1", "lr": "0.3", "name": "r29"}
    assert best["ref"] == f"default/train#{best['id']}" and best["submitted_by"] == "u2"
    assert best["status"] == "complete" and best["finished_at"].endswith("Z")
    assert page["sort"] == "metric:acc" and page["order"] == "desc"


def test_filters_paging_and_archived_runs(ctx: ServiceContext) -> None:
    a = _run(ctx, {"acc": [0.5]}, task="train")
    b = _run(ctx, {"acc": [0.6]}, task="eval")
    c = _run(ctx, {"acc": [0.7]}, task="train", finish=False)
    d = _run(ctx, {"acc": [0.8]}, task="train")
    run_service.archive_run(ctx, d)
    assert _ids(ctx, "metric:acc") == [c, b, a]  # archived runs are not listed
    assert _ids(ctx, "metric:acc", archived=True) == [d]
    assert _ids(ctx, "metric:acc", archived=None) == [d, c, b, a]
    assert _ids(ctx, "metric:acc", statuses=["running"]) == [c]
    assert _ids(ctx, "metric:acc", task="eval") == [b]
    assert _ids(ctx, "metric:acc", search="eva") == [b]
    assert _ids(ctx, "metric:acc", search="2") == [c, b]  # run id 2 or build #2
    page = run_search.search_runs(ctx, "default", sort="metric:acc", limit=1, offset=1)
    assert [i["id"] for i in page["items"]] == [b] and page["total"] == 3
    # Past the end: no items, the total is still counted.
    page = run_search.search_runs(ctx, "default", sort="metric:acc", limit=10, offset=10)
    assert page["items"] == [] and page["total"] == 3


def test_unknown_key_is_refused_with_the_keys_the_project_has(ctx: ServiceContext) -> None:
    _run(ctx, {"acc": [0.5], "val/loss": [1.0], "system/cpu_percent": [3.0]}, {"lr": 0.1})
    project_service.create_project(ctx, "other")
    _run(ctx, {"secret": [1.0]}, {"hidden": 1}, project="other")
    with pytest.raises(UnknownKeyError) as info:
        run_search.search_runs(ctx, "default", sort="metric:accuracy")
    assert info.value.http_status == 400
    assert "no run of project 'default' has logged the metric 'accuracy'" in info.value.message
    assert "acc, system/cpu_percent, val/loss" in info.value.message
    assert "secret" not in info.value.message  # another project's keys are not listed
    assert info.value.fields == {"sort": "metric:accuracy", "key": "accuracy"}
    with pytest.raises(UnknownKeyError, match="its params: lr"):
        run_search.search_runs(ctx, "default", sort="param:hidden")
    # Refused even when the filters leave no run (the answer must not depend on them)...
    with pytest.raises(UnknownKeyError):
        run_search.search_runs(ctx, "default", sort="metric:nope", statuses=["queued"])
    # ...and a known key with no matching run is an empty page, not an error.
    empty = run_search.search_runs(ctx, "default", sort="metric:acc", statuses=["queued"])
    assert empty["items"] == [] and empty["total"] == 0
    with pytest.raises(NotFoundError, match="project 'nowhere' not found"):
        run_search.search_runs(ctx, "nowhere", sort="metric:acc")


@pytest.mark.parametrize(
    ("sort", "message"),
    [
        ("bogus", "sort: unknown sort 'bogus'"),
        ("metric:", "the metric key must be 1 to 250 characters"),
        ("param:", "the param key must be 1 to 250 characters"),
        ("metric:acc'; DROP TABLE runs; --", 'metric key "acc\'; DROP TABLE runs; --" is invalid'),
        ("param:lr) OR 1=1", "param key 'lr) OR 1=1' is invalid"),
        ("metric:" + "k" * 251, "the metric key must be 1 to 250 characters"),
        ("param:" + XSS, "param key '<script>alert(1)</script>' is invalid"),
    ],
    ids=["word", "empty-metric", "empty-param", "sql-metric", "sql-param", "long-key", "markup"],
)
def test_malformed_sorts_are_refused_before_any_query(
    ctx: ServiceContext, sort: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        run_search.search_runs(ctx, "default", sort=sort)
    assert info.value.http_status == 400 and message in info.value.message
    # The runs table is still there.
    assert run_search.search_runs(ctx, "default")["total"] == 0


def test_bad_order_limit_and_offset_are_refused(ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInputError, match="order: 'sideways' is not asc or desc"):
        run_search.search_runs(ctx, "default", order="sideways")
    with pytest.raises(InvalidInputError, match="limit: 0 is out of range; ask for 1 to 5000"):
        run_search.search_runs(ctx, "default", limit=0)
    with pytest.raises(InvalidInputError, match="offset: -1 is negative"):
        run_search.search_runs(ctx, "default", offset=-1)


def test_dashboard_keys_and_column_values(ctx: ServiceContext) -> None:
    a = _run(ctx, {"acc": [0.1, 0.4], "system/gpu": [1.0]}, {"lr": 0.1, "note": XSS})
    b = _run(ctx, {"loss": [2.0]}, {"lr": 0.2})
    with ctx.db.read() as session:
        project = get_project(session, "default")
        assert project is not None
        metrics, params = search_store.list_project_keys(session, project.id)
        assert (metrics, params) == (["acc", "loss"], ["lr", "note"])
        everything, _ = search_store.list_project_keys(session, project.id, system=True)
        assert everything == ["acc", "loss", "system/gpu"]
        columns = [parse_sort(t) for t in ("metric:acc", "metric:acc:min", "param:note")]
        values = search_store.list_column_values(session, [a, b], columns)
    assert values[a]["metric:acc"].last_value == 0.4
    assert values[a]["metric:acc:min"].min_value == 0.1
    assert values[a]["param:note"] == XSS
    assert values[b] == {}


# --------------------------------------------------------------------------------------
# Leaderboard (services, both databases)
# --------------------------------------------------------------------------------------


def test_leaderboard_keeps_each_users_best_run_by_the_goal(ctx: ServiceContext) -> None:
    ada1 = _run(ctx, {"acc": [0.2, 0.6]}, {"lr": 0.1}, user="ada")  # last 0.6
    ada2 = _run(ctx, {"acc": [0.9, 0.8]}, {"lr": 0.3}, user="ada")  # last 0.8 (best 0.9 is not)
    bob1 = _run(ctx, {"acc": [0.8]}, {"lr": 0.2}, user="bob")  # ties with ada2
    bob2 = _run(ctx, {"acc": [0.8]}, user="bob")  # ties with bob1: the earlier run wins
    cy = _run(ctx, {"acc": [0.95]}, user="cy")
    run_service.archive_run(ctx, cy)  # archived: off the board
    _run(ctx, {"loss": [0.1]}, user="dee")  # no acc: off the board
    anon = _run(ctx, {"acc": [0.1]}, user="", finish=False)  # still running: on the board
    xss = _run(ctx, {"acc": [0.05]}, user=XSS)
    project = leaderboard_service.set_leaderboard(ctx, "default", "acc", "max")
    assert project.leaderboard is not None
    assert (project.leaderboard.metric, project.leaderboard.goal) == ("acc", LeaderboardGoal.MAX)
    assert project_service.get_project(ctx, "default").leaderboard == project.leaderboard

    board = leaderboard_service.get_leaderboard(ctx, "default")
    rows = [(e.rank, e.user, e.run_id, e.value, e.runs) for e in board.entries]
    assert rows == [
        (1, "ada", ada2, 0.8, 2),
        (1, "bob", bob1, 0.8, 2),  # equal values share the rank; ada's run is earlier
        (3, "", anon, 0.1, 1),
        (4, XSS, xss, 0.05, 1),
    ]
    first = board.entries[0]
    assert first.params == {"lr": "0.3"} and first.step == 1 and first.ref == "default/train#2"
    assert first.status is RunStatus.COMPLETE and first.finished_at is not None
    assert board.entries[2].status is RunStatus.RUNNING and board.entries[2].finished_at is None
    assert bob2 not in [e.run_id for e in board.entries] and ada1 not in [
        e.run_id for e in board.entries
    ]

    leaderboard_service.set_leaderboard(ctx, "default", "acc", "min")
    lower = leaderboard_service.get_leaderboard(ctx, "default")
    assert [(e.user, e.run_id) for e in lower.entries] == [
        (XSS, xss),
        ("", anon),
        ("ada", ada1),
        ("bob", bob1),
    ]


def test_leaderboard_without_metric_or_runs_and_clearing(ctx: ServiceContext) -> None:
    unset = leaderboard_service.get_leaderboard(ctx, "default")
    assert (unset.metric, unset.goal, unset.entries) == (None, None, [])
    leaderboard_service.set_leaderboard(ctx, "default", "val/acc", "max")  # nothing logged yet
    board = leaderboard_service.get_leaderboard(ctx, "default")
    assert (board.metric, board.entries) == ("val/acc", [])
    cleared = leaderboard_service.clear_leaderboard(ctx, "default")
    assert cleared.leaderboard is None
    assert leaderboard_service.clear_leaderboard(ctx, "default").leaderboard is None  # idempotent
    assert leaderboard_service.get_leaderboard(ctx, "default").metric is None


@pytest.mark.parametrize(
    ("metric", "goal", "message"),
    [
        ("acc", "best", "goal: 'best' is neither 'min'"),
        ("acc", "", "goal: '' is neither 'min'"),
        ("system/cpu_percent", "max", "is a resource metric sampled by trainyard"),
        ("", "max", "metric key '' is invalid"),
        ("a" * 251, "max", "is invalid: use 1 to 250"),
        (XSS, "max", "is invalid"),
    ],
    ids=["goal", "empty-goal", "system", "empty", "long", "markup"],
)
def test_bad_leaderboard_settings_are_refused_and_change_nothing(
    ctx: ServiceContext, metric: str, goal: str, message: str
) -> None:
    leaderboard_service.set_leaderboard(ctx, "default", "loss", "min")
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        leaderboard_service.set_leaderboard(ctx, "default", metric, goal)
    setting = project_service.get_project(ctx, "default").leaderboard
    assert setting is not None and (setting.metric, setting.goal.value) == ("loss", "min")


def test_leaderboard_of_an_unknown_project_is_not_found(ctx: ServiceContext) -> None:
    for call in (
        lambda: leaderboard_service.get_leaderboard(ctx, "nowhere"),
        lambda: leaderboard_service.set_leaderboard(ctx, "nowhere", "acc", "max"),
        lambda: leaderboard_service.clear_leaderboard(ctx, "nowhere"),
    ):
        with pytest.raises(NotFoundError, match="project 'nowhere' not found — create it"):
            call()


# --------------------------------------------------------------------------------------
# Over HTTP: the JSON API and the pages (a real server per database)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, server_factory: Any) -> Iterator[Any]:
    live = server_factory.start(request.param)
    yield live
    live.close()


@pytest.fixture(scope="module")
def api(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(api: httpx.Client) -> dict[str, Any]:
    """Project ``lb`` with 4 finished runs of 3 users (one holding markup in its name and a
    param), and project ``lb-other`` with one run."""
    for name in ("lb", "lb-other"):
        assert api.post("/projects", json={"name": name}).status_code == 201
    ids = []
    specs = [
        ("ada", 0.7, {"lr": 0.1, "opt": "adam"}),
        ("bob", 0.9, {"lr": 0.01, "opt": "sgd"}),
        ("ada", 0.8, {"lr": 0.1, "opt": XSS}),
        (XSS, 0.6, {"lr": 0.3, "opt": "adam"}),
    ]
    for user, acc, params in specs:
        body = {"name": "train", "submitted_by": user}
        run = api.post("/projects/lb/external-runs", json=body).json()
        points = [{"key": "acc", "value": acc / 2, "step": 0}, {"key": "acc", "value": acc}]
        points.append({"key": "loss", "value": 1 - acc})
        assert api.post(f"/runs/{run['id']}/metrics", json={"points": points}).status_code == 200
        assert api.post(f"/runs/{run['id']}/params", json={"params": params}).status_code == 200
        assert api.post(f"/runs/{run['id']}/finish", json={"status": "complete"}).status_code == 200
        ids.append(run["id"])
    other = api.post("/projects/lb-other/external-runs", json={"name": "train"}).json()
    return {"ids": ids, "other": other["id"]}


def test_search_api_sorts_by_a_metric_and_refuses_clearly(
    api: httpx.Client, seeded: dict[str, Any]
) -> None:
    a1, b1, a2, x1 = seeded["ids"]
    r = api.get("/projects/lb/runs", params={"sort": "metric:acc", "order": "desc"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == [b1, a2, a1, x1] and body["total"] == 4
    assert body["items"][0]["metrics"]["acc"] == {"last": 0.9, "min": 0.45, "max": 0.9, "step": 1}
    assert body["items"][0]["params"] == {"lr": "0.01", "opt": "sgd"}
    r = api.get("/projects/lb/runs", params={"sort": "param:lr", "order": "asc", "limit": 2})
    assert [i["id"] for i in r.json()["items"]] == [b1, a1]
    r = api.get("/projects/lb/runs", params={"status": "running"})
    assert r.json()["items"] == []

    unknown = api.get("/projects/lb/runs", params={"sort": "metric:accuracy"})
    assert unknown.status_code == 400
    error = unknown.json()["error"]
    assert error["code"] == "invalid_input" and "its metrics: acc, loss" in error["message"]
    for bad, status in (
        ({"sort": "metric:x' OR 1=1 --"}, 400),
        ({"sort": "name"}, 400),
        ({"order": "up"}, 400),
        ({"limit": "5001"}, 400),
        ({"limit": "lots"}, 400),
        ({"status": "finished"}, 400),
        ({"archived": "maybe"}, 400),
    ):
        answer = api.get("/projects/lb/runs", params=bad)
        assert answer.status_code == status, (bad, answer.text)
        assert answer.json()["error"]["message"], bad
    missing = api.get("/projects/nowhere/runs")
    assert missing.status_code == 404
    assert "project 'nowhere' not found" in missing.json()["error"]["message"]


def test_leaderboard_api_and_page_survive_a_server_kill(
    server: Any, api: httpx.Client, seeded: dict[str, Any]
) -> None:
    _, b1, a2, x1 = seeded["ids"]
    page = httpx.get(f"{server.url}/projects/lb/leaderboard")
    assert page.status_code == 200 and "No evaluation metric yet" in page.text
    assert 'id="leaderboard-form"' in page.text and "--higher-is-better" in page.text
    assert api.get("/projects/lb/leaderboard").json() == {
        "project": "lb",
        "metric": None,
        "goal": None,
        "entries": [],
    }
    for body, message in (
        ({"metric": "acc", "goal": "up"}, "goal: 'up' is neither"),
        ({"metric": "acc"}, "goal: Field required"),
        ({"metric": "acc", "goal": "max", "owner": "me"}, "Extra inputs are not permitted"),
        ({"metric": "system/gpu", "goal": "max"}, "is a resource metric"),
    ):
        r = api.put("/projects/lb/leaderboard", json=body)
        assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
    assert (
        api.put("/projects/nowhere/leaderboard", json={"metric": "a", "goal": "max"}).status_code
        == 404
    )
    assert api.get("/projects/nowhere/leaderboard").status_code == 404

    r = api.put("/projects/lb/leaderboard", json={"metric": "acc", "goal": "max"})
    assert r.status_code == 200 and r.json()["leaderboard"] == {"metric": "acc", "goal": "max"}
    # Durable the moment the reply is sent: a SIGKILLed server comes back with it.
    server.kill()
    server.start()
    assert api.get("/projects/lb").json()["leaderboard"] == {"metric": "acc", "goal": "max"}
    board = api.get("/projects/lb/leaderboard").json()
    assert [(e["rank"], e["user"], e["run_id"]) for e in board["entries"]] == [
        (1, "bob", b1),
        (2, "ada", a2),
        (3, XSS, x1),
    ]
    html = httpx.get(f"{server.url}/projects/lb/leaderboard").text
    assert html.count('<tr data-run="') == 3
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f"/projects/lb/compare?runs={b1}&amp;runs={a2}&amp;runs={x1}" in html
    project_html = httpx.get(f"{server.url}/projects/lb").text
    assert "Ranked by <code>acc</code> · higher is better" in project_html

    cleared = api.delete("/projects/lb/leaderboard")
    assert cleared.status_code == 200 and cleared.json()["leaderboard"] is None
    assert api.get("/projects/lb/leaderboard").json()["entries"] == []


def test_compare_page_names_what_it_cannot_compare(server: Any, seeded: dict[str, Any]) -> None:
    a1, b1, a2, _ = seeded["ids"]
    other = seeded["other"]
    base = f"{server.url}/projects/lb/compare"

    ok = httpx.get(base, params=[("runs", a1), ("runs", b1), ("runs", a2)])
    assert ok.status_code == 200
    assert ok.text.count('class="legenditem"') == 3
    assert XSS not in ok.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in ok.text
    assert 'id="compare-data"' in ok.text and "\\u003cscript\\u003e" in ok.text

    mixed = httpx.get(base, params=[("runs", a1), ("runs", b1), ("runs", other), ("runs", 99999)])
    assert mixed.status_code == 200 and mixed.text.count('class="legenditem"') == 2
    assert f"Not in project lb:</strong> runs {other}, 99999" in mixed.text

    junk = httpx.get(base, params=[("runs", a1), ("runs", "x<b>y"), ("runs", "1.5")])
    assert "Not run ids:" in junk.text and "<code>x&lt;b&gt;y</code>" in junk.text
    assert "Only lb/train#1 was found" in junk.text

    none = httpx.get(base)
    assert none.status_code == 200 and "Pick 2 to 10 runs to compare." in none.text

    eleven = httpx.get(base, params=[("runs", i) for i in range(1, 12)])
    assert eleven.status_code == 400
    assert "11 runs picked: compare at most 10 at a time." in eleven.text
    assert eleven.text.count('aria-label="Remove run ') == 11

    assert httpx.get(f"{server.url}/projects/nowhere/compare?runs=1&runs=2").status_code == 404


def test_dashboard_columns_from_the_url_and_the_defaults(
    server: Any, api: httpx.Client, seeded: dict[str, Any]
) -> None:
    a1, b1, a2, x1 = seeded["ids"]
    api.delete("/projects/lb/leaderboard")
    base = f"{server.url}/projects/lb/runs"
    default = httpx.get(base).text
    assert [
        m for m in re.findall(r'<th scope="col" class="[^"]*valcol" data-col="([^"]+)"', default)
    ] == [
        "metric:acc",
        "metric:loss",
    ]
    assert "cols=metric%3Aacc&amp;cols=metric%3Aloss" in default  # the polled table keeps them

    chosen = httpx.get(
        base, params=[("cols", "param:opt"), ("cols", "bogus"), ("sort", "param:lr")]
    )
    cols = re.findall(r'<th scope="col" class="[^"]*valcol" data-col="([^"]+)"', chosen.text)
    assert cols == ["param:opt"]
    assert XSS not in chosen.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in chosen.text

    none = httpx.get(base, params=[("cols", "")]).text
    assert 'data-col="' not in none.split("<tbody>")[0]

    table = httpx.get(
        f"{base}/table", params=[("sort", "metric:acc"), ("order", "asc"), ("cols", "metric:acc")]
    )
    rows = re.findall(r'<tr data-run="(\d+)"', table.text)
    assert [int(r) for r in rows] == [x1, a1, a2, b1]
    # A sort key no run logged, or nonsense, is ignored by the pages (not an error).
    assert httpx.get(base, params={"sort": "metric:nope"}).status_code == 200
    assert httpx.get(base, params={"sort": "metric:'; DROP TABLE runs"}).status_code == 200

    api.put("/projects/lb/leaderboard", json={"metric": "loss", "goal": "min"})
    with_board = httpx.get(base).text
    assert re.findall(r'<th scope="col" class="[^"]*valcol" data-col="([^"]+)"', with_board) == [
        "metric:loss"
    ]
    api.delete("/projects/lb/leaderboard")
