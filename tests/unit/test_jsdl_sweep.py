"""Parameter sweeps (GFD.149): expansion, functions, nesting, the bound, and faults."""

from __future__ import annotations

import time

import pytest

from backends.contracts.model import JobSpec
from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import parse

HEAD = (
    '<jsdl:JobDefinition xmlns:jsdl="http://schemas.ggf.org/jsdl/2005/11/jsdl" '
    'xmlns:posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix" '
    'xmlns:sweep="http://schemas.ogf.org/jsdl/2009/03/sweep" '
    'xmlns:fn="http://schemas.ogf.org/jsdl/2009/03/sweep/functions">'
    "<jsdl:JobDescription><jsdl:Application><posix:POSIXApplication>"
    "<posix:Executable>/bin/echo</posix:Executable>"
    "<posix:Argument>A</posix:Argument><posix:Argument>B</posix:Argument>"
    '<posix:Environment name="MODE">fast</posix:Environment>'
    "</posix:POSIXApplication></jsdl:Application></jsdl:JobDescription>"
)


def document(*sweeps: str) -> bytes:
    return (HEAD + "".join(sweeps) + "</jsdl:JobDefinition>").encode()


def node(match: str, binding: bool = True) -> str:
    ns = (
        '<sweep:NamespaceBinding ns="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix" prefix="p"/>'
        if binding
        else ""
    )
    return f"<sweep:DocumentNode>{ns}<sweep:Match>{match}</sweep:Match></sweep:DocumentNode>"


def values(*items: str) -> str:
    return "<fn:Values>" + "".join(f"<fn:Value>{v}</fn:Value>" for v in items) + "</fn:Values>"


def assignment(match: str, function: str) -> str:
    return f"<sweep:Assignment>{node(match)}{function}</sweep:Assignment>"


def sweep(*parts: str) -> str:
    return "<sweep:Sweep>" + "".join(parts) + "</sweep:Sweep>"


def read(data: bytes, **kw: int) -> list[JobSpec]:
    return read_job_definition(parse(data), **kw)


def refused(data: bytes, **kw: int) -> JSDLFault:
    with pytest.raises(JSDLFault) as caught:
        read(data, **kw)
    return caught.value


def test_values_replace_an_argument_per_point() -> None:
    specs = read(document(sweep(assignment("//p:Argument[1]", values("x", "y", "z")))))
    assert [s.arguments for s in specs] == [("x", "B"), ("y", "B"), ("z", "B")]


def test_loop_integer_with_step_and_exceptions() -> None:
    loop = '<fn:LoopInteger start="1" end="10" step="3"><fn:Exception>7</fn:Exception><fn:Exception>8</fn:Exception></fn:LoopInteger>'
    specs = read(document(sweep(assignment("//p:Argument[2]", loop))))
    assert [s.arguments[1] for s in specs] == ["1", "4", "10"]


def test_loop_integer_counting_down() -> None:
    loop = '<fn:LoopInteger start="3" end="1" step="-1"/>'
    specs = read(document(sweep(assignment("//p:Argument[2]", loop))))
    assert [s.arguments[1] for s in specs] == ["3", "2", "1"]


def test_loop_double() -> None:
    loop = '<fn:LoopDouble start="0.5" end="1.5" step="0.25"><fn:Exception>1.0</fn:Exception></fn:LoopDouble>'
    specs = read(document(sweep(assignment("//p:Argument[1]", loop))))
    assert [float(s.arguments[0]) for s in specs] == [0.5, 0.75, 1.25, 1.5]


def test_attribute_and_text_nodes_and_several_matches() -> None:
    specs = read(
        document(
            sweep(
                "<sweep:Assignment>"
                + node("//p:Environment/@name")
                + node("//p:Argument/text()")
                + values("ONE", "TWO")
                + "</sweep:Assignment>"
            )
        )
    )
    assert [s.environment for s in specs] == [{"ONE": "fast"}, {"TWO": "fast"}]
    # text() matches the text of both Arguments: each selected node takes the value
    assert [s.arguments for s in specs] == [("ONE", "ONE"), ("TWO", "TWO")]


