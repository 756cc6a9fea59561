"""The LDAP adapter against a real slapd: lookups, groups as VO memberships, pool
accounts, escaping, connection reuse, and what happens when the directory misbehaves."""

from __future__ import annotations

import logging
import os
import signal
import time

import ldap
import pytest

from adapters.ldap import Directory, DirectoryConfig, DirectoryError, DirectoryUnavailable
from backends.contracts.model import LocalAccount, VOMembership
from tests.identity_services import GATEWAY_DN, GATEWAY_PW, SUFFIX, slapd_settings

pytestmark = pytest.mark.service


def directory_for(server, **overrides) -> Directory:
    url = overrides.pop("url", server.url)
    return Directory(DirectoryConfig.of(slapd_settings(url, **overrides)))


@pytest.fixture
def directory(slapd):
    d = directory_for(slapd)
    yield d
    d.close()


def test_a_person_is_found_by_uid_mail_or_eppn(directory):
    by_uid = directory.user_by_uid("alice")
    assert by_uid is not None
    assert (by_uid.uid, by_uid.uid_number, by_uid.gid_number) == ("alice", 10001, 10001)
    assert (by_uid.display_name, by_uid.mail, by_uid.eppn) == (
        "Alice Liddell",
        "alice@xg.test",
        "alice@xg.test",
    )
    assert by_uid.home == "/home/alice"
    assert by_uid.dn == f"uid=alice,ou=people,{SUFFIX}"
    assert set(by_uid.group_names) == {"vo-atlas", "vo-atlas-prod", "atlas-managers", "staff"}
    assert by_uid.local_account() == LocalAccount("alice", 10001, 10001, "/home/alice")
    assert directory.user_by_mail("ALICE@xg.test") == by_uid  # mail matches case-insensitively
    assert directory.user_by_eppn("alice@xg.test") == by_uid
    assert directory.user_by_eppn("bob@partner.test").uid == "partner-bob"


def test_nobody_and_several_people(directory):
    assert directory.user_by_uid("nobody") is None
    assert directory.user_by_mail("") is None
    with pytest.raises(DirectoryError, match=r"2 directory entries have mail='dave@xg\.test'"):
        directory.user_by_mail("dave@xg.test")  # two entries share it: never pick one
    with pytest.raises(ValueError, match="exactly one"):
        directory.find_user(uid="alice", mail="alice@xg.test")


def test_groups_become_vo_memberships_through_the_configured_mapping(directory):
    alice = directory.user_by_uid("alice")
    # vo-atlas and vo-atlas-prod by pattern, atlas-managers by DN; staff is no VO group
    assert directory.memberships(alice) == (
        VOMembership("atlas", "", ("manager",)),
        VOMembership("atlas", "prod", ()),
    )
    bob = directory.user_by_uid("partner-bob")
    assert directory.memberships(bob) == (VOMembership("atlas"), VOMembership("cms"))
    dave = directory.user_by_uid("dave")
    assert dave.group_names == ("staff",)
    assert directory.memberships(dave) == ()


def test_pool_accounts_of_a_vo(directory):
    assert directory.pool_accounts("atlas") == [
        LocalAccount(f"atlas00{n}", 50000 + n, 60000, f"/pool/atlas00{n}") for n in (1, 2, 3)
    ]
    assert [a.username for a in directory.pool_accounts("cms")] == ["cms001"]
    assert directory.pool_accounts("lhcb") == []  # no pool: nothing, not an error


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uid", "*)(uid=*"),
        ("uid", "*"),
        ("uid", "alice)(|(uid=*)"),
        ("mail", "*@xg.test"),
        ("eppn", "*"),
    ],
)
def test_an_injection_attempt_finds_nothing_and_is_logged(directory, slapd, caplog, field, value):
    with caplog.at_level(logging.WARNING, logger="xtreemgate.ldap"):
        assert directory.find_user(**{field: value}) is None
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and "possible LDAP injection attempt" in warning[0].getMessage()
    assert repr(value) in warning[0].getMessage()
    # the same value pasted into the lookup's filter unescaped would have matched people
    conn = ldap.initialize(slapd.url)
    conn.simple_bind_s(GATEWAY_DN, GATEWAY_PW)
    attribute = {"eppn": "eduPersonPrincipalName"}.get(field, field)
    pasted = f"(&(objectClass=posixAccount)({attribute}={value}))"
    raw = conn.search_s(SUFFIX, ldap.SCOPE_SUBTREE, pasted, ["1.1"])
    conn.unbind_s()
    assert raw, "the attack value should match entries when not escaped"


def test_a_vo_name_that_would_change_the_pool_dn_is_refused(directory, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="xtreemgate.ldap"),
        pytest.raises(DirectoryError, match="is not a VO name"),
    ):
        directory.pool_accounts("atlas,ou=people")
    assert "invalid VO name" in caplog.text


