"""Pure parts of the identity adapters: group -> VO mapping, principal -> user mapping,
token sanity checks, and the config that feeds them."""

from __future__ import annotations

import pytest

from adapters.kerberos import KerberosError, PrincipalMapper, SPNEGOAcceptor, make_rule
from adapters.ldap import DirectoryConfig, DirectoryGroup, GroupMapping, MappingError
from adapters.ldap import parse_membership as membership
from backends.contracts.model import VOMembership
from gateway.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("atlas", VOMembership("atlas")),
        ("atlas/prod", VOMembership("atlas", "prod")),
        ("atlas/prod/t0:admin", VOMembership("atlas", "prod/t0", ("admin",))),
        ("atlas:manager", VOMembership("atlas", "", ("manager",))),
    ],
)
def test_membership_targets(target, expected):
    assert membership(target) == expected


@pytest.mark.parametrize("target", ["", "atlas/", "/atlas", "atlas:", "at las", "a:b:c", "*"])
def test_bad_membership_targets_are_refused(target):
    with pytest.raises(MappingError, match="is not 'vo\\[/group\\]\\[:role\\]'"):
        membership(target)


def group(cn: str, ou: str = "groups") -> DirectoryGroup:
    return DirectoryGroup(f"cn={cn},ou={ou},dc=example,dc=org", cn)


def test_explicit_entries_win_over_the_pattern_and_roles_merge():
    mapping = GroupMapping.from_config(
        {
            "CN=Atlas-Managers, OU=Groups, DC=example, DC=org": "atlas:manager",  # any spelling
            "atlas-admins": "atlas:admin",  # by cn
            "vo-cms": "cms/special",  # explicit beats the pattern
        },
        r"vo-(?P<vo>[a-z]+)(?:-(?P<group>[a-z]+))?(?:\.(?P<role>[a-z]+))?",
    )
    groups = [
        group("vo-atlas"),
        group("atlas-managers"),
        group("atlas-admins"),
        group("vo-atlas-prod.operator"),
        group("vo-cms"),
        group("staff"),  # matches nothing: no membership
        group("vo-"),  # the pattern does not match fully: none
    ]
    assert mapping.memberships(groups) == (
        VOMembership("atlas", "", ("admin", "manager")),
        VOMembership("atlas", "prod", ("operator",)),
        VOMembership("cms", "special", ()),
    )
    # the same cn elsewhere in the tree is not the explicitly mapped DN
    assert mapping.membership(group("atlas-managers", ou="other")) is None


@pytest.mark.parametrize(
    ("groups", "pattern", "message"),
    [
        ({"vo-x": "not a target"}, "", "is not 'vo"),
        ({}, "vo-(.*)", "has no named group"),
        ({}, "vo-(?P<vo>", "is not a regex"),
        ({"cn=x,,dc=org": "x"}, "", "is not a valid DN"),
    ],
)
def test_a_bad_mapping_is_refused_at_start(groups, pattern, message):
    with pytest.raises(MappingError, match=message):
        GroupMapping.from_config(groups, pattern)
    with pytest.raises(ConfigError, match="VO group mapping"):
        load_settings(
            None, ldap={"url": "ldap://h", "user_base": "dc=o", "vo_groups": groups,
                        "vo_group_pattern": pattern}
        )  # fmt: skip


def test_ldap_settings_need_a_user_base_and_an_ldap_url():
    with pytest.raises(ConfigError, match=r"ldap\.url is set but ldap\.user_base is empty"):
        load_settings(None, ldap={"url": "ldap://h"})
    with pytest.raises(ConfigError, match=r"ldap\.url: .*is not an ldap://"):
        load_settings(None, ldap={"url": "http://h", "user_base": "dc=o"})
    s = load_settings(None, ldap={"url": "ldaps://h ldaps://h2", "user_base": "dc=o"})
    config = DirectoryConfig.of(s.ldap)
    assert (config.url, config.user_base, config.timeout) == ("ldaps://h ldaps://h2", "dc=o", 10.0)
    assert config.enabled and not DirectoryConfig().enabled


def test_principal_mapping_rules_per_realm():
    mapper = PrincipalMapper.from_config(
        {
            "XG.TEST": "strip",
            "GUEST.TEST": "keep",
            "PARTNER.TEST": {"match": r"(?P<u>[^/@]+)@PARTNER\.TEST", "replace": r"p-\g<u>"},
        }
    )
    assert mapper.map("alice@XG.TEST") == "alice"
    assert mapper.map("carol@GUEST.TEST") == "carol@GUEST.TEST"
    assert mapper.map("bob@PARTNER.TEST") == "p-bob"
    with pytest.raises(KerberosError, match=r"realm OTHER\.TEST is not accepted here"):
        mapper.map("eve@OTHER.TEST")
    with pytest.raises(KerberosError, match="does not match the mapping rule of realm PARTNER"):
        mapper.map("bob/admin@PARTNER.TEST")
    with pytest.raises(KerberosError, match="'strip' maps only one-component principals"):
        mapper.map("HTTP/localhost@XG.TEST")  # a service is not the user "HTTP/localhost"
    with pytest.raises(KerberosError, match="maps to no usable user name"):
        mapper.map("@XG.TEST")
    with pytest.raises(KerberosError, match=r"realm xg\.test is not accepted"):
        mapper.map("alice@xg.test")  # realms are case-sensitive


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("lower", "is not 'strip', 'keep'"),
        ({"match": "(", "replace": "x"}, "is not a regex"),
        ({"match": "(?P<u>.*)", "replace": r"\g<user>"}, "names group 'user'"),
        ({"match": "(.*)", "replace": r"\2"}, "names group '2'"),
    ],
)
def test_bad_principal_rules_are_refused_at_start(rule, message):
    with pytest.raises(ValueError, match=message):
        make_rule(rule)
    with pytest.raises(ConfigError, match=r"realm X\.TEST"):
        load_settings(None, auth={"negotiate": {"realms": {"X.TEST": rule}}})


def test_negotiate_needs_a_realm_and_names_its_service():
    with pytest.raises(ConfigError, match=r"auth\.negotiate\.realms maps no realm"):
        load_settings(None, auth={"chain": ["negotiate"]})
    realms = {"realms": {"X.TEST": "strip"}}
    s = load_settings(None, auth={"chain": ["negotiate"], "negotiate": realms})
    assert s.negotiate_service.startswith("HTTP@")
    s = load_settings(None, server={"public_url": "https://gw.example.org:8443/"})
    assert s.negotiate_service == "HTTP@gw.example.org"
    s = load_settings(None, auth={"negotiate": {**realms, "service": "*"}})
    assert s.negotiate_service == ""  # any key in the keytab


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not base64!", "not base64"),
        ("", "is empty"),
        ("QUFB" * 30000, "larger than 65536 bytes"),
    ],
)
def test_tokens_that_are_not_tokens_never_reach_the_gss_library(token, reason):
    with pytest.raises(KerberosError, match=reason):
        SPNEGOAcceptor("HTTP@localhost").accept(token)