def test_prefixes_in_scope_work_without_a_namespace_binding() -> None:
    specs = read(
        document(
            sweep(
                "<sweep:Assignment>"
                + node("//posix:Executable", binding=False)
                + values("/bin/true", "/bin/false")
                + "</sweep:Assignment>"
            )
        )
    )
    assert [s.executable for s in specs] == ["/bin/true", "/bin/false"]


def test_assignments_of_one_sweep_advance_together() -> None:
    specs = read(
        document(
            sweep(
                assignment("//p:Argument[1]", values("a1", "a2")),
                assignment("//p:Argument[2]", values("b1", "b2")),
            )
        )
    )
    assert [s.arguments for s in specs] == [("a1", "b1"), ("a2", "b2")]


def test_nested_sweeps_multiply_and_siblings_add() -> None:
    inner_a = sweep(assignment("//p:Argument[2]", values("i", "j")))
    inner_b = sweep(assignment("//p:Environment", values("slow")))
    specs = read(document(sweep(assignment("//p:Argument[1]", values("x", "y")), inner_a, inner_b)))
    assert [(s.arguments, s.environment["MODE"]) for s in specs] == [
        (("x", "i"), "fast"),
        (("x", "j"), "fast"),
        (("x", "B"), "slow"),
        (("y", "i"), "fast"),
        (("y", "j"), "fast"),
        (("y", "B"), "slow"),
    ]


def test_two_top_level_sweeps_run_one_after_the_other() -> None:
    specs = read(
        document(
            sweep(assignment("//p:Argument[1]", values("x"))),
            sweep(assignment("//p:Argument[2]", values("y"))),
        )
    )
    assert [s.arguments for s in specs] == [("x", "B"), ("A", "y")]


def test_the_bound_is_checked_before_anything_is_built() -> None:
    huge = '<fn:LoopInteger start="0" end="1000000000000"/>'
    started = time.perf_counter()
    caught = refused(document(sweep(assignment("//p:Argument[1]", huge))))
    assert time.perf_counter() - started < 0.5
    assert (caught.fault, caught.element) == ("UnsupportedFeature", "sweep:Sweep")
    assert "1000000000001 jobs" in str(caught) and "at most 1000" in str(caught)


def test_nested_sweeps_over_the_bound_are_refused_fast() -> None:
    level = assignment("//p:Argument[1]", '<fn:LoopInteger start="1" end="1000"/>')
    nested = sweep(level, sweep(level, sweep(level, sweep(level))))
    started = time.perf_counter()
    caught = refused(document(nested))
    assert time.perf_counter() - started < 0.5
    assert "1000000000000 jobs" in str(caught)


def test_max_sweep_is_the_callers() -> None:
    three = document(sweep(assignment("//p:Argument[1]", values("a", "b", "c"))))
    assert len(read(three, max_sweep=3)) == 3
    assert refused(three, max_sweep=2).element == "sweep:Sweep"


def test_deep_nesting_is_refused() -> None:
    inner = sweep(assignment("//p:Argument[1]", values("v")))
    for _ in range(9):
        inner = sweep(assignment("//p:Argument[1]", values("v")), inner)
    caught = refused(document(inner))
    assert "deeper than 8" in str(caught)


