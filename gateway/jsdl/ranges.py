"""JSDL RangeValue_Type (GFD.56 §6.2.9): the set of values a resource requirement allows.

A range is a union of exact values, closed or open intervals and half-open bounds. A
job spec needs one concrete request, so :meth:`RangeValue.request` picks one by a fixed
rule (below), and :meth:`RangeValue.bounds` keeps the hull of the whole set so that a
backend with less to offer can still choose a value the submitter accepts.

The rule for the concrete request: each part of the range proposes one value, and the
smallest proposal is asked for (the least that satisfies the submitter costs least):

* an Exact value proposes itself;
* a Range or a LowerBoundedRange proposes the least value it allows (a lower bound is
  what the job needs; more is not asked for);
* an UpperBoundedRange proposes its bound ("up to 10 CPUs" asks for 10 when they are
  there; the bounds kept beside the request say that fewer will do).

For counts (``integral``), exclusive bounds step to the next whole number and a
fractional Exact value is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lxml import etree

from backends.contracts.model import Bounds
from gateway.jsdl.common import (
    child_name,
    elements,
    invalid,
    name_of,
    shown,
    simple_text,
    unknown_jsdl,
)
from gateway.jsdl.namespaces import JSDL


@dataclass(frozen=True)
class Interval:
    lower: float | None  # None: unbounded
    upper: float | None
    lower_exclusive: bool = False
    upper_exclusive: bool = False


@dataclass(frozen=True)
class RangeValue:
    """What a RangeValue_Type element allows: exact values and intervals."""

    exact: tuple[float, ...] = ()
    intervals: tuple[Interval, ...] = ()

    def request(self, element: etree._Element, *, integral: bool) -> int:
        """The concrete value to ask for (see the module docstring), as an int."""
        proposals: list[int] = []
        for value in self.exact:
            if integral and value != int(value):
                raise invalid(element, f"asks for {value:g}, which is not a whole number of units")
            proposals.append(int(value))
        for interval in self.intervals:
            if interval.lower is not None:
                low = interval.lower
                proposals.append(
                    math.floor(low) + 1 if interval.lower_exclusive else math.ceil(low)
                )
            else:
                assert interval.upper is not None
                high = interval.upper
                proposals.append(
                    math.ceil(high) - 1 if interval.upper_exclusive else math.floor(high)
                )
        least = 1 if integral else 0  # a count of nothing is no request
        usable = [p for p in proposals if p >= least]
        if not usable:
            raise invalid(element, f"asks for fewer than {least}")
        return min(usable)

    def bounds(self) -> Bounds:
        """The smallest interval holding every allowed value (None where unbounded)."""
        lowers: list[float | None] = list(self.exact) + [i.lower for i in self.intervals]
        uppers: list[float | None] = list(self.exact) + [i.upper for i in self.intervals]
        lower = None if None in lowers else min(v for v in lowers if v is not None)
        upper = None if None in uppers else max(v for v in uppers if v is not None)
        return Bounds(lower=lower, upper=upper)

    @property
    def is_exact(self) -> bool:
        return bool(self.exact) and not self.intervals and len(set(self.exact)) == 1


def read_range_value(element: etree._Element) -> RangeValue:
    """Parse a RangeValue_Type element (TotalCPUCount, IndividualPhysicalMemory, ...).

    Children may come in any order (UNICORE writes Exact before bounds); an unknown
    child, a negative or non-numeric value, or an interval whose lower end is above its
    upper end is an InvalidRequestMessage naming the element.
    """
    exact: list[float] = []
    intervals: list[Interval] = []
    for child in elements(element):
        namespace, local = child_name(child, JSDL)
        if namespace != JSDL and local in (
            "Exact",
            "UpperBoundedRange",
            "LowerBoundedRange",
            "Range",
        ):
            raise unknown_jsdl(child, name_of(element), dict.fromkeys((local,), JSDL))
        if namespace != JSDL:
            raise invalid(child, "is not part of a JSDL RangeValue")
        if local == "Exact":
            exact.append(_number(child))
        elif local == "UpperBoundedRange":
            intervals.append(Interval(None, _number(child), upper_exclusive=_exclusive(child)))
        elif local == "LowerBoundedRange":
            intervals.append(Interval(_number(child), None, lower_exclusive=_exclusive(child)))
        elif local == "Range":
            intervals.append(_interval(child))
        else:
            raise invalid(
                child,
                "is not part of a JSDL RangeValue",
                "Use Exact, LowerBoundedRange, UpperBoundedRange or Range.",
            )
    if not exact and not intervals:
        raise invalid(
            element,
            "gives no value",
            "Put an Exact, LowerBoundedRange, UpperBoundedRange or Range in it.",
        )
    return RangeValue(tuple(exact), tuple(intervals))


def _interval(element: etree._Element) -> Interval:
    lower = upper = None
    for child in elements(element):
        namespace, local = child_name(child, JSDL)
        if namespace == JSDL and local == "LowerBound" and lower is None:
            lower = child
        elif namespace == JSDL and local == "UpperBound" and upper is None:
            upper = child
        else:
            raise invalid(child, "does not belong in a jsdl:Range (or appears twice)")
    if lower is None or upper is None:
        raise invalid(element, "needs both a LowerBound and an UpperBound")
    interval = Interval(_number(lower), _number(upper), _exclusive(lower), _exclusive(upper))
    assert interval.lower is not None and interval.upper is not None
    if interval.lower > interval.upper:
        raise invalid(
            element,
            f"has its LowerBound ({interval.lower:g}) above its UpperBound ({interval.upper:g})",
        )
    return interval


def _number(element: etree._Element) -> float:
    text = simple_text(element)
    try:
        value = float(text)
    except ValueError:
        raise invalid(element, f"must be a number (xsd:double), not {shown(text)}") from None
    if not math.isfinite(value) or value < 0:
        raise invalid(element, f"must be a finite number of at least 0, not {shown(text)}")
    return value


def _exclusive(element: etree._Element) -> bool:
    value = element.get("exclusiveBound", "false").strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise invalid(element, f"has exclusiveBound={shown(value)}; it must be true or false")
