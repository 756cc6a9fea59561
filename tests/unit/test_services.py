"""The service harness itself: missing services are loud in CI, services stop for good."""

from __future__ import annotations

import time

import pytest

from tests import services


def test_missing_binary_skips_locally_with_the_hint(monkeypatch) -> None:
    monkeypatch.setattr(services, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install nothing.*CI=true"):
        services.require("xg-no-such-binary", hint="apt-get install nothing")


def test_missing_binary_fails_under_ci(monkeypatch) -> None:
    monkeypatch.setattr(services, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="a missing service is a failure"):
        services.require("xg-no-such-binary", hint="apt-get install nothing")


def test_binaries_are_found_in_search_folders(tmp_path) -> None:
    tool = tmp_path / "v15" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    found = services.require("tool", hint="-", search=[str(tmp_path / "v*")])
    assert found == {"tool": str(tool)}


def test_a_service_that_dies_says_why(tmp_path) -> None:
    with pytest.raises(RuntimeError, match=r"exited with 3:\nbroken config"):
        services.start(
            "broken",
            ["sh", "-c", "echo broken config; exit 3"],
            directory=tmp_path,
            port=services.free_port(),
            ready=lambda: False,
        )


def test_stop_ends_the_whole_process_group(tmp_path) -> None:
    """A server that forks workers leaves none behind."""
    port = services.free_port()
    server = services.start(
        "listener",
        [
            "python3",
            "-c",
            "import os,socket,time\n"
            f"s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen()\n"
            "pid=os.fork()\n"
            "if pid: open('child.pid.tmp','w').write(str(pid)); os.rename('child.pid.tmp','child.pid')\n"
            "time.sleep(60)",
        ],
        directory=tmp_path,
        port=port,
        ready=services.port_answers(port),
    )
    deadline = time.monotonic() + 5
    while not (tmp_path / "child.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int((tmp_path / "child.pid").read_text())
    server.stop(timeout=5)
    assert not services.alive(server.pid)  # (the port itself may be reused by anyone now)
    assert not services.alive(child)