@pytest.mark.parametrize(
    ("sweep_xml", "fault", "element", "says"),
    [
        (
            sweep(assignment("//p:Nothing", values("v"))),
            "InvalidRequestMessage",
            "sweep:Match",
            "selects nothing",
        ),
        (
            sweep(assignment("//p:Argument[", values("v"))),
            "InvalidRequestMessage",
            "sweep:Match",
            "not a valid XPath",
        ),
        (
            sweep(assignment("//q:Argument", values("v"))),
            "InvalidRequestMessage",
            "sweep:Match",
            "(//q:Argument) cannot be evaluated: Undefined namespace prefix",
        ),
        (
            sweep(assignment("//p:POSIXApplication", values("v"))),
            "InvalidRequestMessage",
            "sweep:Match",
            "holds elements",
        ),
        (
            sweep(assignment("count(//p:Argument)", values("v"))),
            "UnsupportedFeature",
            "sweep:Match",
            "beyond the location paths",
        ),
        (
            sweep(assignment("//*[re:test(., 'A')]", values("v"))).replace(
                "<sweep:Match>", '<sweep:Match xmlns:re="http://exslt.org/regular-expressions">'
            ),
            "UnsupportedFeature",
            "sweep:Match",
            "at most one //",
        ),
        (
            sweep(
                assignment("//p:Argument[1]", values("a", "b")),
                assignment("//p:Argument[2]", values("c")),
            ),
            "InvalidRequestMessage",
            "sweep:Assignment",
            "advance together",
        ),
        (sweep(), "InvalidRequestMessage", "sweep:Sweep", "no sweep:Assignment"),
        (
            sweep(f"<sweep:Assignment>{node('//p:Argument')}</sweep:Assignment>"),
            "InvalidRequestMessage",
            "sweep:Assignment",
            "no function",
        ),
        (
            sweep(f"<sweep:Assignment>{values('a')}</sweep:Assignment>"),
            "InvalidRequestMessage",
            "sweep:Assignment",
            "no sweep:DocumentNode",
        ),
        (
            sweep(assignment("//p:Argument", "<fn:Values/>")),
            "InvalidRequestMessage",
            "sweepfunc:Values",
            "no sweepfunc:Value",
        ),
        (
            sweep(assignment("//p:Argument", '<fn:LoopInteger start="1" end="5" step="0"/>')),
            "InvalidRequestMessage",
            "sweepfunc:LoopInteger",
            "step 0",
        ),
        (
            sweep(assignment("//p:Argument", '<fn:LoopInteger start="5" end="1"/>')),
            "InvalidRequestMessage",
            "sweepfunc:LoopInteger",
            "Swap start and end",
        ),
        (
            sweep(assignment("//p:Argument", '<fn:LoopInteger start="1.5" end="3"/>')),
            "InvalidRequestMessage",
            "sweepfunc:LoopInteger",
            "not an integer",
        ),
        (
            sweep(assignment("//p:Argument", '<fn:LoopInteger end="3"/>')),
            "InvalidRequestMessage",
            "sweepfunc:LoopInteger",
            "no start",
        ),
        (
            sweep(
                assignment(
                    "//p:Argument",
                    '<fn:LoopInteger start="1" end="1"><fn:Exception>1</fn:Exception></fn:LoopInteger>',
                )
            ),
            "InvalidRequestMessage",
            "sweepfunc:LoopInteger",
            "yields no values",
        ),
        (
            sweep(assignment("//p:Argument", "<fn:Random/>")),
            "UnsupportedFeature",
            "sweepfunc:Random",
            "not a child of sweep:Assignment",
        ),
    ],
)
def test_sweep_faults(sweep_xml: str, fault: str, element: str, says: str) -> None:
    caught = refused(document(sweep_xml))
    assert (caught.fault, caught.element) == (fault, element)
    assert says in str(caught)


def test_a_fault_in_a_swept_document_says_which_point() -> None:
    caught = refused(
        document(sweep(assignment("//p:Executable", values("/bin/true", "rm -rf /; x"))))
    )
    assert caught.element == "jsdl-posix:Executable"
    assert "sweep point 2 of 2" in str(caught)


def test_a_long_match_is_refused() -> None:
    caught = refused(document(sweep(assignment("//p:Argument" + "[1]" * 400, values("v")))))
    assert (caught.fault, caught.element) == ("UnsupportedFeature", "sweep:Match")


def test_attribute_predicates_select_one_environment_variable() -> None:
    specs = read(document(sweep(assignment("//p:Environment[@name='MODE']", values("a", "b")))))
    assert [s.environment for s in specs] == [{"MODE": "a"}, {"MODE": "b"}]


