"""Reading stored replica logs: timestamp parsing, whole lines, offsets, bad bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from trainyard.executors.local import LocalExecutor, parse_log_line
from trainyard.executors.local_logs import is_replica_name, read_log_chunk


def test_parse_log_line_reads_the_utc_timestamp() -> None:
    when, text = parse_log_line(b"2026-11-21T20:18:53.123456Z hello world\n")
    assert when == datetime(2026, 11, 21, 20, 18, 53, 123456, tzinfo=UTC)
    assert text == "hello world"


@pytest.mark.parametrize(
    "raw",
    [
        b"no timestamp at all",
        b"2026-11-21T20:18:53Z missing micros",
        b"2026-13-41T20:18:53.123456Z impossible date",
        b"",
    ],
)
def test_parse_log_line_without_a_valid_timestamp_keeps_the_text(raw: bytes) -> None:
    when, text = parse_log_line(raw)
    assert when is None
    assert text == raw.decode()


def test_parse_log_line_replaces_bad_bytes() -> None:
    when, text = parse_log_line(b"2026-11-21T20:18:53.000001Z caf\xc3 \xff\xfe end")
    assert when is not None
    assert text == "caf\ufffd \ufffd\ufffd end"


def write_log(path: Path, lines: list[bytes], tail: bytes = b"") -> list[int]:
    """Write lines with timestamps; return the offset of each line."""
    offsets, data = [], b""
    for i, line in enumerate(lines):
        offsets.append(len(data))
        data += b"2026-01-02T03:04:%02d.000000Z " % (i % 60) + line + b"\n"
    path.write_bytes(data + tail)
    return offsets


def test_read_in_small_chunks_returns_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "worker-0.log"
    lines = [f"line {i} ".encode() * (i % 7 + 1) for i in range(100)]
    offsets = write_log(log, lines)
    got, offset = [], 0
    while True:
        chunk = read_log_chunk(log, "worker-0", offset, max_bytes=200)
        if not chunk.lines:
            break
        for line in chunk.lines:
            assert line.replica == "worker-0"
            assert line.end > line.offset
        got.extend(chunk.lines)
        offset = chunk.next_offset
    assert [line.text.encode() for line in got] == lines
    assert [line.offset for line in got] == offsets
    assert offset == chunk.size == log.stat().st_size


def test_a_line_longer_than_max_bytes_is_returned_whole(tmp_path: Path) -> None:
    log = tmp_path / "w-0.log"
    write_log(log, [b"x" * 5000, b"short"])
    chunk = read_log_chunk(log, "w-0", 0, max_bytes=10)
    assert [len(line.text) for line in chunk.lines] == [5000]
    chunk = read_log_chunk(log, "w-0", chunk.next_offset, max_bytes=10)
    assert [line.text for line in chunk.lines] == ["short"]


def test_a_partial_last_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "w-0.log"
    write_log(log, [b"done"], tail=b"2026-01-02T03:04:05.000000Z still writ")
    chunk = read_log_chunk(log, "w-0", 0, max_bytes=1 << 20)
    assert [line.text for line in chunk.lines] == ["done"]
    again = read_log_chunk(log, "w-0", chunk.next_offset, max_bytes=1 << 20)
    assert again.lines == [] and again.next_offset == chunk.next_offset
    assert again.size == log.stat().st_size


def test_an_offset_inside_a_line_moves_to_the_next_line(tmp_path: Path) -> None:
    log = tmp_path / "w-0.log"
    offsets = write_log(log, [b"first", b"second", b"third"])
    chunk = read_log_chunk(log, "w-0", offsets[1] + 3, max_bytes=1 << 20)
    assert [line.text for line in chunk.lines] == ["third"]
    assert chunk.lines[0].offset == offsets[2]


def test_offsets_past_the_end_or_negative(tmp_path: Path) -> None:
    log = tmp_path / "w-0.log"
    write_log(log, [b"a", b"b"])
    size = log.stat().st_size
    past = read_log_chunk(log, "w-0", size + 100, max_bytes=100)
    assert past.lines == [] and past.size == size
    negative = read_log_chunk(log, "w-0", -5, max_bytes=1 << 20)
    assert [line.text for line in negative.lines] == ["a", "b"]


def test_a_missing_log_is_an_empty_chunk(tmp_path: Path) -> None:
    chunk = read_log_chunk(tmp_path / "nope.log", "nope-0", 0, 100)
    assert (chunk.lines, chunk.next_offset, chunk.size) == ([], 0, 0)


@pytest.mark.parametrize("name", ["worker-0", "ps-12", "a-b-c-3", "x-0"])
def test_replica_names(name: str) -> None:
    assert is_replica_name(name)


@pytest.mark.parametrize(
    "name", ["../worker-0", "worker", "worker-0/../../x", "Worker-0", "-0", "w-0\x00", "w-0.log"]
)
def test_names_that_are_not_replicas(name: str) -> None:
    assert not is_replica_name(name)


def test_read_logs_refuses_path_like_replica_names(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    secret = tmp_path / "runs" / "7" / "secret-0.log"
    secret.parent.mkdir(parents=True)
    write_log(secret, [b"do not show"])
    for name in ("../secret-0", "logs/../../secret-0", "/etc/passwd"):
        assert executor.read_logs(7, name).lines == []
    assert executor.log_replicas(7) == []
