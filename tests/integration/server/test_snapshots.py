"""Code snapshots: the archive checks, safe extraction, and POST /snapshots end to end."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import manifest, targz, wait_status

from trainyard.core.errors import InvalidInputError
from trainyard.storage.archive import check_archive, extract_archive

GZ = {"content-type": "application/gzip"}


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x"
) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        if kind == tarfile.REGTYPE:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            tar.addfile(info)

    return add


def _through_symlink(tar: tarfile.TarFile) -> None:
    _member("d", tarfile.SYMTYPE, "sub")(tar)
    _member("d/x")(tar)


def _write(tmp_path: Path, data: bytes, name: str = "a.tar.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


UNSAFE = {
    "dotdot": targz({"../evil.py": "x"}),
    "dotdot-deep": targz({"src/../../evil.py": "x"}),
    "absolute": targz({}, extra=_member("/etc/evil")),
    "backslash": targz({"..\\evil": "x"}),
    "symlink-absolute": targz({}, extra=_member("link", tarfile.SYMTYPE, "/etc/passwd")),
    "symlink-up": targz({}, extra=_member("link", tarfile.SYMTYPE, "../outside")),
    "symlink-inner": targz(
        {"src/main.py": "x"}, extra=_member("src/l.py", tarfile.SYMTYPE, "main.py")
    ),
    "through-symlink": targz({}, extra=_through_symlink),
    "hardlink-outside": targz({}, extra=_member("h", tarfile.LNKTYPE, "../../etc/passwd")),
    "hardlink-unknown": targz({}, extra=_member("h", tarfile.LNKTYPE, "not-there")),
    "hardlink-inner": targz(
        {"src/main.py": "x"}, extra=_member("h.py", tarfile.LNKTYPE, "src/main.py")
    ),
    "char-device": targz({}, extra=_member("dev", tarfile.CHRTYPE)),
    "block-device": targz({}, extra=_member("blk", tarfile.BLKTYPE)),
    "fifo": targz({}, extra=_member("fifo", tarfile.FIFOTYPE)),
    "duplicate": targz({"a.py": "1"}, extra=_member("a.py")),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path, UNSAFE[case])
    with pytest.raises(InvalidInputError, match="code snapshot refused"):
        check_archive(path)
    dest = tmp_path / "code"
    with pytest.raises(InvalidInputError):
        extract_archive(path, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]  # no temp dir left


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("not-gzip", b"PK\x03\x04 this is a zip"),
        ("truncated", targz({"a.py": os.urandom(5000)})[:-40]),
        (
            "bad-crc",
            (lambda b: b[:-8] + bytes([b[-8] ^ 0xFF]) + b[-7:])(targz({"a.py": "x" * 100})),
        ),
        ("gzip-not-tar", gzip.compress(b"just some text, not a tar archive" * 30)),
    ],
    # Names, not the bytes (which hold a gzip time stamp): every test process must collect
    # the same ids.
    ids=["not-gzip", "truncated", "bad-crc", "gzip-not-tar"],
)
def test_corrupt_archives_are_refused(tmp_path: Path, case: str, data: bytes) -> None:
    with pytest.raises(InvalidInputError, match=r"not a valid \.tar\.gz"):
        check_archive(_write(tmp_path, data))


def test_limits_on_members_and_unpacked_size(tmp_path: Path) -> None:
    many = _write(tmp_path, targz({f"f{i}": "" for i in range(20)}), "many.tar.gz")
    with pytest.raises(InvalidInputError, match="more than 10 members"):
        check_archive(many, max_members=10)
    # 1 MB of zeros compresses to ~1 KB: the unpacked size is what is bounded.
    bomb = _write(tmp_path, targz({"zeros": b"\0" * 1_000_000}), "bomb.tar.gz")
    assert bomb.stat().st_size < 5000
    with pytest.raises(InvalidInputError, match="unpacks to more than 100000 bytes"):
        check_archive(bomb, max_unpacked_bytes=100_000)


def test_safe_archive_extracts_with_dirs(tmp_path: Path) -> None:
    def extra(tar: tarfile.TarFile) -> None:
        _member("empty", tarfile.DIRTYPE)(tar)

    data = targz({"src/main.py": "print('hi')\n", "README": "r"}, extra=extra)
    path = _write(tmp_path, data)
    info = check_archive(path)
    assert info.members == 3
    dest = tmp_path / "code"
    extract_archive(path, dest)
    assert (dest / "src" / "main.py").read_text() == "print('hi')\n"
    assert (dest / "README").read_text() == "r"
    assert (dest / "empty").is_dir()
    # Idempotent: a second extraction leaves the first one alone.
    (dest / "marker").write_text("kept")
    extract_archive(path, dest)
    assert (dest / "marker").read_text() == "kept"


@pytest.mark.parametrize(
    ("case", "member", "what"),
    [
        ("symlink-inner", "src/l.py", "a symlink (to 'main.py')"),
        ("hardlink-inner", "h.py", "a hard link (to 'src/main.py')"),
    ],
)
def test_links_are_refused_even_inside_the_tree(
    tmp_path: Path, case: str, member: str, what: str
) -> None:
    """RELIABILITY.md: archives with links are refused, wherever the link points."""
    path = _write(tmp_path, UNSAFE[case])
    with pytest.raises(InvalidInputError) as caught:
        check_archive(path)
    assert caught.value.message == (
        f"code snapshot refused: member {member!r}: it is {what} and links are not allowed; "
        "store the file itself (`trainyard run` stores links inside the directory as regular "
        "files)"
    )
    assert caught.value.fields == {"member": member}


# ---- the HTTP endpoint -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(server_factory: Any) -> Iterator[Any]:
    """A live server whose snapshot limit is 64 KiB."""
    srv = server_factory.start(extra_env={"TRAINYARD_RUNS__SNAPSHOT_MAX_BYTES": str(64 * 1024)})
    yield srv
    srv.close()


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c


def _leftovers(server: Any) -> list[str]:
    snapshots = Path(server.home) / "snapshots"
    return (
        sorted(p.name for p in snapshots.iterdir() if not p.name.endswith(".tar.gz"))
        if snapshots.exists()
        else []
    )


def test_upload_is_content_addressed_and_idempotent(client: httpx.Client, server: Any) -> None:
    data = targz({"train.py": "print('snap')\n"})
    r = client.post("/snapshots", content=data, headers=GZ)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body == {"id": hashlib.sha256(data).hexdigest(), "size": len(data)}
    stored = Path(server.home) / "snapshots" / f"{body['id']}.tar.gz"
    assert stored.read_bytes() == data
    again = client.post("/snapshots", content=data, headers=GZ)
    assert again.status_code == 201 and again.json() == body
    assert _leftovers(server) == []


def test_run_uses_the_snapshot_and_later_uploads_do_not_change_it(client: httpx.Client) -> None:
    first = client.post(
        "/snapshots", content=targz({"app/msg.txt": "version one\n"}), headers=GZ
    ).json()
    client.post("/snapshots", content=targz({"app/msg.txt": "version two\n"}), headers=GZ)
    text = manifest("snap", "cat msg.txt; pwd", extra="    workDir: app\n")
    run = client.post(
        "/projects/default/runs", json={"manifest": text, "snapshot_id": first["id"]}
    ).json()
    assert run["snapshot_id"] == first["id"]
    done = wait_status(client, run["id"], {"complete", "error"})
    assert done["status"] == "complete", done["reason"]
    lines = [line["text"] for line in client.get(f"/runs/{run['id']}/logs").json()["lines"]]
    assert lines[0] == "version one"
    assert lines[1].endswith(f"/runs/{run['id']}/code/app")


def test_over_the_limit_is_413_and_leaves_nothing(client: httpx.Client, server: Any) -> None:
    big = targz({"weights.bin": os.urandom(100 * 1024)})
    r = client.post("/snapshots", content=big, headers=GZ)
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "payload_too_large"
    assert "65536 bytes" in err["message"] and ".trainyardignore" in err["message"]
    assert _leftovers(server) == []

    # Without a Content-Length the limit is enforced while streaming.
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = client.post("/snapshots", content=chunks(), headers=GZ)
    assert r.status_code == 413, r.text
    assert _leftovers(server) == []


@pytest.mark.parametrize(
    "case", ["dotdot", "absolute", "symlink-up", "symlink-inner", "hardlink-inner", "char-device"]
)
def test_unsafe_upload_is_400(client: httpx.Client, server: Any, case: str) -> None:
    r = client.post("/snapshots", content=UNSAFE[case], headers=GZ)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert "code snapshot refused" in r.json()["error"]["message"]
    assert _leftovers(server) == []
    sha = hashlib.sha256(UNSAFE[case]).hexdigest()
    assert not (Path(server.home) / "snapshots" / f"{sha}.tar.gz").exists()


def test_corrupt_and_empty_uploads_are_400(client: httpx.Client, server: Any) -> None:
    r = client.post("/snapshots", content=b"\x1f\x8b garbage", headers=GZ)
    assert r.status_code == 400 and "not a valid .tar.gz" in r.json()["error"]["message"]
    r = client.post("/snapshots", content=b"", headers=GZ)
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    assert _leftovers(server) == []


def test_snapshot_file_gone_before_launch_is_an_error(client: httpx.Client, server: Any) -> None:
    snap = client.post("/snapshots", content=targz({"x.py": "1"}), headers=GZ).json()
    path = Path(server.home) / "snapshots" / f"{snap['id']}.tar.gz"
    path.unlink()
    r = client.post(
        "/projects/default/runs", json={"manifest": manifest(), "snapshot_id": snap["id"]}
    )
    assert r.status_code == 404 and "snapshot" in r.json()["error"]["message"]


def test_disk_full_is_507_and_leaves_nothing(server_factory: Any, tmp_path: Path) -> None:
    """A real full file system: a 256 KiB tmpfs mounted over the snapshot directory."""
    needs = "needs root (CAP_SYS_ADMIN) to mount a 256 KiB tmpfs: run the suite as root, as CI does"
    if os.geteuid() != 0:
        pytest.fail(f"{needs} (running as uid {os.geteuid()})", pytrace=False)
    home = tmp_path / "home"
    snapshots = home / "snapshots"
    snapshots.mkdir(parents=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(snapshots)],
            capture_output=True,
        )
    except FileNotFoundError:
        pytest.fail(f"{needs}; `mount` is not installed (util-linux)", pytrace=False)
    if mounted.returncode != 0:
        pytest.fail(f"{needs}; mount said: {mounted.stderr.decode().strip()}", pytrace=False)
    try:
        srv = server_factory.start(home=home)
        try:
            data = targz({"weights.bin": os.urandom(1024 * 1024)})
            with httpx.Client(base_url=f"{srv.url}/api/v1", timeout=60) as c:
                r = c.post("/snapshots", content=data, headers=GZ)
                assert r.status_code == 507, r.text
                err = r.json()["error"]
                assert err["code"] == "insufficient_storage"
                assert "no space left" in err["message"]
                assert list(snapshots.iterdir()) == []
                sha = hashlib.sha256(data).hexdigest()
                r = c.post(
                    "/projects/default/runs", json={"manifest": manifest(), "snapshot_id": sha}
                )
                assert r.status_code == 404  # nothing was recorded
                # Reads keep working and a small upload fits again.
                assert c.get("/health").status_code == 200
                assert (
                    c.post("/snapshots", content=targz({"a": "b"}), headers=GZ).status_code == 201
                )
        finally:
            srv.close()
    finally:
        subprocess.run(["umount", str(snapshots)], check=True)
