"""Replica output as stored by the supervisor: raw bytes, huge lines, timestamps, offsets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runtime_support import Runs, resource, task

from trainyard.executors.local_logs import CONTINUATION_MARKER
from trainyard.runtime.logsink import LogSink

MIB = 1024 * 1024

BAD_BYTES = """
    import os, sys, time
    out = sys.stdout.buffer
    out.write(b"latin-1 caf\\xe9 and junk \\xff\\xfe\\n")
    out.flush()
    out.write(b"split \\xc3")  # the first byte of "\\u00e9" ...
    out.flush()
    time.sleep(0.2)
    out.write(b"\\xa9 across two writes\\n")  # ... and the second, in another read
    out.write(b"stderr next\\n")
    out.flush()
    os.write(2, b"on stderr \\x80\\n")
    out.write(b"last line without newline")
    out.flush()
"""

HUGE_LINE = """
    import os, sys, time
    chunk = bytes(range(32, 127)) * 1000
    data = (chunk * (10 * 1024 * 1024 // len(chunk) + 1))[: 10 * 1024 * 1024]
    sys.stdout.buffer.write(data)  # 10 MiB, no newline
    sys.stdout.buffer.flush()
    open(os.path.join(os.environ["TRAINYARD_OUTPUT_DIR"], "written"), "w").close()
    time.sleep(600)
"""


def test_non_utf8_output_is_stored_raw_and_read_with_replacements(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "python bad.py")), files={"bad.py": BAD_BYTES})
    assert runs.wait(run).phase == "complete"
    raw = (run.run_dir / "logs" / "worker-0.log").read_bytes()
    stored = [line.split(b" ", 1)[1] for line in raw.splitlines()]
    assert stored == [
        b"latin-1 caf\xe9 and junk \xff\xfe",
        b"split \xc3\xa9 across two writes",
        b"stderr next",
        b"on stderr \x80",
        b"last line without newline",
    ]
    texts = [line.text for line in runs.executor.read_logs(run.run_id, "worker-0").lines]
    assert texts == [
        "latin-1 caf\ufffd and junk \ufffd\ufffd",
        "split \u00e9 across two writes",
        "stderr next",
        "on stderr \ufffd",
        "last line without newline",
    ]


def vm_hwm(pid: int) -> int:
    """Peak resident memory of ``pid`` in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_10_mib_line_is_split_with_markers_and_memory_stays_bounded(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "python huge.py")), files={"huge.py": HUGE_LINE})
    runs.wait(run, {"running"})
    log = run.run_dir / "logs" / "worker-0.log"
    # All but the last MiB is written as soon as it is read; the last piece waits for EOF.
    runs.wait_for(
        lambda: (run.output_dir / "written").exists() and log.stat().st_size >= 9 * MIB,
        "the huge line to be stored",
        timeout=60,
    )
    supervisor = run.state()["supervisor_pid"]
    # The supervisor peaks at ~18 MiB here; holding the line would add 10 MiB and its copies.
    assert vm_hwm(supervisor) < 32 * MIB
    runs.executor.stop(run.run_id, 1.0)
    assert runs.wait(run).phase == "stopped"

    lines, offset = [], 0
    while True:
        chunk = runs.executor.read_logs(run.run_id, "worker-0", offset, max_bytes=256 * 1024)
        if not chunk.lines:
            break
        lines.extend(chunk.lines)
        offset = chunk.next_offset
    assert offset == log.stat().st_size
    assert len(lines) == 10
    assert all(line.text.endswith(CONTINUATION_MARKER) for line in lines[:-1])
    assert not lines[-1].text.endswith(CONTINUATION_MARKER)
    assert all(len(line.text) <= MIB + len(CONTINUATION_MARKER) for line in lines)
    joined = "".join(line.text.removesuffix(CONTINUATION_MARKER) for line in lines)
    chunk_text = bytes(range(32, 127)).decode() * 1000
    expected = (chunk_text * (10 * MIB // len(chunk_text) + 1))[: 10 * MIB]
    assert joined == expected


def test_timestamps_are_utc_and_ordered(runs: Runs) -> None:
    script = """
        import sys, time
        for i in range(200):
            print(f"tick {i}", flush=True)
            if i % 20 == 0:
                print(f"err {i}", file=sys.stderr, flush=True)
                time.sleep(0.01)
    """
    before = datetime.now(UTC)
    run = runs.start(task(resource("worker", "python ticks.py")), files={"ticks.py": script})
    assert runs.wait(run).phase == "complete"
    after = datetime.now(UTC)
    lines = runs.executor.read_logs(run.run_id, "worker-0").lines
    assert [line.text for line in lines if line.text.startswith("tick")] == [
        f"tick {i}" for i in range(200)
    ]
    assert len(lines) == 210
    times = [line.time for line in lines]
    assert all(t is not None and t.tzinfo == UTC for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert before <= times[0] and times[-1] <= after  # type: ignore[operator]
    assert [line.offset for line in lines[1:]] == [line.end for line in lines[:-1]]


def test_log_sink_splits_long_lines_exactly(tmp_path: Path) -> None:
    path = tmp_path / "w-0.log"
    sink = LogSink(str(path), max_line_bytes=1024)
    sink.feed(b"a" * 1024 + b"\n")  # exactly the limit: one line, no marker
    sink.feed(b"b" * 1500)
    sink.feed(b"b" * 600 + b"\nshort\n")
    sink.feed(b"\n")  # an empty line stays an empty line
    sink.feed(b"tail")
    sink.close()
    pieces = [line.split(b" ", 1)[1] for line in path.read_bytes().split(b"\n")[:-1]]
    marker = CONTINUATION_MARKER.encode()
    assert pieces == [
        b"a" * 1024,
        b"b" * 1024 + marker,
        b"b" * 1024 + marker,
        b"b" * 52,
        b"short",
        b"",
        b"tail",
    ]
    assert list(sink.tail)[-2:] == [b"", b"tail"]


def _stored(path: Path) -> list[bytes]:
    return [line.split(b" ", 1)[1] for line in path.read_bytes().split(b"\n")[:-1]]


def test_log_sink_quota_bounds_the_file_and_counts_every_dropped_byte(tmp_path: Path) -> None:
    path = tmp_path / "worker-3.log"
    problems: list[tuple[str, str]] = []
    sink = LogSink(
        str(path),
        max_line_bytes=1024,
        quota_bytes=4096,
        replica="worker-3",
        on_problem=lambda replica, message: problems.append((replica, message)),
    )
    fed = 0
    for i in range(100):
        data = f"line {i:03d} ".encode() * 5 + b"\n"
        sink.feed(data)
        fed += len(data)
    sink.feed(b"z" * 5000)  # one long line without a newline, all of it over the quota
    sink.feed(b" end\nlast")
    fed += 5000 + len(b" end\nlast")
    sink.close()
    size = path.stat().st_size
    assert size <= 4096
    *kept, marker = _stored(path)
    message = (
        "log quota of 4Ki reached for worker-3: further output is dropped "
        "(set TRAINYARD_RUNS__LOG_QUOTA_BYTES to change it)"
    )
    assert marker == b"[trainyard] " + message.encode()
    assert kept == [f"line {i:03d} ".encode() * 5 for i in range(len(kept))]
    assert (sink.size, sink.quota_reached) == (size, True)
    assert sink.dropped_bytes == fed - sum(len(k) + 1 for k in kept)
    assert problems == [("worker-3", message)]
    # The tail still tells how the output ended.
    assert sink.tail_lines()[-2:] == [b"z" * 2000, b"last"]


def test_log_sink_without_room_for_its_own_first_line(tmp_path: Path) -> None:
    path = tmp_path / "w-0.log"
    sink = LogSink(str(path), max_line_bytes=4096, quota_bytes=1024)
    sink.feed(b"y" * 3000 + b"\n")
    sink.close()
    assert _stored(path) == [b"[trainyard] " + sink.quota_message.encode()]
    assert sink.dropped_bytes == 3001 and path.stat().st_size <= 1024


def test_log_sink_write_error_is_reported_once_and_output_keeps_draining(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ps-0.log"
    path.symlink_to("/dev/full")  # every write fails with ENOSPC
    problems: list[tuple[str, str]] = []
    sink = LogSink(str(path), max_line_bytes=1024, on_problem=lambda r, m: problems.append((r, m)))
    sink.feed(b"first\nsecond\npartial")
    for _ in range(100):
        sink.feed(b"more output\n")
    sink.close()
    assert sink.error == "No space left on device (ps-0.log)"
    assert sink.dropped_bytes == len(b"first\nsecond\npartial") + 100 * len(b"more output\n")
    assert sink.size == 0
    assert len(problems) == 1
    replica, message = problems[0]
    assert replica == "ps-0"
    assert message.startswith("cannot write the log of ps-0: No space left on device (errno 28")
    assert sink.tail_lines()[-1] == b"more output"
