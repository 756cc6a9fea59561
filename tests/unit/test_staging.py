"""Data staging against real servers: http.server and pyftpdlib on 127.0.0.1, real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.execution.staging import (
    StagingError,
    StagingLimits,
    TransferOptions,
    redact,
    stage_in,
    stage_out,
)
from tests.staging_servers import ftp_files, http_files, self_signed


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote"
    path.mkdir()
    (path / "input.txt").write_bytes(b"hello grid\n")
    return path


# -- file names ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", "", "x\0y"])
def test_file_names_never_leave_the_working_directory(work: Path, name: str) -> None:
    with pytest.raises(StagingError, match=r"relative|empty"):
        stage_in(work, name, "http://127.0.0.1:9/x")


def test_sub_folders_inside_the_working_directory_are_fine(work: Path, remote: Path) -> None:
    with http_files(remote) as server:
        assert stage_in(work, "in/sub/data", f"{server.url}/input.txt") == 11
    assert (work / "in/sub/data").read_bytes() == b"hello grid\n"


def test_unknown_scheme_and_flag_are_refused(work: Path) -> None:
    with pytest.raises(StagingError, match=r"scheme 'gsiftp'.*http, https, ftp, file"):
        stage_in(work, "a", "gsiftp://host/x")
    with pytest.raises(StagingError, match="CreationFlag 'replace'"):
        stage_in(work, "a", "http://127.0.0.1:9/x", TransferOptions(creation_flag="replace"))


def test_passwords_never_appear_in_messages() -> None:
    assert redact("ftp://bob:hunter2@host:21/f") == "ftp://bob:***@host:21/f"
    assert redact("http://host/f") == "http://host/f"


# -- HTTP ----------------------------------------------------------------------------------
def test_http_stage_in_and_out(work: Path, remote: Path) -> None:
    with http_files(remote) as server:
        stage_in(work, "input.txt", f"{server.url}/input.txt")
        (work / "result").write_bytes(b"42\n" * 1000)
        assert stage_out(work, "result", f"{server.url}/out/result") == 3000
    assert (remote / "out/result").read_bytes() == b"42\n" * 1000
    # no temp files left behind
    assert sorted(p.name for p in work.iterdir()) == ["input.txt", "result"]


def test_http_missing_file_names_file_url_and_status(work: Path, remote: Path) -> None:
    with http_files(remote) as server:
        url = f"{server.url}/nope.dat"
        with pytest.raises(StagingError) as caught:
            stage_in(work, "nope.dat", url)
    assert "'nope.dat'" in str(caught.value)
    assert url in str(caught.value)
    assert "HTTP 404" in str(caught.value)
    assert not (work / "nope.dat").exists()


def test_http_basic_credentials(work: Path, remote: Path) -> None:
    with http_files(remote, credentials=("alice", "s3cret")) as server:
        with pytest.raises(StagingError, match="HTTP 401"):
            stage_in(work, "a", f"{server.url}/input.txt")
        stage_in(
            work,
            "a",
            f"{server.url}/input.txt",
            TransferOptions(username="alice", password="s3cret"),
        )
        # user-info in the URL works too, and is not echoed in errors
        host = server.url.removeprefix("http://")
        stage_in(work, "b", f"http://alice:s3cret@{host}/input.txt")
        with pytest.raises(StagingError) as caught:
            stage_in(work, "c", f"http://alice:wrong@{host}/input.txt")
    assert "wrong" not in str(caught.value)
    assert (work / "a").read_bytes() == (work / "b").read_bytes() == b"hello grid\n"


def test_http_bearer_token(work: Path, remote: Path) -> None:
    with http_files(remote, bearer="tok-123") as server:
        with pytest.raises(StagingError, match="HTTP 401"):
            stage_in(work, "a", f"{server.url}/input.txt", TransferOptions(bearer_token="wrong"))
        stage_in(work, "a", f"{server.url}/input.txt", TransferOptions(bearer_token="tok-123"))
        stage_out(work, "a", f"{server.url}/copy", TransferOptions(bearer_token="tok-123"))
    assert (remote / "copy").read_bytes() == b"hello grid\n"


def test_https_is_verified_against_the_configured_cas(
    work: Path, remote: Path, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    with http_files(remote, tls=(cert, key)) as server:
        url = f"{server.url}/input.txt"
        with pytest.raises(StagingError, match="CERTIFICATE_VERIFY_FAILED"):
            stage_in(work, "a", url)
        stage_in(work, "a", url, limits=StagingLimits(ca_file=str(cert)))
        stage_out(work, "a", f"{server.url}/back", limits=StagingLimits(ca_file=str(cert)))
    assert (remote / "back").read_bytes() == b"hello grid\n"


def test_credentials_are_not_forwarded_to_another_host(work: Path, remote: Path) -> None:
    with http_files(remote) as target, http_files(remote, credentials=("a", "b")) as first:
        hop = target.url.removeprefix("http://")
        stage_in(
            work,
            "x",
            f"{first.url}/redirect/{hop}/input.txt",
            TransferOptions(username="a", password="b"),
        )
    assert target.seen_auth == [""]
    assert (work / "x").read_bytes() == b"hello grid\n"


def test_http_dont_overwrite_target(work: Path, remote: Path) -> None:
    (work / "r").write_bytes(b"new")
    with http_files(remote) as server:
        with pytest.raises(StagingError, match="target exists and CreationFlag is dontOverwrite"):
            stage_out(
                work, "r", f"{server.url}/input.txt", TransferOptions(creation_flag="dontOverwrite")
            )
        with pytest.raises(StagingError, match="append is not possible over HTTP"):
            stage_out(work, "r", f"{server.url}/input.txt", TransferOptions(creation_flag="append"))
    assert (remote / "input.txt").read_bytes() == b"hello grid\n"


def test_size_bound_stops_the_transfer_and_leaves_nothing(work: Path, remote: Path) -> None:
    (remote / "big").write_bytes(b"x" * 100_000)
    with http_files(remote) as server, pytest.raises(StagingError, match="limit of 1000 bytes"):
        stage_in(work, "big", f"{server.url}/big", limits=StagingLimits(max_bytes=1000))
    assert list(work.iterdir()) == []


def test_unreachable_server_fails_within_the_timeout(work: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
        with pytest.raises(StagingError, match="timed out"):
            stage_in(work, "x", url, limits=StagingLimits(io_timeout=0.3))


def test_a_trickling_server_cannot_outlast_the_deadline(work: Path) -> None:
    import socket
    import threading
    import time

    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def trickle() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(100):  # one byte at a time, never idle for long
                    if stop.wait(0.05):
                        return
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        return

        threading.Thread(target=trickle, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
        started = time.monotonic()
        try:
            with pytest.raises(StagingError, match=r"not done within 0\.5 s"):
                stage_in(work, "slow", url, limits=StagingLimits(timeout=0.5, io_timeout=5))
        finally:
            stop.set()
    assert time.monotonic() - started < 3
    assert list(work.iterdir()) == []


def test_missing_output_file_is_a_clear_failure(work: Path) -> None:
    with pytest.raises(StagingError, match=r"'out.dat'.*did not create the file"):
        stage_out(work, "out.dat", "http://127.0.0.1:9/out.dat")


def test_output_symlink_out_of_the_working_directory_is_refused(work: Path) -> None:
    (work / "leak").symlink_to("/etc/passwd")
    with pytest.raises(StagingError, match="outside the working directory"):
        stage_out(work, "leak", "http://127.0.0.1:9/leak")


# -- creation flags on the local file ------------------------------------------------------
def test_creation_flags_on_stage_in(work: Path, remote: Path) -> None:
    (work / "f").write_bytes(b"old\n")
    with http_files(remote) as server:
        url = f"{server.url}/input.txt"
        with pytest.raises(StagingError, match="f exists and CreationFlag is dontOverwrite"):
            stage_in(work, "f", url, TransferOptions(creation_flag="dontOverwrite"))
        assert (work / "f").read_bytes() == b"old\n"
        stage_in(work, "f", url, TransferOptions(creation_flag="append"))
        assert (work / "f").read_bytes() == b"old\nhello grid\n"
        stage_in(work, "f", url, TransferOptions(creation_flag="overwrite"))
        assert (work / "f").read_bytes() == b"hello grid\n"
        stage_in(work, "g", url, TransferOptions(creation_flag="dontOverwrite"))
        assert (work / "g").read_bytes() == b"hello grid\n"


# -- FTP -----------------------------------------------------------------------------------
def test_ftp_stage_in_and_out_with_login(work: Path, remote: Path) -> None:
    with ftp_files(remote) as base:
        host = base.removeprefix("ftp://")
        stage_in(
            work, "in", f"{base}/input.txt", TransferOptions(username="grid", password="secret")
        )
        assert (work / "in").read_bytes() == b"hello grid\n"
        (work / "out").write_bytes(b"result\n")
        stage_out(work, "out", f"ftp://grid:secret@{host}/res.txt")
        stage_out(
            work,
            "out",
            f"{base}/res.txt",
            TransferOptions(creation_flag="append", username="grid", password="secret"),
        )
        with pytest.raises(StagingError, match="dontOverwrite"):
            stage_out(
                work,
                "out",
                f"{base}/res.txt",
                TransferOptions(creation_flag="dontOverwrite", username="grid", password="secret"),
            )
        with pytest.raises(StagingError, match=r"'missing'.*FTP server said 550"):
            stage_in(
                work,
                "missing",
                f"{base}/missing",
                TransferOptions(username="grid", password="secret"),
            )
        with pytest.raises(StagingError, match="530"):
            stage_in(
                work, "x", f"{base}/input.txt", TransferOptions(username="grid", password="bad")
            )
    assert (remote / "res.txt").read_bytes() == b"result\nresult\n"


def test_ftp_anonymous_and_size_bound(work: Path, remote: Path) -> None:
    (remote / "big").write_bytes(b"y" * 50_000)
    with ftp_files(remote) as base:
        stage_in(work, "anon", f"{base}/input.txt")
        with pytest.raises(StagingError, match="50000 bytes, more than the limit"):
            stage_in(work, "big", f"{base}/big", limits=StagingLimits(max_bytes=10))
    assert (work / "anon").read_bytes() == b"hello grid\n"
    assert not (work / "big").exists()


# -- file: URLs ----------------------------------------------------------------------------
def test_file_urls_only_within_the_configured_roots(work: Path, remote: Path) -> None:
    with pytest.raises(StagingError, match="file staging is disabled"):
        stage_in(work, "a", f"file://{remote}/input.txt")
    limits = StagingLimits(file_roots=(str(remote),))
    stage_in(work, "a", f"file://{remote}/input.txt", limits=limits)
    assert (work / "a").read_bytes() == b"hello grid\n"
    with pytest.raises(StagingError, match="outside the allowed roots"):
        stage_in(work, "b", f"file://{remote}/../remote/../../etc/passwd", limits=limits)
    (remote / "sneaky").symlink_to("/etc/passwd")
    with pytest.raises(StagingError, match="outside the allowed roots"):
        stage_in(work, "b", f"file://{remote}/sneaky", limits=limits)
    stage_out(work, "a", f"file://{remote}/copy", limits=limits)
    assert (remote / "copy").read_bytes() == b"hello grid\n"
    with pytest.raises(StagingError, match="dontOverwrite"):
        stage_out(
            work,
            "a",
            f"file://{remote}/copy",
            TransferOptions(creation_flag="dontOverwrite"),
            limits,
        )
    with pytest.raises(StagingError, match="only local files"):
        stage_in(work, "c", "file://otherhost/etc/passwd", limits=limits)
