"""The policy combiner and the rule language, on an in-memory index (no database)."""

import pytest

from backends.contracts.model import Principal, Resource, VOMembership
from backends.vo.accounts import expand_accounts
from backends.vo.errors import Invalid
from backends.vo.policy import (
    DEFAULT_VO_POLICY,
    Offer,
    PolicyIndex,
    combine,
    compile_policy,
    validate_document,
)

CLUSTER = Resource("cluster", "c1")  # owned by carol, offered to cms and atlas


def alice(*memberships, via="basic"):
    return Principal("alice", via, memberships=tuple(memberships))


CMS = VOMembership("cms")
CMS_PROD = VOMembership("cms", "", ("production",))
ATLAS = VOMembership("atlas")


def index(owner=None, vo=None, user=None):
    idx = PolicyIndex(version=1)
    idx.offers[("cluster", "c1")] = Offer("carol", frozenset({"cms", "atlas"}))
    idx.managers["cms"] = frozenset({"maria"})
    for name in ("cms", "atlas"):
        idx.vo[name] = compile_policy("vo", name, 1, DEFAULT_VO_POLICY)
    for level, policies in (("owner", owner), ("vo", vo), ("user", user)):
        for scope, rules in (policies or {}).items():
            doc = validate_document({"rules": rules})
            getattr(idx, level)[scope] = compile_policy(level, scope, 2, doc)
    return idx


def test_default_deny_says_why():
    d = combine(index(), alice(), "submit", CLUSTER)
    assert not d.permitted
    assert d.reason.startswith("default deny")
    assert "alice has no VO membership" in d.reason


def test_vo_member_may_use_what_the_owner_registered_into_the_vo():
    d = combine(index(), alice(CMS), "submit", CLUSTER)
    assert d.permitted and d.vo == "cms"  # accounting: through which VO
    assert "rule 'members-use-offered-resources' of the vo policy of cms (v1)" in d.reason
    assert "registered into VO cms by carol" in d.reason
    # not offered: another cluster
    d = combine(index(), alice(CMS), "submit", Resource("cluster", "c2", owner="dave"))
    assert not d.permitted
    assert "not offered to VO cms" in d.reason


def test_owner_deny_beats_vo_permit():
    idx = index(owner={"carol": [{"id": "no-delete", "effect": "deny", "actions": ["delete"]}]})
    d = combine(idx, alice(CMS), "delete", CLUSTER)
    assert not d.permitted
    assert "rule 'no-delete' of the owner policy of carol (v2)" in d.reason
    assert "owner's deny wins" in d.reason
    assert combine(idx, alice(CMS), "submit", CLUSTER).permitted


def test_owner_deny_can_target_one_vo_and_binds_the_owner_too():
    idx = index(
        owner={
            "carol": [
                {
                    "id": "not-atlas",
                    "effect": "deny",
                    "actions": ["*"],
                    "conditions": {"vos": ["atlas"]},
                },
                {"id": "freeze", "effect": "deny", "actions": ["reconfigure"]},
            ]
        }
    )
    assert not combine(idx, alice(ATLAS), "submit", CLUSTER).permitted
    assert combine(idx, alice(CMS), "submit", CLUSTER).permitted
    carol = Principal("carol", "basic")
    own = Resource("cluster", "c1", owner="carol")
    assert combine(idx, carol, "submit", own).permitted
    d = combine(idx, carol, "reconfigure", own)
    assert not d.permitted and "'freeze'" in d.reason


def test_vo_narrows_by_role_and_deny():
    idx = index(
        vo={
            "cms": [
                {
                    "id": "prod-submits",
                    "effect": "permit",
                    "actions": ["submit"],
                    "conditions": {"roles": ["production"]},
                },
                {"id": "readers", "effect": "permit", "actions": ["read", "list-*"]},
                {"id": "no-vm", "effect": "deny", "actions": ["vm:*"]},
            ]
        }
    )
    assert not combine(idx, alice(CMS), "submit", CLUSTER).permitted
    d = combine(idx, alice(CMS_PROD), "submit", CLUSTER)
    assert d.permitted and "'prod-submits'" in d.reason
    assert combine(idx, alice(CMS), "list-jobs", CLUSTER).permitted  # wildcard
    d = combine(idx, alice(CMS_PROD), "vm:start", CLUSTER)
    assert not d.permitted and "denied by rule 'no-vm'" in d.reason


def test_vo_group_condition_includes_subgroups():
    idx = index(
        vo={
            "cms": [
                {
                    "id": "higgs",
                    "effect": "permit",
                    "actions": ["*"],
                    "conditions": {"groups": ["analysis"]},
                }
            ]
        }
    )
    assert not combine(idx, alice(CMS), "submit", CLUSTER).permitted
    assert combine(
        idx, alice(CMS, VOMembership("cms", "analysis/higgs")), "submit", CLUSTER
    ).permitted
    assert not combine(
        idx, alice(CMS, VOMembership("cms", "analysisx")), "submit", CLUSTER
    ).permitted


def test_the_resources_vo_pins_which_vo_grants():
    idx = index(vo={"cms": [{"id": "nothing", "effect": "deny", "actions": ["*"]}]})
    both = alice(CMS, ATLAS)
    assert combine(idx, both, "submit", CLUSTER).permitted  # atlas grants it
    d = combine(idx, both, "submit", Resource("cluster", "c1", vo="cms"))
    assert not d.permitted and "'nothing'" in d.reason


