"""JSDL Parameter Sweep (GFD.149): one JobDefinition → one document per sweep point.

A sweep:Sweep (a child of jsdl:JobDefinition) holds Assignments, which advance in
lockstep (so they must yield equally many values), and nested Sweeps, each run in full
for every point of the enclosing one, one after the other: a Sweep's size is
``len(values) * sum(size(nested))`` (``* 1`` without nested ones). Several Sweeps
directly under the JobDefinition are likewise run one after the other.

An Assignment's DocumentNode is an XPath Match (prefixes from its NamespaceBindings,
then from the namespaces in scope where the Match is written). Every node it selects
takes the value: an element's text, an attribute's value or a text node. A Match that
selects nothing, or something else (a number, an element with children), is refused.

Everything is bounded before anything is built, because one request can otherwise ask
for unbounded work:
  * the number of points is computed arithmetically (a LoopInteger over a trillion
    values costs nothing) and refused above ``max_sweep``;
  * points x elements of the swept job definition is at most :data:`MAX_SWEEP_WORK`, and
    the job definition at most :data:`MAX_SWEPT_ELEMENTS` elements;
  * Sweeps nest at most :data:`MAX_DEPTH` deep;
  * a Match is at most :data:`MAX_MATCH` characters of a linear-time XPath subset
    (:func:`simple_xpath`), evaluated without EXSLT regular expressions on a private
    copy of the document. A Match outside the subset is UnsupportedFeature.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from gateway.jsdl.common import (
    JSDLFault,
    child_name,
    elements,
    invalid,
    name_of,
    path_of,
    shown,
    simple_text,
    split,
    unknown_jsdl,
    unsupported,
)
from gateway.jsdl.namespaces import SWEEP, SWEEP_FUNC

MAX_DEPTH = 8
MAX_MATCH = 1024

MAX_SWEPT_ELEMENTS = 2000  # a JobDefinition with a sweep is copied once per point
MAX_SWEEP_WORK = 100_000  # points x elements per point: about a second of reading
MAX_UNION = 8
ASSIGNMENT_CHILDREN = {
    "DocumentNode": SWEEP,
    "Values": SWEEP_FUNC,
    "LoopInteger": SWEEP_FUNC,
    "LoopDouble": SWEEP_FUNC,
}

# The XPath this gateway evaluates: location paths of child steps (name tests, wildcards,
# attributes, text(), node(), "." and ".."), at most one "//" each, joined by at most
# MAX_UNION "|"; predicates hold a position, last(), a position() comparison, or an
# attribute, child or text() compared with a literal. That covers every Match seen in
# practice, and keeps one evaluation linear in the document: libxml2 needs seconds for
# //*//* on a few thousand elements, and a path inside a predicate (//*[count(//*)]) is
# quadratic or worse.
_NAME = r"[A-Za-z_][\w.\-]*"
_QNAME = rf"(?:{_NAME}:\*|(?:{_NAME}:)?{_NAME}|\*)"
_TEST = rf"(?:text\(\)|node\(\)|{_QNAME})"
_LITERAL = r"""(?:'[^']*'|"[^"]*"|-?\d+(?:\.\d+)?)"""
_OPERAND = rf"(?:@{_QNAME}|text\(\)|\.|{_QNAME})"
_PREDICATE = (
    rf"\[\s*(?:\d+|last\(\)|position\(\)\s*(?:!=|<=|>=|=|<|>)\s*\d+"
    rf"|{_OPERAND}(?:\s*(?:!=|=)\s*{_LITERAL})?)\s*\]"
)
_STEP = rf"(?:\.\.|\.|@{_QNAME}|(?:child::)?{_TEST}(?:\s*{_PREDICATE})*)"
_PATH = re.compile(rf"\s*(?://?\s*)?{_STEP}(?:\s*//?\s*{_STEP})*\s*")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def simple_xpath(expression: str) -> bool:
    """Whether ``expression`` is in the subset above (see the comment there)."""
    if _QUOTED.sub("", expression).count("|") >= MAX_UNION:  # literals may hold "|"
        return False
    return all(
        _PATH.fullmatch(branch) and _QUOTED.sub("", branch).count("//") <= 1
        for branch in _split_union(expression)
    )


