"""Code snapshots: ignore files, links, determinism, the size limit."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from trainyard.client import IGNORE_FILE, make_snapshot
from trainyard.core.errors import InvalidInputError, PayloadTooLargeError

LIMIT = 50 * 1024 * 1024


def write(root: Path, rel: str, content: str | bytes = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def members(archive_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive_path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def file_names(archive_path: Path) -> set[str]:
    return {name for name, m in members(archive_path).items() if m.isfile()}


def read_member(archive_path: Path, name: str) -> bytes:
    with tarfile.open(archive_path, "r:gz") as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


def test_snapshot_holds_every_file_and_directory(tmp_path: Path) -> None:
    write(tmp_path, "task.yaml", "name: t\n")
    write(tmp_path, "src/train.py", "print('hi')\n")
    (tmp_path / "empty").mkdir()
    with make_snapshot(tmp_path, LIMIT) as archive:
        found = members(archive.path)
        assert set(found) == {"task.yaml", "src", "src/train.py", "empty"}
        assert found["src"].isdir() and found["empty"].isdir()
        assert read_member(archive.path, "src/train.py") == b"print('hi')\n"
        assert archive.files == 2
        assert archive.size == archive.path.stat().st_size
        path = archive.path
    assert not path.exists(), "the context manager removes the temporary archive"


def test_gitignore_rules_apply_with_git_precedence(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\nbuild/\n/top-only.txt\n!keep.log\ndata\n")
    write(tmp_path, "a.log")
    write(tmp_path, "keep.log")
    write(tmp_path, "build/out.bin")
    write(tmp_path, "top-only.txt")
    write(tmp_path, "sub/top-only.txt")
    write(tmp_path, "data/big.csv")
    write(tmp_path, "sub/data")  # a file named like an ignored pattern: ignored too
    # A nested .gitignore adds rules for its directory and can re-include a parent's pattern.
    write(tmp_path, "sub/.gitignore", "*.tmp\n!important.log\n")
    write(tmp_path, "sub/x.tmp")
    write(tmp_path, "sub/important.log")
    write(tmp_path, "sub/other.log")
    write(tmp_path, "other/x.tmp")  # the nested rule does not leak to siblings
    with make_snapshot(tmp_path, LIMIT) as archive:
        names = file_names(archive.path)
    assert names == {
        ".gitignore",
        "keep.log",
        "sub/.gitignore",
        "sub/top-only.txt",
        "sub/important.log",
        "other/x.tmp",
    }


def test_git_directory_is_always_left_out(tmp_path: Path) -> None:
    write(tmp_path, ".git/config", "[core]\n")
    write(tmp_path, "vendor/lib/.git", "gitdir: elsewhere\n")  # a submodule's .git file
    write(tmp_path, "vendor/lib/code.py")
    write(tmp_path, IGNORE_FILE, "!.git\n")  # cannot be re-included
    with make_snapshot(tmp_path, LIMIT) as archive:
        names = set(members(archive.path))
    assert not any(n == ".git" or n.startswith(".git/") or n.endswith("/.git") for n in names)
    assert "vendor/lib/code.py" in names


def test_trainyardignore_excludes_and_can_reinclude(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.csv\n")
    write(tmp_path, IGNORE_FILE, "# not needed by the run\ncheckpoints/\n!small.csv\n")
    write(tmp_path, "checkpoints/step-1.pt", b"\0" * 100)
    write(tmp_path, "small.csv", "a,b\n")
    write(tmp_path, "large.csv", "a,b\n")
    write(tmp_path, "train.py")
    with make_snapshot(tmp_path, LIMIT) as archive:
        names = file_names(archive.path)
    assert names == {".gitignore", IGNORE_FILE, "small.csv", "train.py"}


def test_symlinks_inside_are_stored_as_files_and_others_skipped(tmp_path: Path) -> None:
    root = tmp_path / "code"
    write(root, "real/config.json", '{"a": 1}')
    (root / "config.json").symlink_to("real/config.json")
    (root / "real-dir").symlink_to("real")
    write(tmp_path, "secret.txt", "outside")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dangling").symlink_to("nowhere")
    with make_snapshot(root, LIMIT) as archive:
        found = members(archive.path)
        assert found["config.json"].isfile(), "a link inside becomes a regular file"
        assert read_member(archive.path, "config.json") == b'{"a": 1}'
        assert not any(m.issym() or m.islnk() for m in found.values())
        assert "escape.txt" not in found and "dangling" not in found and "real-dir" not in found
        text = "\n".join(archive.warnings)
    assert "escape.txt" in text and "outside" in text
    assert "dangling" in text and "does not exist" in text
    assert "real-dir" in text and "links to directories are not stored" in text


def test_links_never_bring_in_what_is_left_out(tmp_path: Path) -> None:
    write(tmp_path, ".git/config", "[remote]\n\turl = https://user:token@example.com/r\n")
    write(tmp_path, ".gitignore", "secrets/\n")
    write(tmp_path, "secrets/key.pem", "PRIVATE")
    (tmp_path / "git-config").symlink_to(".git/config")
    (tmp_path / "key.pem").symlink_to("secrets/key.pem")
    write(tmp_path, "train.py")
    with make_snapshot(tmp_path, LIMIT) as archive:
        assert file_names(archive.path) == {".gitignore", "train.py"}
        assert sum("left out of the snapshot" in w for w in archive.warnings) == 2


def test_archives_are_byte_identical_for_identical_content(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for root in (first, second):
        write(root, "b.py", "b\n")
        write(root, "a/z.py", "z\n")
        write(root, "a/y.py", "y\n")
    os.utime(second / "b.py", (1_000_000, 1_000_000))
    os.chmod(first / "a/y.py", 0o600)  # only the executable bit matters
    with make_snapshot(first, LIMIT) as one, make_snapshot(second, LIMIT) as two:
        assert one.path.read_bytes() == two.path.read_bytes()
        order = list(members(one.path))
        assert order == ["a", "a/y.py", "a/z.py", "b.py"]
        for info in members(one.path).values():
            assert info.mtime == 0 and info.uid == 0 and info.uname == ""


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    script = write(tmp_path, "run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o700)
    write(tmp_path, "data.txt")
    with make_snapshot(tmp_path, LIMIT) as archive:
        found = members(archive.path)
    assert found["run.sh"].mode == 0o755
    assert found["data.txt"].mode == 0o644


def test_over_the_limit_names_size_limit_biggest_files_and_the_ignore_file(
    tmp_path: Path,
) -> None:
    code = tmp_path / "code"
    write(code, "train.py", "print(1)\n")
    write(code, "weights/model.bin", os.urandom(300_000))  # incompressible
    write(code, "data/sample.bin", os.urandom(50_000))
    dest = tmp_path / "out.tar.gz"
    with pytest.raises(PayloadTooLargeError) as caught:
        make_snapshot(code, 100_000, dest=dest)
    message = caught.value.message
    assert "97.7 KiB limit" in message
    assert "weights/model.bin (293.0 KiB)" in message
    assert message.index("weights/model.bin") < message.index("data/sample.bin")
    assert IGNORE_FILE in message
    assert caught.value.fields["limit"] == 100_000
    assert caught.value.fields["size_at_least"] > 100_000
    assert caught.value.http_status == 413
    assert not dest.exists(), "the partial archive is removed"


def test_limit_stops_before_compressing_everything(tmp_path: Path) -> None:
    # 64 MiB of random data against a 1 MiB limit: the writer must give up early, so the
    # reported size stays near the limit rather than the whole directory.
    write(tmp_path, "huge.bin", os.urandom(64 * 1024 * 1024))
    with pytest.raises(PayloadTooLargeError) as caught:
        make_snapshot(tmp_path, 1024 * 1024)
    assert caught.value.fields["size_at_least"] < 2 * 1024 * 1024


def test_sockets_and_pipes_are_skipped_with_a_warning(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    write(tmp_path, "a.py")
    with make_snapshot(tmp_path, LIMIT) as archive:
        assert file_names(archive.path) == {"a.py"}
        assert any("pipe" in w and "not a regular file" in w for w in archive.warnings)


def test_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a directory"):
        make_snapshot(tmp_path / "missing", LIMIT)


def test_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """Root reads any file whatever its mode, so as root the snapshot is made in a child
    process whose capability bounding set lacks CAP_DAC_OVERRIDE (util-linux's setpriv)."""
    secret = write(tmp_path, "secret.key")
    write(tmp_path, "ok.py")
    secret.chmod(0)
    try:
        if os.geteuid() != 0:
            with pytest.raises(InvalidInputError, match=r"secret\.key"):
                make_snapshot(tmp_path, LIMIT)
            return
        assert shutil.which("setpriv"), "install util-linux (setpriv) to run this test as root"
        script = (
            "import sys; from pathlib import Path\n"
            "from trainyard.client import make_snapshot\n"
            "from trainyard.core.errors import InvalidInputError\n"
            "try:\n"
            f"    make_snapshot(Path({str(tmp_path)!r}), {LIMIT})\n"
            "except InvalidInputError as exc:\n"
            "    print(exc.message); sys.exit(3)\n"
        )
        done = subprocess.run(
            [
                "setpriv",
                "--bounding-set",
                "-dac_override,-dac_read_search",
                sys.executable,
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 3, done.stdout + done.stderr
        assert "secret.key" in done.stdout
    finally:
        secret.chmod(0o600)


def test_archive_extracts_with_the_data_filter(tmp_path: Path) -> None:
    # Python's strictest extraction filter accepts it: no links, no absolute or parent paths.
    write(tmp_path / "code", "pkg/mod.py", "x = 1\n")
    write(tmp_path / "code", "README", "hello")
    with make_snapshot(tmp_path / "code", LIMIT) as archive:
        data = archive.path.read_bytes()
    out = tmp_path / "out"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    assert (out / "pkg/mod.py").read_text() == "x = 1\n"
