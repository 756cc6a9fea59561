"""The OCCI text-rendering parsers: what real clients send is read, garbage is refused
with ParseError (a 400), never another exception (a 500)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.occi import jsonrender, negotiation, text
from gateway.occi.errors import OCCIError
from gateway.occi.text import ParseError

INFRA = "http://schemas.ogf.org/occi/infrastructure#"


def test_category_as_rocci_sends_it() -> None:
    doc = text.parse_fields([("Category", f'compute; scheme="{INFRA}"; class="kind";')])
    assert doc.categories[0].identifier == f"{INFRA}compute"
    assert doc.categories[0].cls == "kind"


def test_several_values_spacing_and_case() -> None:
    doc = text.parse_fields(
        [
            (
                "CATEGORY",
                f'compute ;scheme = "{INFRA}" ; class=kind , small; scheme="http://x/r#"; class="mixin"',
            ),
            (
                "x-occi-attribute",
                'occi.core.title="a, b; c", occi.compute.cores=2, occi.compute.memory=1.5',
            ),
            ("X-OCCI-Attribute", "occi.x.flag=true, occi.x.bare=word"),
        ]
    )
    assert [c.term for c in doc.categories] == ["compute", "small"]
    assert doc.categories[0].cls == "kind"
    assert doc.attributes == {
        "occi.core.title": "a, b; c",
        "occi.compute.cores": 2,
        "occi.compute.memory": 1.5,
        "occi.x.flag": True,
        "occi.x.bare": "word",
    }


def test_quoting_escapes_round_trip() -> None:
    value = 'say "hi"\\ and\nnew line, ünïcode'
    rendered = text.render_value(value, ascii_only=True)
    assert rendered.isascii()
    assert text.parse_attribute(f"occi.core.title={rendered}")[1] == value


def test_link_with_attributes_and_action_link() -> None:
    doc = text.parse_fields(
        [
            (
                "Link",
                f'</network/123>; rel="{INFRA}network"; self="/networkinterface/456"; '
                f'category="{INFRA}networkinterface"; occi.networkinterface.interface="eth0"',
            )
        ]
    )
    link = doc.links[0]
    assert (link.target, link.self_, link.category) == (
        "/network/123",
        "/networkinterface/456",
        f"{INFRA}networkinterface",
    )
    assert link.attributes == {"occi.networkinterface.interface": "eth0"}


def test_plain_body_and_locations() -> None:
    doc = text.parse_plain(
        f'Category: compute; scheme="{INFRA}"; class="kind"\r\n\r\n'
        "X-OCCI-Location: /compute/1, /compute/2\n"
    )
    assert doc.locations == ["/compute/1", "/compute/2"]
    assert text.parse_uri_list("# comment\n/compute/3\n").locations == ["/compute/3"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([("Category", "compute")], "scheme"),
        ([("Category", '; scheme="x#"')], "term"),
        ([("Category", 'compute; scheme="x#"; class="thing"')], "class"),
        ([("Category", 'compute; scheme="x#')], "unterminated"),
        ([("X-OCCI-Attribute", "occi.core.title")], "name=value"),
        ([("X-OCCI-Attribute", "9bad=1")], "attribute name"),
        ([("X-OCCI-Attribute", "occi.core.title=")], "empty"),
        ([("X-OCCI-Attribute", 'occi.core.title="x')], "unterminated"),
        ([("Link", "/compute/1; rel=x")], "<uri>"),
        ([("X-OCCI-Location", "/a b")], "URI"),
    ],
)
def test_garbage_is_refused_with_reason(fields: list[tuple[str, str]], reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        text.parse_fields(fields)


def test_plain_refuses_unknown_lines() -> None:
    with pytest.raises(ParseError, match="line 1"):
        text.parse_plain("Hello world\n")


def test_too_many_values() -> None:
    with pytest.raises(ParseError, match="more than"):
        text.parse_fields([("X-OCCI-Location", ",".join(["/c/1"] * (text.MAX_FIELDS + 1)))])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_plain_body_never_crashes(body: str) -> None:
    with contextlib.suppress(ParseError):
        text.parse_plain(body)


_alphabet = st.sampled_from(
    [*list('abc;=",<>\\ #/:.x0123\t'), "Category", "X-OCCI-Attribute", "Link"]
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["Category", "X-OCCI-Attribute", "Link", "X-OCCI-Location"]),
    st.lists(_alphabet, max_size=60).map("".join),
)
def test_fuzz_fields_never_crash(name: str, value: str) -> None:
    with contextlib.suppress(ParseError):
        text.parse_fields([(name, value)])


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "kind",
                        "mixins",
                        "attributes",
                        "id",
                        "action",
                        "locations",
                        "source",
                        "target",
                        "location",
                        "term",
                        "scheme",
                        "links",
                        "resources",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_fuzz_json_never_crashes(doc: object) -> None:
    import json

    with contextlib.suppress(ParseError):
        jsonrender.parse(json.dumps(doc))


@pytest.mark.parametrize(
    ("accept", "listing", "chosen"),
    [
        (None, False, "text/plain"),
        ("*/*", True, "text/plain"),
        ("text/*", False, "text/plain"),
        ("application/occi+json", False, "application/occi+json"),
        ("text/occi;q=0.5, application/json", False, "application/json"),
        ("text/uri-list", True, "text/uri-list"),
        ("application/*;q=0.2, text/occi", False, "text/occi"),
    ],
)
def test_negotiation(accept: str | None, listing: bool, chosen: str) -> None:
    assert negotiation.choose(accept, listing=listing) == chosen


@pytest.mark.parametrize("accept", ["image/png", "text/plain;q=0"])
def test_negotiation_406(accept: str) -> None:
    with pytest.raises(OCCIError) as exc:
        negotiation.choose(accept, listing=False)
    assert exc.value.status == 406


@pytest.mark.parametrize("accept", ["text/uri-list", "text/uri-list, image/png;q=0.5"])
def test_uri_list_of_a_non_collection_is_400(accept: str) -> None:
    """#16.9: GFD.229 §8: text/uri-list asked of an entity or the query interface is 400."""
    with pytest.raises(OCCIError) as exc:
        negotiation.choose(accept, listing=False)
    assert exc.value.status == 400 and "collections only" in exc.value.message


def test_version_check() -> None:
    negotiation.check_version({"User-Agent": "curl/8.0"})
    negotiation.check_version({"X-OCCI-Version": "1.1"})
    with pytest.raises(OCCIError):
        negotiation.check_version({"X-OCCI-Version": "OCCI/1.3"})
