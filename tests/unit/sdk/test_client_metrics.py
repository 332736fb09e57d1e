"""``client.metrics``: the typed calls behind the SDK, against the fake server."""

from __future__ import annotations

import json
import math

import pytest
from sdk_support import RUN_ID, FakeServer

from trainyard.client import TrainyardClient
from trainyard.client.metrics import encode_batch
from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError
from trainyard.core.metrics import MetricPoint


def test_log_read_and_dedupe(server: FakeServer) -> None:
    with TrainyardClient(server.url) as client:
        points = [("val/acc", 0.5, 0, 1.0), ("val/acc", 0.7, 1, 2.0), ("loss", 3.0, None, None)]
        first = client.metrics.log_batch(RUN_ID, points, batch_id="b1")
        assert (first.accepted, first.duplicate) == (3, False)
        again = client.metrics.log_batch(RUN_ID, points, batch_id="b1")
        assert (again.accepted, again.duplicate) == (0, True)
        client.metrics.log_batch(RUN_ID, [MetricPoint(key="val/acc", value=0.6, step=2)])

        summaries = {s.key: s for s in client.metrics.list(RUN_ID)}
        assert set(summaries) == {"loss", "val/acc"}
        acc = summaries["val/acc"]
        assert (acc.count, acc.last_step, acc.min_value, acc.max_value) == (3, 2, 0.5, 0.7)

        series = client.metrics.history(RUN_ID, "val/acc")
        assert series.points == [(0, 1.0, 0.5), (1, 2.0, 0.7), (2, series.points[2][1], 0.6)]
        assert series.total == 3 and not series.downsampled
        assert client.metrics.history(RUN_ID, "val/acc", max_points=2).downsampled

        assert client.metrics.log_params(RUN_ID, {"lr": 0.1, "deep": True}) == {
            "lr": "0.1",
            "deep": "true",
        }
        assert client.metrics.params(RUN_ID) == {"lr": "0.1", "deep": "true"}


def test_errors_are_the_servers_classes(server: FakeServer) -> None:
    with TrainyardClient(server.url) as client:
        with pytest.raises(NotFoundError, match="run 99 not found"):
            client.metrics.log_batch(99, [("loss", 1.0, 0, None)])
        with pytest.raises(InvalidInputError, match="invalid"):
            client.metrics.log_batch(RUN_ID, [("bad@key", 1.0, 0, None)])
        with pytest.raises(NotFoundError, match="no metric"):
            client.metrics.history(RUN_ID, "nothing/here")
        client.metrics.log_params(RUN_ID, {"lr": 0.1})
        with pytest.raises(ConflictError):
            client.metrics.log_params(RUN_ID, {"lr": 0.2})
        server.runs[RUN_ID] = "stopped"
        with pytest.raises(ConflictError, match="stopped"):
            client.metrics.log_batch(RUN_ID, [("loss", 1.0, 0, None)])


def test_a_batch_is_encoded_as_plain_json() -> None:
    points: list[MetricPoint | tuple[str, float, int | None, float | None]] = [
        ("loss", 0.1, 3, 1700000000.123),
        ('we"ird/key', 1e-05, None, None),
        ("big", 1e300, -(2**63), 0.0),
        MetricPoint(key="acc", value=1, step=2),
    ]
    body = json.loads(encode_batch(points, "abc"))
    assert body == {
        "batch_id": "abc",
        "points": [
            {"key": "loss", "value": 0.1, "step": 3, "time": 1700000000.123},
            {"key": 'we"ird/key', "value": 1e-05, "step": None, "time": None},
            {"key": "big", "value": 1e300, "step": -(2**63), "time": 0.0},
            {"key": "acc", "value": 1.0, "step": 2, "time": None},
        ],
    }
    assert "batch_id" not in json.loads(encode_batch([], None))
    with pytest.raises(InvalidInputError, match="'loss' at step 4: value nan"):
        encode_batch([("loss", math.nan, 4, None)], None)