def test_user_narrows_what_their_delegated_tokens_may_do():
    idx = index(
        user={
            "alice": [
                {
                    "id": "tokens-read-only",
                    "effect": "deny",
                    "actions": ["*"],
                    "resources": {"kinds": ["cluster"]},
                    "conditions": {"authenticated_by": ["vo-token"]},
                },
            ]
        }
    )
    assert combine(idx, alice(CMS), "submit", CLUSTER).permitted
    d = combine(idx, alice(CMS, via="vo-token"), "submit", CLUSTER)
    assert not d.permitted and "'tokens-read-only' of the user policy of alice" in d.reason


def test_user_permit_rules_are_an_allow_list():
    idx = index(user={"alice": [{"id": "only-read", "effect": "permit", "actions": ["read"]}]})
    assert combine(idx, alice(CMS), "read", CLUSTER).permitted
    d = combine(idx, alice(CMS), "submit", CLUSTER)
    assert not d.permitted and "outside what the user policy of alice" in d.reason
    # the allow-list binds even on what alice owns
    assert not combine(idx, alice(), "delete", Resource("volume", "v", owner="alice")).permitted


def test_owner_fallback_factory_rule_managers_and_site_admins():
    idx = index()
    own = Resource("activity", "a1", owner="alice")
    assert "owns activity a1" in combine(idx, alice(), "terminate", own).reason
    assert not combine(idx, Principal("bob", "basic"), "terminate", own).permitted
    assert combine(idx, alice(), "create", Resource("factory")).permitted
    assert not combine(idx, alice(), "create", Resource("factory"), open_factory=False).permitted
    maria = Principal("maria", "basic")
    assert "manages VO cms" in combine(idx, maria, "manage", Resource("vo", "cms")).reason
    assert not combine(idx, maria, "manage", Resource("vo", "atlas")).permitted
    root = Principal("root", "basic", site_admin=True)
    assert combine(idx, root, "manage", Resource("vo", "atlas")).permitted


def test_owner_permit_without_vo_condition_grants_directly():
    idx = index(
        owner={
            "carol": [
                {
                    "id": "bob-may",
                    "effect": "permit",
                    "actions": ["submit"],
                    "conditions": {"principals": ["bob"]},
                }
            ]
        }
    )
    d = combine(idx, Principal("bob", "basic"), "submit", CLUSTER)
    assert d.permitted and "'bob-may'" in d.reason


def test_owner_permit_naming_a_vo_offers_without_registration():
    idx = index(
        owner={
            "dave": [
                {
                    "id": "to-cms",
                    "effect": "permit",
                    "actions": ["*"],
                    "conditions": {"vos": ["cms"]},
                }
            ]
        }
    )
    res = Resource("volume", "v9", owner="dave")
    d = combine(idx, alice(CMS), "read", res)
    assert d.permitted and "offered to VO cms by rule 'to-cms'" in d.reason
    assert not combine(idx, alice(ATLAS), "read", res).permitted


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({}, "(document): 'rules' is a required property"),
        ({"rules": [{"effect": "allow", "actions": ["*"]}]}, "rules/0/effect"),
        ({"rules": [{"effect": "deny", "actions": []}]}, "rules/0/actions"),
        ({"rules": [{"effect": "deny", "actions": ["a b"]}]}, "rules/0/actions/0"),
        (
            {"rules": [{"effect": "deny", "actions": ["*"], "conditions": {"colour": ["red"]}}]},
            "rules/0/conditions",
        ),
        ({"rules": "all"}, "rules"),
    ],
)
def test_bad_policies_are_refused_with_their_place(document, where):
    with pytest.raises(Invalid, match=r"vo-policy\.schema\.json") as caught:
        validate_document(document)
    assert where in str(caught.value)


def test_pool_ranges():
    assert expand_accounts(["vo1pool001..vo1pool003", "extra"]) == [
        "vo1pool001",
        "vo1pool002",
        "vo1pool003",
        "extra",
    ]
    for bad in (["vo1pool003..vo1pool001"], ["Bad Name"], ["a1..b2"], ["x", "x"]):
        with pytest.raises(ValueError):
            expand_accounts(bad)


def test_a_registration_the_resources_backend_contradicts_grants_nothing():
    """#16.14: ownership comes from the resource's backend, never from the registrant."""
    idx = index()
    # dave (atlas) registered cms's volume into atlas: the volume belongs to cms
    idx.offers[("volume", "avol")] = Offer("dave", frozenset({"atlas"}))
    dave = Principal("dave", "basic", memberships=(ATLAS,))
    for action in ("read", "write", "delete"):
        d = combine(idx, dave, action, Resource("volume", "avol", vo="cms"))
        assert not d.permitted, d.reason
        assert "dave owns" not in d.reason
    # a VM recorded as alice's: bob's registration of it makes bob neither owner nor user
    idx.offers[("compute", "vm1")] = Offer("bob", frozenset({"atlas"}))
    for who in ("bob", "dave"):
        asker = Principal(who, "basic", memberships=(ATLAS,))
        d = combine(idx, asker, "stop", Resource("compute", "vm1", owner="alice"))
        assert not d.permitted, d.reason
    # the registration that agrees with the backend still offers it
    idx.offers[("volume", "cvol")] = Offer("maria", frozenset({"cms"}))
    assert combine(idx, alice(CMS), "read", Resource("volume", "cvol", vo="cms")).permitted
    maria = Principal("maria", "basic")
    assert combine(idx, maria, "write", Resource("volume", "cvol", vo="cms")).permitted
