"""Git facts recorded with a snapshot, read from real repositories with the git command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from trainyard.client import git_info, make_snapshot


@pytest.fixture(autouse=True)
def _git_is_installed() -> None:
    assert shutil.which("git"), "these tests need the git command: apt-get install git"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "feature/x")
    (root / "task.yaml").write_text("name: t\n")
    (root / "sub").mkdir()
    (root / "sub" / "train.py").write_text("print(1)\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_clean_checkout_records_branch_and_full_commit(repo: Path) -> None:
    info = git_info(repo)
    assert info is not None
    assert info.branch == "feature/x"
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert len(info.commit or "") == 40
    assert info.dirty is False
    assert info.remote is None


def test_subdirectory_of_a_checkout_is_recognised(repo: Path) -> None:
    info = git_info(repo / "sub")
    assert info is not None and info.commit == git(repo, "rev-parse", "HEAD")


def test_modified_and_untracked_files_make_it_dirty(repo: Path) -> None:
    (repo / "sub" / "train.py").write_text("print(2)\n")
    info = git_info(repo)
    assert info is not None and info.dirty is True
    git(repo, "checkout", "-q", "--", ".")
    assert (git_info(repo) or pytest.fail("not a repo")).dirty is False
    (repo / "new.txt").write_text("untracked\n")
    assert (git_info(repo) or pytest.fail("not a repo")).dirty is True


def test_detached_head_has_no_branch(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach", commit)
    info = git_info(repo)
    assert info is not None and info.branch is None and info.commit == commit


def test_repository_without_commits_has_no_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    info = git_info(tmp_path)
    assert info is not None and info.commit is None and info.branch == "main"


def test_remote_credentials_are_never_recorded(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://alice:s3cret@git.example.com/team/repo.git")
    info = git_info(repo)
    assert info is not None and info.remote == "https://git.example.com/team/repo.git"


def test_not_a_repository_gives_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    # GIT_CEILING_DIRECTORIES is not needed: tmp_path is not inside a checkout.
    assert git_info(plain) is None


def test_snapshot_carries_the_git_facts(repo: Path) -> None:
    (repo / "sub" / "train.py").write_text("print(3)\n")
    with make_snapshot(repo, 1 << 20) as archive:
        assert archive.git is not None
        assert archive.git.branch == "feature/x" and archive.git.dirty is True
