"""The server-sent-events parser of the log stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from trainyard.client import LogEntry, StatusChange, StreamEnd
from trainyard.client.logs import parse_sse
from trainyard.core.status import RunStatus


def items(text: str) -> list[object]:
    return [i for i in parse_sse(text.splitlines()) if not type(i).__name__.startswith("_")]


def test_log_status_and_end_events_are_decoded() -> None:
    stream = (
        "event: status\n"
        'data: {"status": "running", "reason": ""}\n'
        "\n"
        ": keepalive\n"
        "\n"
        "event: log\n"
        'data: {"time": "2024-05-01T12:00:00.5Z", "replica": "worker-1", "text": "step 1",'
        ' "cursor": "c1"}\n'
        "\n"
        "event: end\n"
        'data: {"status": "complete"}\n'
        "\n"
    )
    assert items(stream) == [
        StatusChange(RunStatus.RUNNING, ""),
        LogEntry(
            time=datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
            replica="worker-1",
            text="step 1",
            cursor="c1",
        ),
        StreamEnd(RunStatus.COMPLETE),
    ]


def test_crlf_multiline_data_and_no_space_after_colon() -> None:
    stream = 'event:log\r\ndata:{"replica": "ps-0",\r\ndata: "text": "a"}\r\n\r\n'
    assert items(stream) == [LogEntry(time=None, replica="ps-0", text="a", cursor=None)]


def test_unknown_events_garbage_and_bad_statuses_are_skipped() -> None:
    stream = (
        "event: metrics\ndata: {}\n\n"
        "event: log\ndata: not json\n\n"
        'event: status\ndata: {"status": "exploded"}\n\n'
        "event: log\ndata: [1, 2]\n\n"
        "id: 5\nretry: 100\n\n"
        'event: end\ndata: {"status": "error"}\n\n'
    )
    assert items(stream) == [StreamEnd(RunStatus.ERROR)]


def test_text_is_kept_verbatim() -> None:
    weird = "tab\there \\u0000 {{ .x }} <b>☃</b> \ufffd"
    stream = "event: log\ndata: " + json.dumps({"replica": "w-0", "text": weird}) + "\n\n"
    [entry] = items(stream)
    assert isinstance(entry, LogEntry) and entry.text == weird


def test_event_without_trailing_blank_line_is_not_dispatched() -> None:
    # A connection cut mid-event must not yield half an event.
    assert items('event: log\ndata: {"replica": "w-0", "text": "partial"}\n') == []