@pytest.mark.parametrize(
    "match",
    ["//*//*", "//*[count(//*) > 0]", "//p:Argument/following-sibling::*", "//a | " * 8 + "//a"],
)
def test_costly_xpath_is_refused_before_it_runs(match: str) -> None:
    many = "".join(f"<posix:Argument>{i}</posix:Argument>" for i in range(1500))
    data = document(sweep(assignment(match, values("v")))).replace(
        b"<posix:Argument>A</posix:Argument>", many.encode()
    )
    started = time.perf_counter()
    caught = refused(data)
    assert time.perf_counter() - started < 0.5
    assert (caught.fault, caught.element) == ("UnsupportedFeature", "sweep:Match")


def test_a_large_swept_document_is_refused() -> None:
    many = "".join(f"<posix:Argument>{i}</posix:Argument>" for i in range(2100))
    data = document(sweep(assignment("//p:Argument[1]", values("v")))).replace(
        b"<posix:Argument>A</posix:Argument>", many.encode()
    )
    caught = refused(data)
    assert (caught.fault, caught.element) == ("UnsupportedFeature", "sweep:Sweep")
    assert "at most 2000" in str(caught)


def test_points_times_elements_is_bounded_and_the_bound_is_quick_to_reach() -> None:
    many = "".join(f"<posix:Argument>{i}</posix:Argument>" for i in range(190))
    loop = '<fn:LoopInteger start="1" end="1000"/>'
    data = document(sweep(assignment("//p:Argument[1]", loop))).replace(
        b"<posix:Argument>A</posix:Argument>", many.encode()
    )
    caught = refused(data)
    assert (caught.fault, caught.element) == ("UnsupportedFeature", "sweep:Sweep")
    assert "at most 100000" in str(caught)
    # just under the bound: built and read in well under the CreateActivity budget
    loop = '<fn:LoopInteger start="1" end="490"/>'
    data = document(sweep(assignment("//p:Argument[1]", loop))).replace(
        b"<posix:Argument>A</posix:Argument>", many.encode()
    )
    started = time.perf_counter()
    specs = read(data)
    assert len(specs) == 490 and specs[-1].arguments[0] == "490"
    assert time.perf_counter() - started < 5


def test_a_function_in_the_sweep_namespace_gets_the_fix() -> None:
    wrong = "<sweep:Values><fn:Value>v</fn:Value></sweep:Values>"
    caught = refused(document(sweep(assignment("//p:Argument[1]", wrong))))
    assert (caught.fault, caught.element) == ("InvalidRequestMessage", "sweep:Values")
    assert "Write it as sweepfunc:Values" in str(caught)


@pytest.mark.parametrize(
    ("function", "fault", "says"),
    [
        (
            '<fn:LoopDouble start="-1e308" end="1e308" step="1"/>',
            "UnsupportedFeature",
            "more values than can be counted",
        ),
        (
            f'<fn:LoopInteger start="0" end="{10**400}"/>',
            "UnsupportedFeature",
            "more than 10**15 jobs",
        ),
        (
            '<fn:LoopDouble start="0" end="1" step="1e-300"/>',
            "UnsupportedFeature",
            "more than 10**15 jobs",
        ),
        (
            '<fn:LoopInteger start="1" end="9999"><fn:Exception>'
            + "9" * 400
            + "</fn:Exception></fn:LoopInteger>",
            "UnsupportedFeature",
            "9999 jobs",
        ),
        (
            '<fn:LoopDouble start="-1e308" end="0"><fn:Exception>1e308</fn:Exception></fn:LoopDouble>',
            "UnsupportedFeature",
            "jobs",
        ),
        ('<fn:LoopInteger start="0" end="1e3"/>', "InvalidRequestMessage", "not an integer"),
    ],
)
def test_extreme_loops_are_refused_with_a_reason(function: str, fault: str, says: str) -> None:
    caught = refused(document(sweep(assignment("//p:Argument[1]", function))))
    assert caught.fault == fault
    assert says in str(caught)


def test_integer_exceptions_are_exact_for_big_numbers() -> None:
    big = 10**30
    loop = f'<fn:LoopInteger start="{big}" end="{big + 4}" step="2"><fn:Exception>{big + 2}</fn:Exception></fn:LoopInteger>'
    specs = read(document(sweep(assignment("//p:Argument[1]", loop))))
    assert [s.arguments[0] for s in specs] == [str(big), str(big + 4)]
