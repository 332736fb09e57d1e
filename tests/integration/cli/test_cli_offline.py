"""The CLI without a server: validate, usage errors, exit codes, an unreachable server, imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_support import RunCli

GOOD = """\
name: demo
resources:
  - name: ps
    replicas: 1
    command: python ps.py
  - name: worker
    replicas: 2
    command: python worker.py --steps {{ .steps }}
parameters:
  - name: steps
    type: int
    default: 10
"""

BAD = """\
name: demo
resources:
  - name: worker
    replicas: 0
    comand: python train.py
"""


def write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_validate_ok_summarises_the_task(cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = cli("validate", str(path))
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == (
        f"{path}: ok (trainyard format, task 'demo', 3 replicas in 2 resources)"
    )


def test_validate_says_a_kuberay_manifest_will_be_refused(cli: RunCli) -> None:
    seed = Path(__file__).parents[2] / "unit" / "manifest" / "fixtures" / "aichor-seed.yaml"
    result = cli("validate", str(seed))
    assert result.code == 0
    assert "ok (aichor format" in result.stdout
    assert "operator 'kuberay' needs the Ray backend" in result.stderr
    assert "`trainyard run` will refuse" in result.stderr


def test_validate_reports_every_issue_at_line_and_column(cli: RunCli, tmp_path: Path) -> None:
    write(tmp_path, BAD)
    result = cli("validate", "task.yaml", cwd=tmp_path)
    assert result.code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("task.yaml:4:15: resources[0].replicas: ") for line in lines)
    assert any(line.startswith("task.yaml:5:5: resources[0].comand: ") for line in lines)
    assert "did you mean 'command'" in result.stderr


def test_validate_checks_parameters(cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert cli("validate", str(path), "--param", "steps=5").code == 0
    bad_type = cli("validate", str(path), "--param", "steps=many")
    assert bad_type.code == 1
    assert bad_type.stderr.startswith("error: ") and "steps" in bad_type.stderr
    unknown = cli("validate", str(path), "-p", "stesp=5")
    assert unknown.code == 1 and "stesp" in unknown.stderr
    malformed = cli("validate", str(path), "-p", "steps")
    assert malformed.code == 1 and "NAME=VALUE" in malformed.stderr


def test_validate_missing_file_and_directory(cli: RunCli, tmp_path: Path) -> None:
    missing = cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.code == 1
    assert missing.stderr.startswith("error: cannot read") and "nope.yaml" in missing.stderr
    directory = cli("validate", str(tmp_path))
    assert directory.code == 1 and "is a directory" in directory.stderr


def test_validate_refuses_yaml_object_tags(cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system ['touch pwned']\n")
    result = cli("validate", str(path))
    assert result.code == 1 and "task.yaml:1:" in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_usage_errors_exit_2(cli: RunCli) -> None:
    assert cli("logs").code == 2
    assert cli("ps", "--no-such-flag").code == 2
    assert cli("no-such-command").code == 2
    status = cli("ps", "--status", "running,bogus")
    assert status.code == 2 and "bogus" in status.stderr and "queued" in status.stderr


def test_malformed_run_reference_is_a_usage_error_naming_the_forms(cli: RunCli) -> None:
    for command in ("logs", "describe", "stop"):
        result = cli(command, "default/train-3")
        assert result.code == 2, command
        assert "'default/train-3' is not a run reference" in result.stderr
        assert "42" in result.stderr and "project/task#" in result.stderr


def test_unreachable_server_names_the_url(cli: RunCli, offline_env: dict[str, str]) -> None:
    url = offline_env["TRAINYARD_SERVER_URL"]
    for args in (("ps",), ("describe", "1"), ("project", "ls")):
        result = cli(*args)
        assert result.code == 1, args
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: cannot reach the trainyard server at " + url)
        assert "trainyard server" in line and "TRAINYARD_SERVER_URL" in line


def test_run_with_explicit_unreachable_url_does_not_start_a_server(
    cli: RunCli, offline_env: dict[str, str], tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    path = write(code, GOOD)
    result = cli("run", str(path))
    assert result.code == 1
    assert offline_env["TRAINYARD_SERVER_URL"] in result.stderr
    assert "started one in the background" not in result.stderr
    assert not (tmp_path / ".trainyard" / "server.log").exists()


def test_run_validates_before_contacting_the_server(cli: RunCli, tmp_path: Path) -> None:
    write(tmp_path, BAD)
    result = cli("run", "task.yaml", cwd=tmp_path)
    assert result.code == 1
    assert "task.yaml:4:15" in result.stderr
    assert "cannot reach" not in result.stderr


def test_debug_shows_the_traceback(cli: RunCli) -> None:
    plain = cli("ps")
    assert "Traceback" not in plain.stderr
    debug = cli("--debug", "ps")
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ServerUnreachableError" in debug.stderr


def test_server_flag_overrides_the_environment(cli: RunCli, offline_env: dict[str, str]) -> None:
    result = cli("--server", "http://127.0.0.1:9/", "ps")
    assert result.code == 1 and "at http://127.0.0.1:9:" in result.stderr


def test_version(cli: RunCli) -> None:
    result = cli("--version")
    assert result.code == 0 and result.stdout.strip() == "trainyard 0.1.0"


def test_importing_the_cli_does_not_import_the_server_stack() -> None:
    code = (
        "import sys, trainyard.cli.main, trainyard.client;"
        "heavy = {'fastapi', 'sqlalchemy', 'uvicorn', 'starlette', 'alembic', 'trainyard.server'};"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
