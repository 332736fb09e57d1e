"""Artifact paths (shared by the server's stores and the clients) and the store's checks on
a real directory: containment after symlinks, atomic replacement, listings."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.core.artifacts import check_artifact_path
from trainyard.core.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from trainyard.storage.artifacts import ArtifactStore


@pytest.mark.parametrize(
    "bad",
    ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a\x00b", ".m.part", "x" * 256],
    ids=["dotdot", "deep", "absolute", "empty-part", "dot", "backslash", "nul", "part", "long"],
)
def test_unsafe_paths_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        check_artifact_path(bad)


def test_safe_paths_and_the_root() -> None:
    assert check_artifact_path("eval/plots/roc.svg") == ["eval", "plots", "roc.svg"]
    assert check_artifact_path("dir/") == ["dir"]
    assert check_artifact_path("", allow_root=True) == []
    with pytest.raises(InvalidInputError, match="required"):
        check_artifact_path("")


def test_store_keeps_paths_inside_after_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    store = ArtifactStore(root, "test artifacts")
    assert store.resolve("ok/file") == root / "ok" / "file"
    with pytest.raises(InvalidInputError, match="outside test artifacts"):
        store.resolve("out/secret")
    with pytest.raises(InvalidInputError, match="outside"):
        store.begin("out/new.bin", 100)


def test_upload_is_atomic_and_limited(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "test artifacts")
    first = store.begin("a/b.bin", 10)
    first.write(b"12345")
    assert not (tmp_path / "a" / "b.bin").exists()  # only the hidden part file so far
    assert store.list("a") == []
    assert first.commit().size == 5
    second = store.begin("a/b.bin", 10)
    second.write(b"123456")
    with pytest.raises(PayloadTooLargeError, match="artifact_max_bytes"):
        second.write(b"123456")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"12345"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.bin"]
    with pytest.raises(PayloadTooLargeError):
        store.begin("c.bin", 10, expected_size=11)
    with pytest.raises(InvalidInputError, match="directory"):
        store.begin("a", 10)
    with pytest.raises(InvalidInputError, match="is a file"):
        store.begin("a/b.bin/c", 10)
    with pytest.raises(NotFoundError, match="'nope'"):
        store.file("nope")
    assert [(e.path, e.is_dir, e.size) for e in store.list(recursive=True)] == [
        ("a", True, None),
        ("a/b.bin", False, 5),
    ]
    assert [e.path for e in store.list("a/b.bin")] == ["a/b.bin"]
    assert store.list("missing") == []
