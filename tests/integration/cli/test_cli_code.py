"""What `trainyard run` sends with a run: its code snapshot, git facts, name and parameters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from cli_support import RunCli, run_cli_process, write_task

LIST_FILES = """\
name: {name}
resources:
  - name: worker
    replicas: 1
    command: python list_files.py
"""
LIST_FILES_PY = """\
import os
for root, dirs, files in os.walk("."):
    dirs.sort()
    for name in sorted(files):
        print(os.path.relpath(os.path.join(root, name), "."), flush=True)
"""


def logged_files(stdout: str) -> set[str]:
    return {line.split(" | ", 1)[1] for line in stdout.splitlines() if " | " in line}


def test_ignore_files_are_honoured(live_cli: RunCli, tmp_path: Path) -> None:
    code = tmp_path / "ignored"
    write_task(
        code,
        LIST_FILES.format(name="ignored"),
        {
            "list_files.py": LIST_FILES_PY,
            ".gitignore": "*.log\n__pycache__/\n",
            ".trainyardignore": "data/\n!keep.log\n",
            "keep.log": "kept",
            "drop.log": "dropped",
            "data/big.csv": "1,2,3",
            "pkg/model.py": "x = 1",
            "pkg/.gitignore": "*.tmp\n",
            "pkg/scratch.tmp": "scratch",
        },
    )
    result = live_cli("run", str(code / "task.yaml"), "--wait")
    assert result.code == 0, result.stderr
    assert logged_files(result.stdout) == {
        ".gitignore",
        ".trainyardignore",
        "keep.log",
        "list_files.py",
        "pkg/.gitignore",
        "pkg/model.py",
        "task.yaml",
    }


def test_no_code_sends_no_snapshot(live_cli: RunCli, tmp_path: Path) -> None:
    code = tmp_path / "nocode"
    write_task(code, LIST_FILES.format(name="nocode"), {"list_files.py": LIST_FILES_PY})
    result = live_cli("run", str(code / "task.yaml"), "--no-code", "--json")
    assert result.code == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["snapshot_id"] is None and run["git"] is None and run["status"] == "queued"


def test_snapshot_over_the_limit_is_refused_before_submitting(
    online_env: dict[str, str], tmp_path: Path
) -> None:
    code = tmp_path / "toobig"
    write_task(code, LIST_FILES.format(name="toobig"), {"list_files.py": LIST_FILES_PY})
    (code / "weights.bin").write_bytes(os.urandom(200_000))
    env = {**online_env, "TRAINYARD_RUNS__SNAPSHOT_MAX_BYTES": "50000"}
    result = run_cli_process("run", str(code / "task.yaml"), env=env)
    assert result.code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the code snapshot of {code} is over the 48.8 KiB limit")
    assert "weights.bin (195.3 KiB)" in line and ".trainyardignore" in line
    listed = run_cli_process("ps", "--all", "--json", env=online_env)
    assert "default/toobig#" not in listed.stdout, "nothing was submitted"


def test_git_branch_commit_and_dirty_flag_are_recorded(live_cli: RunCli, tmp_path: Path) -> None:
    assert shutil.which("git"), "this test needs the git command: apt-get install git"
    repo = tmp_path / "repo"
    manifest = write_task(
        repo / "tasks" / "gitted",
        LIST_FILES.format(name="gitted"),
        {"list_files.py": LIST_FILES_PY},
    )

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "exp/lr-sweep")
    git("add", ".")
    git("commit", "-q", "-m", "task")
    commit = git("rev-parse", "HEAD")
    clean = json.loads(live_cli("run", str(manifest), "--json").stdout)
    assert clean["git"] == {
        "branch": "exp/lr-sweep",
        "commit": commit,
        "dirty": False,
        "remote": None,
    }
    (repo / "notes.txt").write_text("untracked")
    dirty = json.loads(live_cli("run", str(manifest), "--json").stdout)
    assert dirty["git"]["dirty"] is True and dirty["git"]["commit"] == commit
    described = live_cli("describe", dirty["ref"])
    assert f"exp/lr-sweep {commit} (dirty)" in described.stdout


def test_name_override_and_parameters(live_cli: RunCli, tmp_path: Path) -> None:
    code = tmp_path / "named"
    write_task(
        code,
        "name: named\nresources:\n  - name: worker\n    command: echo {{ .greeting }} {{ .n }}\n"
        "parameters:\n  - name: n\n    type: int\n    default: 1\n",
    )
    result = live_cli(
        "run",
        str(code / "task.yaml"),
        "--name",
        "renamed",
        "-p",
        "greeting=hi",
        "-p",
        "n=7",
        "--wait",
    )
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("submitted default/renamed#1 ")
    assert "worker-0 | hi 7" in result.stdout
    run = json.loads(live_cli("describe", "default/renamed#1", "--json").stdout)
    assert run["parameters"] == {"n": 7, "greeting": "hi"}
    bad = live_cli("run", str(code / "task.yaml"), "--name", "Bad_Name")
    assert bad.code == 2 and "not a valid task name" in bad.stderr
    missing = live_cli("run", str(code / "task.yaml"))
    assert missing.code == 1 and "greeting" in missing.stderr


def test_project_option_and_unknown_project(live_cli: RunCli, tmp_path: Path) -> None:
    code = tmp_path / "proj"
    write_task(code, "name: in-proj\nresources:\n  - name: worker\n    command: echo ok\n")
    assert live_cli("project", "create", "vision", "--summary", "Image *models*").code == 0
    result = live_cli("run", str(code / "task.yaml"), "--project", "vision", "--wait")
    assert result.code == 0, result.stderr
    assert "submitted vision/in-proj#1" in result.stdout
    missing = live_cli("run", str(code / "task.yaml"), "--project", "nope", "--no-code")
    assert missing.code == 1 and "project 'nope'" in missing.stderr
    tasks = live_cli("task", "ls", "--project", "vision")
    assert tasks.code == 0 and "in-proj" in tasks.stdout
    shown = live_cli("project", "show", "vision")
    assert "Image *models*" in shown.stdout and "in-proj" in shown.stdout
    listed = json.loads(live_cli("project", "ls", "--json").stdout)
    assert {p["name"] for p in listed} >= {"default", "vision"}
    again = live_cli("project", "create", "vision")
    assert again.code == 1 and "already exists" in again.stderr
    bad = live_cli("project", "create", "Not Valid")
    assert bad.code == 1 and bad.stderr.startswith("error: ")


AICHOR_KUBERAY = """\
kind: AIchorManifest
apiVersion: 0.2.1
builder:
  image: img
  dockerfile: ./Dockerfile
  context: .
spec:
  operator: kuberay
  image: img
  command: "python train.py"
  types:
    Head:
      resources:
        cpus: 1
        ramRatio: 2
    Workers:
      - name: "cpu-workers"
        count: 1
        resources:
          cpus: 1
          ramRatio: 2
"""


def test_kuberay_manifest_is_refused_with_what_is_missing(live_cli: RunCli, tmp_path: Path) -> None:
    code = tmp_path / "ray-exp"
    write_task(code, AICHOR_KUBERAY)
    assert (
        live_cli("validate", str(code / "task.yaml"))
        .stdout.strip()
        .endswith("ok (aichor format, task 'ray-exp', 2 replicas in 2 resources)")
    )
    result = live_cli("run", str(code / "task.yaml"), "--no-code")
    assert result.code == 1
    assert "kuberay" in result.stderr and "Ray" in result.stderr
