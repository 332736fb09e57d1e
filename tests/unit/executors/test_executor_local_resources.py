"""Reading ``resources.jsonl``: whole lines only, offsets that resume exactly, damaged lines
skipped and counted (and logged once per run), a line still being written left for later."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from trainyard.executors.base import ResourceSample
from trainyard.executors.local import LocalExecutor
from trainyard.executors.local_resources import parse_resource_line, read_resource_chunk


def line(replica: str = "worker-0", seq: int = 0, **values: float) -> bytes:
    record = {"replica": replica, "seq": seq, "time": 1000.0 + seq, "values": values}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def test_samples_come_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "resources.jsonl"
    data = line("worker-0", 0, cpu_percent=150.5, memory_mb=12.25) + line(
        "ps-0", 0, cpu_percent=1.0, memory_mb=3.0, **{"gpu/0/power_w": 250.0}
    )
    path.write_bytes(data)
    chunk = read_resource_chunk(path, 0)
    assert chunk.samples == [
        ResourceSample("worker-0", 0, 1000.0, {"cpu_percent": 150.5, "memory_mb": 12.25}),
        ResourceSample(
            "ps-0", 0, 1000.0, {"cpu_percent": 1.0, "memory_mb": 3.0, "gpu/0/power_w": 250.0}
        ),
    ]
    assert (chunk.next_offset, chunk.skipped) == (len(data), 0)
    # At the end: nothing more, the offset stays.
    again = read_resource_chunk(path, chunk.next_offset)
    assert (again.samples, again.next_offset, again.skipped) == ([], len(data), 0)


def test_a_torn_last_line_is_not_consumed_until_it_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "resources.jsonl"
    whole = line(seq=0, cpu_percent=1.0)
    torn = line(seq=1, cpu_percent=2.0)
    path.write_bytes(whole + torn[:17])
    chunk = read_resource_chunk(path, 0)
    assert [s.seq for s in chunk.samples] == [0]
    assert chunk.next_offset == len(whole) and chunk.skipped == 0
    # Reading again from there finds only the torn line: nothing, and the offset stays.
    assert read_resource_chunk(path, chunk.next_offset).next_offset == len(whole)
    with path.open("ab") as f:  # the writer finishes the line
        f.write(torn[17:])
    rest = read_resource_chunk(path, chunk.next_offset)
    assert [s.seq for s in rest.samples] == [1]
    assert rest.next_offset == len(whole) + len(torn)


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"replica": "worker-0", "seq": 1, "time": 1.0}',  # no values
        b'{"replica": "../../etc", "seq": 1, "time": 1.0, "values": {}}',
        b'{"replica": "worker-0", "seq": -1, "time": 1.0, "values": {}}',
        b'{"replica": "worker-0", "seq": 1.5, "time": 1.0, "values": {}}',
        b'{"replica": "worker-0", "seq": 99999999999999999999, "time": 1.0, "values": {}}',
        b'{"replica": "worker-0", "seq": 1, "time": NaN, "values": {}}',
        b'{"replica": "worker-0", "seq": 1, "time": true, "values": {}}',
        b"\xff\xfe\x00 binary",
    ],
    ids=[
        "text",
        "list",
        "no-values",
        "path-replica",
        "negative-seq",
        "float-seq",
        "huge-seq",
        "nan-time",
        "bool-time",
        "binary",
    ],
)
def test_a_damaged_line_is_skipped_and_counted(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "resources.jsonl"
    data = line(seq=0, cpu_percent=1.0) + garbage + b"\n" + line(seq=2, cpu_percent=3.0)
    path.write_bytes(data)
    chunk = read_resource_chunk(path, 0)
    assert [s.seq for s in chunk.samples] == [0, 2]
    assert (chunk.skipped, chunk.next_offset) == (1, len(data))


def test_values_that_are_not_finite_numbers_are_left_out() -> None:
    raw = b'{"replica":"w-0","seq":3,"time":5,"values":{"a":1,"b":NaN,"c":"x","d":true,"e":2.5}}'
    assert parse_resource_line(raw) == ResourceSample("w-0", 3, 5.0, {"a": 1.0, "e": 2.5})


def test_offsets_resume_exactly_across_small_reads(tmp_path: Path) -> None:
    """Reading a bounded amount at a time, resuming from each next_offset, gives every
    sample once, in order, whatever the bound."""
    path = tmp_path / "resources.jsonl"
    data = b"".join(line(f"worker-{i % 3}", i, cpu_percent=float(i)) for i in range(200))
    path.write_bytes(data)
    for max_bytes in (120, 500, 4096):
        seen: list[int] = []
        offset, calls = 0, 0
        while True:
            chunk = read_resource_chunk(path, offset, max_bytes)
            if chunk.next_offset == offset:
                break
            seen.extend(s.seq for s in chunk.samples)
            offset, calls = chunk.next_offset, calls + 1
        assert seen == list(range(200)), max_bytes
        assert offset == len(data) and calls > 1


def test_a_line_longer_than_a_read_is_skipped_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "resources.jsonl"
    huge = b"x" * 5000 + b"\n"
    data = line(seq=0, cpu_percent=1.0) + huge + line(seq=1, cpu_percent=2.0)
    path.write_bytes(data)
    first = read_resource_chunk(path, 0, 1000)
    assert [s.seq for s in first.samples] == [0] and first.skipped == 0
    skipped = read_resource_chunk(path, first.next_offset, 1000)
    assert (skipped.samples, skipped.skipped) == ([], 1)
    assert skipped.next_offset == len(line(seq=0, cpu_percent=1.0)) + len(huge)
    last = read_resource_chunk(path, skipped.next_offset, 1000)
    assert [s.seq for s in last.samples] == [1] and last.next_offset == len(data)


def test_a_missing_file_or_unknown_run_is_an_empty_chunk(tmp_path: Path) -> None:
    assert read_resource_chunk(tmp_path / "absent.jsonl", 7).next_offset == 7
    executor = LocalExecutor(tmp_path / "runs")
    chunk = executor.read_resources(42, 0)
    assert (chunk.samples, chunk.next_offset, chunk.skipped) == ([], 0, 0)


def test_the_executor_logs_damaged_lines_once_per_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executor = LocalExecutor(tmp_path / "runs")
    run_dir = executor.run_dir(5)
    run_dir.mkdir(parents=True)
    path = run_dir / "resources.jsonl"
    path.write_bytes(line(seq=0, cpu_percent=1.0) + b"garbage\n")
    caplog.set_level(logging.WARNING, logger="trainyard.executors.local")
    first = executor.read_resources(5, 0)
    assert first.skipped == 1 and [s.seq for s in first.samples] == [0]
    with path.open("ab") as f:
        f.write(b"more garbage\n" + line(seq=1, cpu_percent=2.0))
    second = executor.read_resources(5, first.next_offset)
    assert second.skipped == 1 and [s.seq for s in second.samples] == [1]
    warnings: list[Any] = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage() and "run 5" in warnings[0].getMessage()


def test_an_unreadable_file_is_an_executor_error_naming_it(tmp_path: Path) -> None:
    from trainyard.executors.base import ExecutorError

    executor = LocalExecutor(tmp_path / "runs")
    run_dir = executor.run_dir(6)
    (run_dir / "resources.jsonl").mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(ExecutorError, match=r"resource samples of run 6 .*resources\.jsonl"):
        executor.read_resources(6, 0)
