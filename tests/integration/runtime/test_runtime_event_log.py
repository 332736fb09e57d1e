"""``events.jsonl`` when the disk refuses a write: nothing lost, nothing torn."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# Runs in its own process: RLIMIT_FSIZE makes writes past 300 bytes fail (EFBIG) after a
# short write, as a disk filling up in the middle of a line would. Python ignores SIGXFSZ.
CUT_SHORT = """
    import resource, sys
    from trainyard.runtime.files import EventLog
    events = EventLog(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, hard))
    for i in range(5):
        events.add("info", f"event {i} " + "x" * 40)
    try:
        events.flush()
    except OSError as exc:
        print("refused:", exc.strerror)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    events.add("info", "after the disk came back")
    events.flush()
    events.close()
"""


def test_an_event_write_cut_short_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CUT_SHORT), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stdout.strip() == "refused: File too large"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["message"] for r in records][-1] == "after the disk came back"
    assert records[0]["message"] == "event 0 " + "x" * 40