def _split_union(expression: str) -> list[str]:
    parts, depth_quote, current = [], "", []
    for ch in expression:
        if depth_quote:
            depth_quote = "" if ch == depth_quote else depth_quote
        elif ch in "'\"":
            depth_quote = ch
        elif ch == "|":
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class _Parameter:
    match: etree._Element  # the sweep:Match element, for faults
    xpath: etree.XPath


@dataclass(frozen=True)
class _Assignment:
    element: etree._Element
    parameters: tuple[_Parameter, ...]
    function: etree._Element
    size: int

    def values(self) -> Iterator[str]:
        return _function_values(self.function)


@dataclass(frozen=True)
class _Sweep:
    assignments: tuple[_Assignment, ...]
    nested: tuple[_Sweep, ...]
    size: int


def expand_sweep(job_definition: etree._Element, *, max_sweep: int) -> list[etree._Element]:
    """``[job_definition]`` without a sweep, else one swept copy per point (Sweeps removed)."""
    sweeps = [c for c in elements(job_definition) if split(c) == (SWEEP, "Sweep")]
    if not sweeps:
        return [job_definition]
    size = sum(1 for _ in job_definition.iter(etree.Element)) - sum(
        1 for s in sweeps for _ in s.iter(etree.Element)
    )
    if size > MAX_SWEPT_ELEMENTS:
        raise unsupported(
            sweeps[0],
            f"sweeps a job definition of {size} elements; this gateway sweeps job "
            f"definitions of at most {MAX_SWEPT_ELEMENTS} (the sweep itself not counted)",
            "Split the job into smaller documents.",
        )
    parsed = tuple(_read_sweep(s, depth=1) for s in sweeps)
    total = sum(s.size for s in parsed)
    if total > max_sweep:
        raise JSDLFault(
            "UnsupportedFeature",
            "sweep:Sweep",
            f"sweep:Sweep expands to {_count(total)} jobs (at {path_of(sweeps[0])}); this gateway "
            f"accepts at most {max_sweep} from one document. Split the sweep over several "
            "documents or narrow its ranges.",
        )
    if total * size > MAX_SWEEP_WORK:
        raise unsupported(
            sweeps[0],
            f"would build {total} job definitions of {size} elements each "
            f"({total * size} elements); this gateway builds at most {MAX_SWEEP_WORK} "
            "from one request",
            "Sweep fewer points per document, or keep the swept job definition small.",
        )
    base = copy.deepcopy(job_definition)
    for node in [c for c in elements(base) if split(c) == (SWEEP, "Sweep")]:
        base.remove(node)
    documents: list[etree._Element] = []
    for sweep in parsed:
        for point in _points(sweep):
            document = copy.deepcopy(base)
            for assignment, value in point:
                _assign(document, assignment, value)
            documents.append(document)
    return documents


def _count(number: int) -> str:
    return str(number) if number < 10**15 else "more than 10**15"


def _points(sweep: _Sweep) -> Iterator[list[tuple[_Assignment, str]]]:
    """Each point: the (assignment, value) pairs to apply, outermost first."""
    columns = [list(a.values()) for a in sweep.assignments]
    for row in zip(*columns, strict=True):
        here = list(zip(sweep.assignments, row, strict=True))
        if not sweep.nested:
            yield here
            continue
        for nested in sweep.nested:
            for inner in _points(nested):
                yield here + inner


def _assign(document: etree._Element, assignment: _Assignment, value: str) -> None:
    for parameter in assignment.parameters:
        try:
            selected = parameter.xpath(document)
        except etree.XPathError as exc:
            raise invalid(
                parameter.match,
                f"({parameter.xpath.path.strip()}) cannot be evaluated: {exc}",
                "Bind every prefix it uses with a sweep:NamespaceBinding; only XPath 1.0 "
                "core functions are available.",
            ) from None
        if not isinstance(selected, list) or not selected:
            raise invalid(
                parameter.match,
                f"({parameter.xpath.path.strip()}) selects nothing in the job definition",
                "Match must select the elements, attributes or text the sweep changes.",
            )
        for node in selected:
            _set(parameter, node, value)


def _set(parameter: _Parameter, node: object, value: str) -> None:
    if isinstance(node, etree._Element) and isinstance(node.tag, str):
        if next(elements(node), None) is not None:
            raise invalid(
                parameter.match,
                f"selects {name_of(node)}, which holds elements, not a value",
            )
        node.text = value
    elif isinstance(node, etree._ElementUnicodeResult) and node.is_attribute:
        parent = node.getparent()
        assert parent is not None and node.attrname is not None
        parent.set(node.attrname, value)
    elif isinstance(node, etree._ElementUnicodeResult) and node.is_text:
        parent = node.getparent()
        assert parent is not None
        parent.text = value
    elif isinstance(node, etree._ElementUnicodeResult) and node.is_tail:
        parent = node.getparent()
        assert parent is not None
        parent.tail = value
    else:
        raise invalid(
            parameter.match,
            "selects something that cannot take a value (it must select elements, "
            "attributes or text nodes)",
        )


