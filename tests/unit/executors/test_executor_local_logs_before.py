"""Reading a stored replica log backwards: whole lines ending before a byte offset."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.executors import local_logs
from trainyard.executors.local import LocalExecutor
from trainyard.executors.local_logs import (
    CONTINUATION_MARKER,
    read_log_chunk,
    read_log_lines_before,
)

STAMP = b"2026-11-21T20:18:53.000001Z "


def write_lines(path: Path, texts: list[bytes]) -> list[int]:
    """Write stamped lines; the offset of each one."""
    offsets: list[int] = []
    data = bytearray()
    for text in texts:
        offsets.append(len(data))
        data += STAMP + text + b"\n"
    path.write_bytes(bytes(data))
    return offsets


def page_back(path: Path, max_lines: int, max_bytes: int = 16 << 20) -> list[str]:
    """Every line, read backwards page by page from the end; file order."""
    before = path.stat().st_size
    pages: list[list[str]] = []
    while True:
        chunk = read_log_lines_before(path, "worker-0", before, max_lines, max_bytes)
        if not chunk.lines:
            break
        assert chunk.next_offset == chunk.lines[0].offset < before
        pages.append([line.text for line in chunk.lines])
        before = chunk.next_offset
        if before == 0:
            break
    return [text for page in reversed(pages) for text in page]


def test_lines_across_block_boundaries_come_back_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    texts = [f"line {i:06d} ".encode() + b"x" * (i % 97) for i in range(20_000)]
    offsets = write_lines(path, texts)
    assert path.stat().st_size > 10 * local_logs._BACK_BLOCK
    assert page_back(path, 777) == [t.decode() for t in texts]
    # One page: the lines just before an offset, with their own offsets.
    chunk = read_log_lines_before(path, "worker-0", offsets[15_000], 3)
    assert [line.text for line in chunk.lines] == [t.decode() for t in texts[14_997:15_000]]
    assert [line.offset for line in chunk.lines] == offsets[14_997:15_000]
    assert chunk.lines[-1].end == offsets[15_000]
    assert chunk.next_offset == offsets[14_997]
    assert chunk.lines[0].time is not None


def test_offset_inside_a_line_or_past_a_partial_last_line_moves_to_its_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker-0.log"
    offsets = write_lines(path, [b"one", b"two", b"three"])
    chunk = read_log_lines_before(path, "worker-0", offsets[2] + 5, 10)
    assert [line.text for line in chunk.lines] == ["one", "two"]
    with path.open("ab") as f:
        f.write(STAMP + b"half written")  # no newline yet
    chunk = read_log_lines_before(path, "worker-0", 1 << 40, 10)
    assert [line.text for line in chunk.lines] == ["one", "two", "three"]
    assert chunk.next_offset == 0


def test_a_long_line_split_with_the_continuation_marker_comes_back_in_pieces(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker-0.log"
    marker = CONTINUATION_MARKER.encode()
    pieces = [b"a" * 150_000 + marker, b"b" * 150_000 + marker, b"c" * 10]
    write_lines(path, [b"before", *pieces, b"after"])
    chunk = read_log_lines_before(path, "worker-0", path.stat().st_size, 3)
    assert [line.text for line in chunk.lines] == [pieces[1].decode(), pieces[2].decode(), "after"]
    assert chunk.lines[0].text.endswith(CONTINUATION_MARKER)
    assert page_back(path, 2) == ["before", *(p.decode() for p in pieces), "after"]
    # A byte budget smaller than one line still returns that line whole.
    chunk = read_log_lines_before(path, "worker-0", chunk.lines[0].offset, 10, max_bytes=100)
    assert [line.text for line in chunk.lines] == [pieces[0].decode()]


def test_non_utf8_bytes_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    write_lines(path, [b"caf\xc3", b"\xff\xfe ok"])
    chunk = read_log_lines_before(path, "worker-0", path.stat().st_size, 10)
    assert [line.text for line in chunk.lines] == ["caf\ufffd", "\ufffd\ufffd ok"]


def test_empty_missing_file_and_offset_zero_give_no_lines(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    assert read_log_lines_before(path, "worker-0", 100, 10).lines == []
    path.write_bytes(b"")
    chunk = read_log_lines_before(path, "worker-0", 100, 10)
    assert (chunk.lines, chunk.next_offset, chunk.size) == ([], 0, 0)
    write_lines(path, [b"one"])
    chunk = read_log_lines_before(path, "worker-0", 0, 10)
    assert (chunk.lines, chunk.next_offset) == ([], 0)
    assert read_log_lines_before(path, "worker-0", 100, 0).lines == []


def test_a_line_without_a_timestamp_keeps_its_text(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    path.write_bytes(b"no stamp\n" + STAMP + b"stamped\n")
    chunk = read_log_lines_before(path, "worker-0", path.stat().st_size, 10)
    assert [(line.time is None, line.text) for line in chunk.lines] == [
        (True, "no stamp"),
        (False, "stamped"),
    ]


def test_forward_and_backward_reads_agree(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    write_lines(path, [f"{i}".encode() * (i % 13 + 1) for i in range(3000)])
    forward = read_log_chunk(path, "worker-0", 0, 1 << 30).lines
    backward = read_log_lines_before(path, "worker-0", path.stat().st_size, 5000).lines
    assert backward == forward


@pytest.mark.parametrize("replica", ["../etc", "worker"])
def test_local_executor_refuses_names_that_are_not_replicas(tmp_path: Path, replica: str) -> None:
    executor = LocalExecutor(tmp_path)
    chunk = executor.read_logs_before(1, replica, 100, 10)
    assert (chunk.lines, chunk.next_offset) == ([], 0)
