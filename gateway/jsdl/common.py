"""What every part of the JSDL reader shares: the fault, element names.

Faults name elements the way the JSDL specifications print them (``jsdl:DataStaging``,
``jsdl-posix:Executable``), whatever prefix the submitter's document happened to use, so
a person can find the element in the specification and in their own document.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from gateway.jsdl.namespaces import HPCPA, HPCPA_OGF, JSDL, POSIX, SPMD, SWEEP, SWEEP_FUNC, UNICORE
from gateway.xmlns import HPCP_AC, HPCP_FS, WSSE

PREFIXES = {
    JSDL: "jsdl",
    POSIX: "jsdl-posix",
    HPCPA: "jsdl-hpcpa",
    HPCPA_OGF: "jsdl-hpcpa",
    SPMD: "jsdl-spmd",
    SWEEP: "sweep",
    SWEEP_FUNC: "sweepfunc",
    HPCP_FS: "hpcp-fs",
    HPCP_AC: "hpcp-ac",
    WSSE: "wsse",
    UNICORE: "unicore",
}

INVALID = "InvalidRequestMessage"
UNSUPPORTED = "UnsupportedFeature"


class JSDLFault(Exception):
    """A JSDL document the gateway will not run, in OGSA-BES fault terms.

    ``fault`` is the BES fault name (``InvalidRequestMessage`` for a document that is
    wrong, ``UnsupportedFeature`` for a correct one asking for something this gateway
    does not do), ``element`` the offending element as the specification names it, and
    ``message`` a sentence that says where it is, what is wrong and what to do instead.
    """

    def __init__(self, fault: str, element: str, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.element = element
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"JSDLFault({self.fault!r}, {self.element!r}, {self.message!r})"


def qname(namespace: str | None, local: str) -> str:
    """``jsdl-posix:Executable`` for a JSDL name; ``{urn:x}Foo`` for a foreign one."""
    if namespace is None:
        return local
    prefix = PREFIXES.get(namespace)
    return f"{prefix}:{local}" if prefix else f"{{{namespace}}}{local}"


def split(element: etree._Element) -> tuple[str | None, str]:
    """(namespace or None, local name) of an element, from its Clark-notation tag."""
    tag = element.tag
    if tag[0] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def name_of(element: etree._Element) -> str:
    return qname(*split(element))


JOB_DEFINITION = f"{{{JSDL}}}JobDefinition"


def path_of(element: etree._Element) -> str:
    """Where an element is, from the JobDefinition down: ``jsdl:DataStaging[2]/jsdl:URI``
    (the JobDefinition may sit inside a SOAP message; the path starts at it)."""
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        step = name_of(node)
        parent = node.getparent()
        if parent is not None and node.tag != JOB_DEFINITION:
            same = [c for c in elements(parent) if c.tag == node.tag]
            if len(same) > 1:
                step += f"[{same.index(node) + 1}]"
        steps.append(step)
        node = None if node.tag == JOB_DEFINITION else parent
    return "/".join(reversed(steps))


def elements(parent: etree._Element) -> Iterator[etree._Element]:
    """Child elements only: comments and processing instructions are not content."""
    for child in parent:
        if isinstance(child.tag, str):
            yield child


def child_name(child: etree._Element, default_namespace: str) -> tuple[str, str]:
    """The child's (namespace, local name); an unqualified child is read as if it were in
    ``default_namespace`` (its parent's vocabulary): real clients forget the prefix on
    elements such as jsdl:URI, and the meaning is not in doubt."""
    namespace, local = split(child)
    return (namespace or default_namespace), local


def invalid(element: etree._Element, problem: str, fix: str = "") -> JSDLFault:
    """An InvalidRequestMessage fault about ``element``: ``problem`` says what is wrong."""
    return _fault(INVALID, element, problem, fix)


def unsupported(element: etree._Element, problem: str, fix: str = "") -> JSDLFault:
    """An UnsupportedFeature fault naming ``element``."""
    return _fault(UNSUPPORTED, element, problem, fix)


def _fault(kind: str, element: etree._Element, problem: str, fix: str) -> JSDLFault:
    name = name_of(element)
    where = path_of(element)
    message = f"{name} {problem}" + (f" (at {where})." if where != name else ".")
    if fix:
        message += f" {fix}"
    return JSDLFault(kind, name, message)


def unknown_jsdl(child: etree._Element, parent: str, expected: dict[str, str]) -> JSDLFault:
    """The fault for a JSDL-namespace (or unqualified) child that ``parent`` does not
    define. ``expected`` maps the local names ``parent`` does define to their namespace,
    so that the commonest mistake, the right name in the wrong namespace (a prefix or
    default xmlns slip), gets the exact fix rather than a shrug."""
    namespace, local = split(child)
    if local in expected and namespace != expected[local]:
        right = expected[local]
        return invalid(
            child,
            f"is in the wrong namespace for a child of {parent}",
            f"Write it as {qname(right, local)} (namespace {right}); check the prefix or "
            "the default xmlns.",
        )
    return unsupported(child, f"is not a child of {parent} that this gateway knows")


def simple_text(element: etree._Element, *, required: bool = True) -> str:
    """The text of an element that must hold text only, stripped of surrounding white
    space (which XML tools add freely and no JSDL value means)."""
    inner = next(elements(element), None)
    if inner is not None:
        raise invalid(element, f"must hold text only, not the element {name_of(inner)}")
    value = "".join(element.itertext()).strip()
    if required and not value:
        raise invalid(element, "is empty", "Give it a value or leave the element out.")
    return value


def shown(value: str, limit: int = 80) -> str:
    """A value from the document, quoted for a message, cut short if it is long."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def boolean(element: etree._Element) -> bool:
    value = simple_text(element)
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise invalid(element, f"must be true or false (xsd:boolean), not {shown(value)}")


def attribute(element: etree._Element, *names: str) -> str | None:
    """An unqualified attribute, matched case-insensitively against ``names`` (GFD.115
    spells actualtotalcpucount in lower case, UNICORE in camel case)."""
    wanted = {n.lower() for n in names}
    for key, value in element.attrib.items():
        if not key.startswith("{") and key.lower() in wanted:
            return value
    return None