def _read_sweep(element: etree._Element, *, depth: int) -> _Sweep:
    if depth > MAX_DEPTH:
        raise unsupported(element, f"nests sweeps deeper than {MAX_DEPTH} levels")
    assignments: list[_Assignment] = []
    nested: list[_Sweep] = []
    for child in elements(element):
        namespace, local = child_name(child, SWEEP)
        if (namespace, local) == (SWEEP, "Assignment"):
            assignments.append(_read_assignment(child))
        elif (namespace, local) == (SWEEP, "Sweep"):
            nested.append(_read_sweep(child, depth=depth + 1))
        elif namespace in (SWEEP, SWEEP_FUNC):
            raise unknown_jsdl(child, "sweep:Sweep", {"Assignment": SWEEP, "Sweep": SWEEP})
        else:
            raise invalid(child, "does not belong in a sweep:Sweep")
    if not assignments:
        raise invalid(element, "has no sweep:Assignment", "A Sweep changes at least one value.")
    first = assignments[0]
    for other in assignments[1:]:
        if other.size != first.size:
            raise invalid(
                other.element,
                f"yields {other.size} values, and the first Assignment of the same Sweep "
                f"yields {first.size}; Assignments of one Sweep advance together",
                "Give them equally many values, or nest one Sweep in the other for every "
                "combination.",
            )
    size = first.size * (sum(n.size for n in nested) if nested else 1)
    return _Sweep(tuple(assignments), tuple(nested), size)


def _read_assignment(element: etree._Element) -> _Assignment:
    parameters: list[_Parameter] = []
    function: etree._Element | None = None
    for child in elements(element):
        namespace, local = split(child)
        if (namespace or SWEEP, local) == (SWEEP, "DocumentNode"):
            parameters.append(_read_document_node(child))
        elif namespace == SWEEP_FUNC and local in ("Values", "LoopInteger", "LoopDouble"):
            if function is not None:
                raise invalid(child, "is a second function in one sweep:Assignment")
            function = child
        elif namespace in (SWEEP_FUNC, SWEEP, None):
            raise unknown_jsdl(child, "sweep:Assignment", ASSIGNMENT_CHILDREN)
        else:
            raise unsupported(child, "is a sweep extension this gateway does not understand")
    if not parameters:
        raise invalid(element, "has no sweep:DocumentNode saying what to change")
    if function is None:
        raise invalid(
            element,
            "has no function giving the values",
            "Add sweepfunc:Values, sweepfunc:LoopInteger or sweepfunc:LoopDouble.",
        )
    return _Assignment(element, tuple(parameters), function, _function_size(function))


def _read_document_node(element: etree._Element) -> _Parameter:
    bindings: dict[str, str] = {}
    match: etree._Element | None = None
    for child in elements(element):
        namespace, local = child_name(child, SWEEP)
        if (namespace, local) == (SWEEP, "NamespaceBinding"):
            prefix, uri = child.get("prefix"), child.get("ns")
            if not prefix or not uri:
                raise invalid(child, "needs both a prefix and an ns attribute")
            bindings[prefix] = uri
        elif (namespace, local) == (SWEEP, "Match") and match is None:
            match = child
        else:
            raise invalid(child, "does not belong in a sweep:DocumentNode (or appears twice)")
    if match is None:
        raise invalid(element, "has no sweep:Match (the XPath of the node to change)")
    expression = simple_text(match)
    if len(expression) > MAX_MATCH:
        raise unsupported(match, f"is longer than {MAX_MATCH} characters")
    in_scope = {k: v for k, v in match.nsmap.items() if k}
    try:
        xpath = etree.XPath(expression, namespaces={**in_scope, **bindings}, regexp=False)
    except etree.XPathSyntaxError as exc:
        raise invalid(match, f"is not a valid XPath 1.0 expression ({exc}): {expression}") from None
    if not simple_xpath(expression):
        raise unsupported(
            match,
            f"({expression}) uses XPath beyond the location paths this gateway evaluates",
            "Select the nodes with a path of names and at most one //, such as "
            "//jsdl-posix:Argument[2], //jsdl:Source/jsdl:URI or "
            "//jsdl-posix:Environment[@name='X']; predicates may hold a position, "
            "last(), or an attribute, child or text() compared with a literal.",
        )
    return _Parameter(match, xpath)


