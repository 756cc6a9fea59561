"""The batch queue a JSDL document asks for, in ARC's JSDL extension.

JSDL 1.0 has no queue element; NorduGrid ARC, whose clients drive BES endpoints, writes
one inside jsdl:Resources::

    <jsdl-arc:CandidateTarget xmlns:jsdl-arc="http://www.nordugrid.org/ws/schemas/jsdl-arc">
      <jsdl-arc:QueueName>gpu</jsdl-arc:QueueName>
    </jsdl-arc:CandidateTarget>

The name is a requirement, not a wish: the execution backend checks it (Slurm: a
partition that exists) and a job it cannot place is refused, never run somewhere else.
jsdl-arc:HostName (the CE to submit to) names an endpoint, which this document has
already reached; anything else in CandidateTarget is refused as not understood.
"""

from __future__ import annotations

import re

from lxml import etree

from gateway.jsdl.common import child_name, elements, invalid, shown, simple_text, unsupported

JSDL_ARC = "http://www.nordugrid.org/ws/schemas/jsdl-arc"
# Batch systems' queue names: Slurm partitions, PBS/SGE queues (no spaces, commas, '=').
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def is_candidate_target(namespace: str, local: str) -> bool:
    return namespace == JSDL_ARC and local == "CandidateTarget"


def read_candidate_target(element: etree._Element) -> str:
    """The queue named by a jsdl-arc:CandidateTarget ("" when it names none)."""
    queue = ""
    for child in elements(element):
        namespace, local = child_name(child, JSDL_ARC)
        if namespace == JSDL_ARC and local == "QueueName":
            if queue:
                raise invalid(child, "appears twice in jsdl-arc:CandidateTarget")
            queue = simple_text(child)
            if not QUEUE_NAME.match(queue):
                raise invalid(
                    child,
                    f"{shown(queue)} is not a queue name",
                    "A queue name is one word of letters, digits, '.', '_', '+' or '-'.",
                )
        elif namespace == JSDL_ARC and local == "HostName":
            continue  # the endpoint this document was sent to
        else:
            raise unsupported(
                child,
                "is not understood in a jsdl-arc:CandidateTarget",
                "Name the queue with jsdl-arc:QueueName only.",
            )
    return queue
