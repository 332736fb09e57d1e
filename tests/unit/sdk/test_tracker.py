"""The tracker against a fake server over real HTTP: batching, flushing, retries that never
duplicate, the spool through an outage, and what the server refuses for good."""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import pytest
from sdk_support import RUN_ID, FakeServer, MakeTracker

from trainyard.core.errors import ConflictError, InvalidInputError


def sdk_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "trainyard.sdk" and r.levelno == level
    ]


def test_points_go_in_batches_of_at_most_1000(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    # A long interval: only a full buffer (1,000 points) or finish() sends anything.
    tracker = make_tracker(flush_interval=60)
    for i in range(2500):
        tracker.log_metric("loss", 1.0 / (i + 1))
    server.wait_for(1000)
    tracker.finish()
    stored = server.stored()
    assert len(stored) == 2500
    assert [p["step"] for p in stored] == list(range(2500))
    posts = server.metric_posts()
    assert all(0 < p.points <= 1000 for p in posts)
    assert len(posts) >= 3
    assert len({p.batch_id for p in posts}) == len(posts)
    assert all(p.outcome == "stored" for p in posts)


def test_points_are_sent_on_the_next_tick_without_finish(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(flush_interval=0.05)
    tracker.log_metric("loss", 0.5, step=3)
    server.wait_for(1, timeout=5)
    point = server.stored()[0]
    assert (point["key"], point["value"], point["step"]) == ("loss", 0.5, 3)
    assert abs(point["time"] - time.time()) < 60


def test_finish_flushes_everything_and_then_refuses_more(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(flush_interval=60)
    tracker.log_metrics({"acc": 0.9, "f1": 0.8}, step=10)
    tracker.log_metric("acc", 0.95)
    tracker.finish()
    assert sorted((p["key"], p["step"], p["value"]) for p in server.stored()) == [
        ("acc", 10, 0.9),
        ("acc", 11, 0.95),
        ("f1", 10, 0.8),
    ]
    tracker.finish()  # idempotent
    with pytest.raises(ConflictError, match="finished"):
        tracker.log_metric("acc", 1.0)
    with pytest.raises(ConflictError, match="finished"):
        tracker.log_params({"lr": 0.1})


def test_the_default_step_is_a_counter_per_key(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(flush_interval=60)
    tracker.log_metric("a", 1)
    tracker.log_metric("a", 2)
    tracker.log_metric("b", 3)
    tracker.log_metric("a", 4, step=10)
    tracker.log_metric("a", 5)
    tracker.log_metric("a", 6, step=3)  # an earlier step: the next one stays 12
    tracker.log_metrics({"a": 7, "b": 8})
    tracker.finish()
    steps = [(p["key"], p["step"]) for p in server.stored()]
    assert steps == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("a", 10),
        ("a", 11),
        ("a", 3),
        ("a", 12),
        ("b", 1),
    ]


def test_a_reply_lost_after_the_batch_was_stored_is_not_stored_twice(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    server.drop_replies = 1  # the server stores the batch, then the connection dies
    tracker = make_tracker(flush_interval=0.05)
    for i in range(10):
        tracker.log_metric("loss", float(i))
    tracker.finish(timeout=5)
    posts = server.metric_posts()
    assert [p.outcome for p in posts] == ["dropped-reply", "duplicate"]
    assert posts[0].batch_id == posts[1].batch_id
    assert [p["value"] for p in server.stored()] == [float(i) for i in range(10)]
    assert tracker._sender.spool.empty and not tracker._sender.spool.path.exists()


def test_an_outage_spools_warns_once_then_everything_arrives_exactly_once(
    server: FakeServer, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trainyard.sdk")
    server.stop()
    tracker = make_tracker(flush_interval=0.05)
    spool = tracker._sender.spool
    sent = 0
    for _ in range(6):  # several ticks of the sender during the outage
        for _ in range(500):
            tracker.log_metric("loss", float(sent))
            sent += 1
        time.sleep(0.12)
    deadline = time.monotonic() + 5
    while spool.points < sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert spool.points == sent and spool.path.exists()
    lines = spool.path.read_bytes().splitlines()
    assert sum(len(json.loads(line)["points"]) for line in lines) == sent

    warnings = sdk_records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert f"cannot send metrics to {server.url}" in warnings[0]
    assert str(spool.path) in warnings[0] and "points are kept" in warnings[0]

    server.start()  # same port
    server.wait_for(sent, timeout=15)
    tracker.finish()
    assert sorted(p["value"] for p in server.stored()) == [float(i) for i in range(sent)]
    assert spool.empty and not spool.path.exists()
    assert len(sdk_records(caplog, logging.WARNING)) == 1
    assert any("answers again" in m for m in sdk_records(caplog, logging.INFO))


def test_finish_with_the_server_down_keeps_the_points_and_says_where(
    server: FakeServer, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    server.stop()
    tracker = make_tracker(flush_interval=60)
    for i in range(1500):
        tracker.log_metric("loss", float(i))
    started = time.monotonic()
    tracker.finish(timeout=1)
    assert time.monotonic() - started < 5
    spool = tracker._sender.spool
    assert spool.path.exists()
    lines = [json.loads(line) for line in spool.path.read_bytes().splitlines()]
    assert sum(len(line["points"]) for line in lines) == 1500
    last = sdk_records(caplog, logging.WARNING)[-1]
    assert "1500 points of run 7 could not be sent" in last and str(spool.path) in last


def test_a_batch_refused_for_good_is_dropped_with_one_error(
    server: FakeServer, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    server.refuse = (400, "invalid_input", "the server does not like this batch")
    tracker = make_tracker(flush_interval=60)
    for i in range(3000):
        tracker.log_metric("loss", float(i))
    tracker.finish()
    posts = server.metric_posts()
    assert sum(p.points for p in posts) == 3000  # each batch sent once, none retried
    errors = sdk_records(caplog, logging.ERROR)
    assert len(errors) == 1 and "the server does not like this batch" in errors[0]
    assert tracker._sender.spool.empty and not tracker._sender.spool.path.exists()
    assert tracker._sender.dropped == 3000
    assert any("3000 points of run 7 were refused" in m for m in caplog.messages)


def test_a_finished_run_takes_nothing_more_and_is_not_retried(
    server: FakeServer, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(flush_interval=0.05)
    tracker.log_metric("loss", 1.0)
    server.wait_for(1)
    server.runs[RUN_ID] = "complete"
    tracker.log_metric("loss", 2.0)
    deadline = time.monotonic() + 5
    while not any(p.outcome == "conflict" for p in server.metric_posts()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for i in range(2000):
        tracker.log_metric("loss", float(i))
    tracker.finish()
    assert len(server.stored()) == 1
    assert [p.outcome for p in server.metric_posts()] == ["stored", "conflict"]
    errors = sdk_records(caplog, logging.ERROR)
    assert len(errors) == 1 and "run 7 is complete" in errors[0]
    assert tracker._sender.dropped == 2001 and tracker._sender.spool.empty


def test_an_unknown_run_is_reported_once(
    server: FakeServer, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(run_id=999, flush_interval=60)
    for i in range(2500):
        tracker.log_metric("loss", float(i))
    tracker.finish()
    assert [p.outcome for p in server.metric_posts()] == ["not_found"]
    errors = sdk_records(caplog, logging.ERROR)
    assert len(errors) == 1 and "run 999 not found" in errors[0]


def test_points_the_server_would_refuse_are_left_out_with_one_warning_per_key(
    server: FakeServer, make_tracker: MakeTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(flush_interval=60)
    for i in range(5):
        tracker.log_metric("loss", math.nan if i % 2 else float(i))
        tracker.log_metric("bad@key", 1.0)
        tracker.log_metric("acc", math.inf)
    tracker.log_metric("ok", 1.0)
    tracker.finish()
    assert sorted((p["key"], p["value"]) for p in server.stored()) == [
        ("loss", 0.0),
        ("loss", 2.0),
        ("loss", 4.0),
        ("ok", 1.0),
    ]
    warnings = sdk_records(caplog, logging.WARNING)
    assert len([m for m in warnings if "'loss'" in m]) == 1
    assert len([m for m in warnings if "'bad@key'" in m]) == 1
    assert len([m for m in warnings if "'acc'" in m]) == 1
    assert "12 points of run 7 were not sent" in warnings[-1]


def test_params_are_sent_at_once_and_never_change(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker()
    tracker.log_params({"lr": 0.1, "layers": 4, "opt": "adam", "amsgrad": True, "none": None})
    assert server.params[RUN_ID] == {
        "lr": "0.1",
        "layers": "4",
        "opt": "adam",
        "amsgrad": "true",
        "none": "",
    }
    tracker.log_params({"lr": 0.1})  # the same value again is fine
    with pytest.raises(ConflictError, match=r"already '0\.1'"):
        tracker.log_params({"lr": 0.2})
    requests = len(server.seen)
    with pytest.raises(InvalidInputError, match="invalid"):
        tracker.log_params({"bad@key": 1})
    with pytest.raises(InvalidInputError, match="list values cannot be logged"):
        tracker.log_params({"sizes": [1, 2]})
    assert len(server.seen) == requests  # refused before sending
    tracker.log_params({"eps": math.inf})
    assert server.params[RUN_ID]["eps"] == "inf"


def test_params_logged_while_the_server_is_away_arrive_later(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    server.stop()
    tracker = make_tracker(flush_interval=0.05)
    tracker.log_params({"lr": 0.1})  # does not raise
    tracker.log_metric("loss", 1.0)
    deadline = time.monotonic() + 5
    while tracker._sender.spool.params != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    tracker.log_params({"layers": 4})  # the sender knows of the outage: queued, no request
    server.start()
    server.wait_for(1)
    tracker.finish()
    assert server.params[RUN_ID] == {"lr": "0.1", "layers": "4"}


def test_logging_never_waits_for_the_server(server: FakeServer, make_tracker: MakeTracker) -> None:
    # Every request is held until the end of the test: if log_metric waited on the network,
    # this test would hang (and time out) instead of finishing its loop.
    server.hold = threading.Event()
    tracker = make_tracker(flush_interval=0.01)
    for i in range(20_000):
        tracker.log_metric("loss", i)  # an int: coerced to float on the way in
    assert all(isinstance(p[1], float) for p in tracker._sender._buffer._points)
    server.hold.set()
    tracker.finish(timeout=5)
    assert len(server.stored()) == 20_000


def test_a_restarted_process_sends_what_a_dead_one_left_in_the_spool(
    server: FakeServer, make_tracker: MakeTracker
) -> None:
    server.stop()
    first = make_tracker(flush_interval=60)
    for i in range(100):
        first.log_metric("loss", float(i))
    first.finish(timeout=0.5)
    left = first._sender.spool.path
    assert left.exists()
    server.start()
    second = make_tracker(flush_interval=0.05)
    server.wait_for(100)
    second.log_metric("loss", 100.0)
    second.finish()
    assert [p["step"] for p in server.stored()] == [*range(100), 0]
    assert not left.exists()
