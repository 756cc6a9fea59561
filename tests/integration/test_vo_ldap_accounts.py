"""Dynamic account mapping with a real directory, as build_runtime wires it: a user's
own posixAccount from LDAP, otherwise a lease from the VO's pool of accounts in LDAP;
no grid-mapfile anywhere."""

from __future__ import annotations

import pytest

from backends.contracts.interfaces import BackendError
from backends.contracts.model import Principal, VOMembership
from backends.store import migrate
from gateway.runtime import build_runtime
from tests.identity_services import slapd_settings

pytestmark = pytest.mark.service


@pytest.fixture
def vo(slapd, make_settings):
    settings = make_settings(ldap=slapd_settings(slapd.url))
    migrate.upgrade(settings.database_url)
    runtime = build_runtime(settings)
    yield runtime.backends["vo"]
    runtime.close()


def member(name: str, vo: str) -> Principal:
    return Principal(name, "saml", memberships=(VOMembership(vo),))


def test_a_directory_user_runs_as_their_own_account(vo) -> None:
    account = vo.account_for(member("alice", "atlas"), "atlas")
    assert (account.username, account.uid, account.home) == ("alice", 10001, "/home/alice")


def test_vo_members_without_an_account_lease_from_the_directory_pool(vo) -> None:
    carol = vo.account_for(member("carol@partner.example", "atlas"), "atlas")
    dan = vo.account_for(member("dan@partner.example", "atlas"), "atlas")
    assert {carol.username, dan.username} <= {"atlas001", "atlas002", "atlas003"}
    assert carol.username != dan.username  # never one account for two people
    assert carol.gid == 60000 and carol.home == f"/pool/{carol.username}"
    again = vo.account_for(member("carol@partner.example", "atlas"), "atlas")
    assert again == carol  # the lease is reused


def test_a_full_directory_pool_refuses_with_a_reason(vo) -> None:
    first = vo.account_for(member("erin@partner.example", "cms"), "cms")
    assert first.username == "cms001"
    with pytest.raises(BackendError, match=r"cms"):
        vo.account_for(member("frank@partner.example", "cms"), "cms")
