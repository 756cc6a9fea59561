"""The OCCI registry and attribute types."""

from __future__ import annotations

import pytest

from gateway.occi import infrastructure as infra
from gateway.occi.model import RESOURCE, Attribute, AttributeError_


def test_registry_holds_core_infrastructure_and_templates() -> None:
    registry = infra.build_registry([("debian-12.qcow2", "Debian 12")], {"small": (1, 1.0)})
    assert registry.by_location("/compute/") is infra.COMPUTE
    assert infra.COMPUTE.is_a(RESOURCE) and not infra.COMPUTE.is_a(infra.STORAGE)
    os_tpl = registry.mixins["http://schemas.xtreemgate.org/occi/os_tpl#debian-12_qcow2"]
    assert os_tpl.is_a(infra.OS_TPL) and os_tpl.applies_to(infra.COMPUTE)
    assert not os_tpl.applies_to(infra.NETWORK)
    small = registry.by_location("/mixins/resource_tpl/small/")
    assert small is not None and small.attribute("occi.compute.cores").default == 1
    assert registry.actions[f"{infra.COMPUTE_ACTION}save"].attribute("name") is not None
    assert {k.term for k in registry.kinds.values()} >= {"entity", "resource", "link", "cluster"}


@pytest.mark.parametrize("name", ["Ubuntu 24.04", "9lives", "--", "a" * 3])
def test_terms_are_valid(name: str) -> None:
    term = infra.term_for(name)
    assert term[0].isalpha() and all(c.isalnum() or c in "_-" for c in term)


@pytest.mark.parametrize(
    ("attribute", "value", "expected"),
    [
        (Attribute("n", "number", integer=True), "4", 4),
        (Attribute("n", "number"), "1.5", 1.5),
        (Attribute("n", "number", integer=True), 2.0, 2),
        (Attribute("b", "boolean"), "true", True),
        (Attribute("s", enum=("x64", "x86")), "x64", "x64"),
        (Attribute("s"), 12, "12"),
    ],
)
def test_coerce(attribute: Attribute, value: object, expected: object) -> None:
    assert attribute.coerce(value) == expected


@pytest.mark.parametrize(
    ("attribute", "value", "reason"),
    [
        (Attribute("n", "number"), "lots", "number"),
        (Attribute("n", "number"), True, "boolean"),
        (Attribute("n", "number", integer=True), 1.5, "whole"),
        (Attribute("n", "number", minimum=1), 0, "at least"),
        (Attribute("b", "boolean"), "yes", "true or false"),
        (Attribute("s", enum=("x64",)), "arm", "one of"),
        (Attribute("s"), [1], "string"),
    ],
)
def test_coerce_refuses_with_reason(attribute: Attribute, value: object, reason: str) -> None:
    with pytest.raises(AttributeError_, match=reason):
        attribute.coerce(value)
