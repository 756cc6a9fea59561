"""The xtreemgate command as an operator uses it, and the gateway as a real server."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

XG = str(Path(sys.executable).with_name("xtreemgate"))


def run(args, env, stdin=None, check=True):
    result = subprocess.run(
        [XG, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"xtreemgate {' '.join(args)} failed:\n{result.stderr}")
    return result


@pytest.fixture
def env(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    environment["XTREEMGATE_STATE_DIR"] = str(tmp_path / "state")
    environment["XTREEMGATE_LOGGING__FORMAT"] = "text"
    return environment


def test_config_check_reports_each_service(env, tmp_path):
    from backends.store import migrate

    stale = run(["config", "check"], env, check=False)
    assert stale.returncode == 1

    assert (
        "database   NOT REACHABLE  schema (empty), code needs "
        f"{migrate.head_revision()}: run 'xtreemgate db upgrade'" in stale.stdout
    )
    run(["db", "upgrade"], env)
    ok = run(["config", "check"], env)
    for kind in ("vo", "execution", "vm", "storage"):
        assert f"  {kind}" in ok.stdout
    assert "NOT REACHABLE" not in ok.stdout

    bad = run(["config", "check"], {**env, "XTREEMGATE_BACKENDS__VM": "openstack"}, check=False)
    assert bad.returncode == 1
    assert (
        "backends.vm = 'openstack' is not installed; installed vm backends: libvirt" in bad.stdout
    )
    assert "  storage    reachable" in bad.stdout  # the other kinds are still checked


def test_invalid_config_file_names_the_key(env, tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text("[server]\nport = 'eighty'\n")
    result = run(["--config", str(config), "config", "check"], env, check=False)
    assert result.returncode == 1
    assert "server.port: Input should be a valid integer" in result.stderr
    assert str(config) in result.stderr


def test_user_add_refuses_duplicates_and_weak_passwords(env):
    run(["db", "upgrade"], env)
    run(["user", "add", "bob", "--password-stdin"], env, stdin="long enough\n")
    again = run(["user", "add", "bob", "--password-stdin"], env, stdin="long enough\n", check=False)
    assert again.returncode == 1 and "user 'bob' exists already" in again.stderr
    weak = run(["user", "add", "carol", "--password-stdin"], env, stdin="short\n", check=False)
    assert weak.returncode == 1 and "at least 8 characters" in weak.stderr
    unknown = run(["token", "issue", "nobody"], env, check=False)
    assert unknown.returncode == 1 and "no enabled local user 'nobody'" in unknown.stderr


def test_user_lifecycle(env):
    run(["db", "upgrade"], env)
    run(
        ["user", "add", "erin", "--password-stdin", "--site-admin", "--display-name", "Erin"],
        env,
        stdin="first password\n",
    )
    assert run(["user", "list"], env).stdout.split() == ["erin", "enabled", "site-admin", "Erin"]
    run(["user", "disable", "erin"], env)
    assert "disabled" in run(["user", "list"], env).stdout
    refused = run(["token", "issue", "erin"], env, check=False)
    assert refused.returncode == 1 and "no enabled local user 'erin'" in refused.stderr
    run(["user", "enable", "erin"], env)
    run(["user", "passwd", "erin", "--password-stdin"], env, stdin="second password\n")
    assert run(["token", "issue", "erin"], env).stdout.count(".") == 2
    missing = run(["user", "disable", "ghost"], env, check=False)
    assert missing.returncode == 1 and "no local user 'ghost'" in missing.stderr


def test_serve_refuses_a_stale_schema_and_unknown_backends(env):
    stale = run(["serve"], env, check=False)
    assert stale.returncode == 1 and "run 'xtreemgate db upgrade'" in stale.stderr
    run(["db", "upgrade"], env)
    unknown = run(["serve"], {**env, "XTREEMGATE_BACKENDS__EXECUTION": "pbs"}, check=False)
    assert unknown.returncode == 1
    assert "backends.execution = 'pbs' is not installed; installed execution backends: local" in (
        unknown.stderr
    )


def test_served_gateway_answers_curl_with_cli_token(env, gateway_server):
    """The README's promise: serve, curl /healthz, then a CLI-issued token works."""
    services.require("curl", hint="apt-get install curl")
    url = gateway_server(env)
    health = subprocess.run(["curl", "-sS", "-f", f"{url}/healthz"], capture_output=True, text=True)
    assert health.returncode == 0 and '"status": "healthy"' in health.stdout
    run(["user", "add", "dora", "--password-stdin"], env, stdin="dora's password\n")
    token = run(["token", "issue", "dora"], env).stdout.strip()
    me = subprocess.run(
        ["curl", "-sS", "-H", f"Authorization: Bearer {token}", f"{url}/api/v1/whoami"],
        capture_output=True,
        text=True,
    )
    assert '"name": "dora"' in me.stdout
    tampered = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            f"Authorization: Bearer {token[:-4]}AAAA",
            f"{url}/api/v1/whoami",
        ],
        capture_output=True,
        text=True,
    )
    assert tampered.stdout == "401"
    metrics = subprocess.run(["curl", "-sS", f"{url}/metrics"], capture_output=True, text=True)
    # Under a real server (not the test client) routes must still be labelled by operation.
    assert 'route="gateway.monitoring.handlers.healthz",status="200"' in metrics.stdout
    assert 'route="gateway.auth.handlers.whoami",status="401"' in metrics.stdout
