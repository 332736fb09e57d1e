"""The supervisor's start-up is on the submit -> running path: it must stay lean."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_supervisor_imports_only_the_standard_library() -> None:
    probe = (
        "import sys, json; import trainyard.runtime.__main__, trainyard.runtime.supervisor;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(json.loads(done.stdout))
    heavy = {
        m
        for m in modules
        if m.split(".")[0] in {"pydantic", "psutil", "typing_extensions", "yaml", "subprocess"}
        or m.startswith(("trainyard.core", "trainyard.executors", "trainyard.manifest"))
    }
    assert heavy == set()
    assert "typing" not in modules and "dataclasses" not in modules