def test_connections_are_reused(slapd):
    directory = directory_for(slapd, pool_size=2)
    for _ in range(25):
        assert directory.user_by_uid("alice") is not None
    assert directory.pool.opened == 1  # one thread: one connection, bound once
    directory.close()


def test_health_says_who_it_bound_as(directory, slapd):
    report = directory.health()
    assert report.ok, report.detail
    assert report.detail == f"{slapd.url} answers, bound as {GATEWAY_DN}"


def test_a_wrong_password_is_named(slapd):
    directory = directory_for(slapd, bind_password="wrong")
    with pytest.raises(
        DirectoryError, match=r"refused the bind as cn=gateway.*invalid credentials"
    ):
        directory.user_by_uid("alice")
    report = directory.health()
    assert not report.ok and "invalid credentials" in report.detail


def test_starttls_is_refused_cleanly_without_tls_on_the_server(slapd):
    directory = directory_for(slapd, start_tls=True)
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable, match=r"StartTLS refused by ldap://127\.0\.0\.1"):
        directory.user_by_uid("alice")
    assert time.monotonic() - started < 2
    assert not directory.health().ok  # and nothing fell back to plain text


def test_server_down_is_a_clear_error_and_a_restart_is_survived(fresh_slapd):
    directory = directory_for(fresh_slapd)
    assert directory.user_by_uid("alice") is not None
    fresh_slapd.stop()
    with pytest.raises(DirectoryUnavailable, match=f"LDAP server {fresh_slapd.url} unreachable"):
        directory.user_by_uid("alice")
    report = directory.health()
    assert not report.ok and "unreachable" in report.detail
    fresh_slapd.start()  # same port, same data
    assert directory.user_by_uid("alice").uid == "alice"  # reconnected by itself


def test_a_restart_under_an_idle_pooled_connection_is_retried(fresh_slapd):
    directory = directory_for(fresh_slapd)
    assert directory.user_by_uid("alice") is not None
    fresh_slapd.restart()  # the pooled connection is now dead, nobody told us
    assert directory.user_by_uid("alice").uid == "alice"
    assert directory.pool.opened == 2


def test_a_directory_that_stops_answering_times_out(fresh_slapd):
    directory = directory_for(fresh_slapd, timeout=1.0)
    assert directory.user_by_uid("alice") is not None
    os.kill(fresh_slapd.service.pid, signal.SIGSTOP)  # accepts TCP, answers nothing
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match="did not answer within 1 s"):
            directory.user_by_uid("alice")
        assert time.monotonic() - started < 4
    finally:
        os.kill(fresh_slapd.service.pid, signal.SIGCONT)
    assert directory.user_by_uid("alice").uid == "alice"  # the stuck connection was dropped


@pytest.fixture
def tls_slapd(tmp_path):
    from tests.identity_services import make_slapd

    server = make_slapd(tmp_path / "tls-slapd", tls=True)
    yield server
    server.stop()


def test_starttls_and_ldaps_verify_the_server_against_ca_file(tls_slapd):
    over_starttls = directory_for(tls_slapd, start_tls=True, ca_file=str(tls_slapd.ca_file))
    assert over_starttls.user_by_uid("alice").uid == "alice"
    assert "answers over StartTLS" in over_starttls.health().detail
    over_ldaps = directory_for(tls_slapd, url=tls_slapd.ldaps_url, ca_file=str(tls_slapd.ca_file))
    assert over_ldaps.user_by_uid("alice").uid == "alice"


def test_a_server_certificate_from_another_ca_is_refused(tls_slapd, tmp_path):
    from tests.identity_services import make_ca_and_server_cert

    other_ca, _, _ = make_ca_and_server_cert(tmp_path, "other")
    starttls = directory_for(tls_slapd, start_tls=True, ca_file=str(other_ca))
    with pytest.raises(DirectoryUnavailable, match="StartTLS refused by") as refused:
        starttls.user_by_uid("alice")
    assert "does not verify against ca_file" in str(refused.value)
    ldaps = directory_for(tls_slapd, url=tls_slapd.ldaps_url, ca_file=str(other_ca))
    with pytest.raises(
        DirectoryUnavailable, match=f"LDAP server {tls_slapd.ldaps_url} unreach"
    ) as e:
        ldaps.user_by_uid("alice")
    assert str(e.value).endswith("(or its TLS certificate does not verify against ca_file)")


def test_concurrent_lookups_share_a_bounded_pool(slapd):
    from concurrent.futures import ThreadPoolExecutor

    directory = directory_for(slapd, pool_size=3)
    names = ["alice", "partner-bob", "dave", "nobody"] * 25
    with ThreadPoolExecutor(max_workers=8) as workers:
        found = list(workers.map(directory.user_by_uid, names))
    assert [u.uid if u else None for u in found] == [n if n != "nobody" else None for n in names]
    assert 1 <= directory.pool.opened <= 3  # never more connections than pool_size
    directory.close()
