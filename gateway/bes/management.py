"""The BES-Management port type: StopAcceptingNewActivities / StartAcceptingNewActivities.

Site administrators only (and only if the VO policy agrees). The flag lives in the shared
store, so every gateway process behind a load balancer stops or starts with it, within
the one second each process caches it (``Runtime.bes_accepting``, gateway/runtime.py).
"""

from __future__ import annotations

from lxml import etree

from backends.contracts.model import Resource
from gateway.bes.context import Call
from gateway.bes.faults import BESFault
from gateway.bes.namespaces import BES_MGMT, q


def _set_accepting(call: Call, accepting: bool, operation: str) -> etree._Element:
    if not call.principal.site_admin:
        raise BESFault(
            "NotAuthorized",
            f"{operation} is for site administrators; {call.principal.name} is not one",
        )
    call.authorize("manage", Resource(kind="factory"))
    call.runtime.bes_accepting.set(accepting)  # this process sees it at once
    return etree.Element(q(BES_MGMT, f"{operation}Response"), nsmap={"bes-mgmt": BES_MGMT})


def stop_accepting_new_activities(call: Call, payload: etree._Element) -> etree._Element:
    return _set_accepting(call, False, "StopAcceptingNewActivities")


def start_accepting_new_activities(call: Call, payload: etree._Element) -> etree._Element:
    return _set_accepting(call, True, "StartAcceptingNewActivities")