# -- functions (the sweep/functions namespace) -----------------------------------------


def _function_size(function: etree._Element) -> int:
    local = split(function)[1]
    if local == "Values":
        values = _value_elements(function)
        if not values:
            raise invalid(function, "lists no sweepfunc:Value")
        return len(values)
    start, end, step, exceptions = _loop(function, integral=local == "LoopInteger")
    count = _loop_count(function, start, end, step)
    skipped = {
        e for e in exceptions if _on_loop(e, start, step, count, integral=local == "LoopInteger")
    }
    size = count - len(skipped)
    if size <= 0:
        raise invalid(function, "yields no values", "Check start, end and step.")
    return size


def _function_values(function: etree._Element) -> Iterator[str]:
    local = split(function)[1]
    if local == "Values":
        for value in _value_elements(function):
            yield "".join(value.itertext())
        return
    integral = local == "LoopInteger"
    start, end, step, exceptions = _loop(function, integral=integral)
    count = _loop_count(function, start, end, step)
    for i in range(count):
        value = start + i * step
        if integral:
            if value not in exceptions:
                yield str(int(value))
        elif not any(math.isclose(value, e, rel_tol=1e-12, abs_tol=1e-12) for e in exceptions):
            yield repr(float(value))


def _value_elements(function: etree._Element) -> list[etree._Element]:
    values = []
    for child in elements(function):
        if child_name(child, SWEEP_FUNC) != (SWEEP_FUNC, "Value"):
            raise invalid(child, "does not belong in sweepfunc:Values")
        if next(elements(child), None) is not None:
            raise invalid(child, "must hold text only")
        values.append(child)
    return values


def _loop(function: etree._Element, *, integral: bool) -> tuple[float, float, float, set[float]]:
    kind = int if integral else float

    def number(name: str, default: str | None = None) -> float:
        text = function.get(name, default)
        if text is None:
            raise invalid(function, f"has no {name} attribute")
        try:
            value = kind(text.strip())
        except ValueError:
            raise invalid(
                function,
                f"has {name}={shown(text)}, which is not "
                + ("an integer" if integral else "a number"),
            ) from None
        if not integral and not math.isfinite(value):
            raise invalid(function, f"has {name}={shown(text)}, which is not finite")
        return value

    start, end, step = number("start"), number("end"), number("step", "1")
    if step == 0:
        raise invalid(function, "has step 0, which never reaches its end")
    exceptions: set[float] = set()
    for child in elements(function):
        if child_name(child, SWEEP_FUNC) != (SWEEP_FUNC, "Exception"):
            raise invalid(child, f"does not belong in {name_of(function)}")
        text = simple_text(child)
        try:
            exceptions.add(kind(text))
        except ValueError:
            raise invalid(child, f"is {shown(text)}, which is not a number") from None
    return start, end, step, exceptions


def _loop_count(function: etree._Element, start: float, end: float, step: float) -> int:
    """How many values start, start+step, ... up to end (inclusive) are: exact for
    integers of any size, and refused when a double loop's count is not even finite."""
    integral = all(isinstance(v, int) for v in (start, end, step))
    span = (int(end) - int(start)) // int(step) if integral else (end - start) / step
    if span < 0:
        raise invalid(
            function,
            f"counts from {start} by {step} away from its end {end}",
            "Swap start and end or change the sign of step.",
        )
    if integral:
        return int(span) + 1
    if not math.isfinite(span):
        raise unsupported(function, "yields more values than can be counted")
    return math.floor(span + 1e-9) + 1


def _on_loop(value: float, start: float, step: float, count: int, *, integral: bool) -> bool:
    """Whether the Exception ``value`` is one of the loop's values."""
    if integral:
        offset, remainder = divmod(int(value) - int(start), int(step))
        return remainder == 0 and 0 <= offset < count
    offset = (value - start) / step
    if not math.isfinite(offset):
        return False
    index = round(offset)
    if not 0 <= index < count:
        return False
    return math.isclose(start + index * step, value, rel_tol=1e-12, abs_tol=1e-12)
