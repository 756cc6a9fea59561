"""STAND-IN for the JSDL helper's module (replaced at merge; keep to its API).

Only what the BES endpoint's own tests need: ``JSDLFault`` and ``read_job_definition``
reading POSIXApplication Executable/Argument/Input/Output/Error/WorkingDirectory/
Environment and DataStaging FileName + Source/Target URI + CreationFlag. Everything else
in a JobDescription is refused as UnsupportedFeature so nothing is silently ignored.
"""

from __future__ import annotations

from lxml import etree

from backends.model import JobSpec, StagingSpec

JSDL = "http://schemas.ggf.org/jsdl/2005/11/jsdl"
POSIX = "http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"


class JSDLFault(Exception):
    """A JSDL document the gateway refuses: ``fault`` is the BES fault to answer with."""

    def __init__(self, fault: str, element: str, message: str) -> None:
        super().__init__(f"{element}: {message}")
        self.fault = fault  # "InvalidRequestMessage" | "UnsupportedFeature"
        self.element = element
        self.message = message


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in parent if isinstance(c.tag, str) and _local(c) == name), None)


def _children(parent: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str) and _local(c) == name]


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def read_job_definition(job_definition: etree._Element, *, max_sweep: int = 1000) -> list[JobSpec]:
    if not isinstance(job_definition.tag, str) or _local(job_definition) != "JobDefinition":
        raise JSDLFault("InvalidRequestMessage", "jsdl:JobDefinition", "not a JobDefinition")
    description = _child(job_definition, "JobDescription")
    if description is None:
        raise JSDLFault("InvalidRequestMessage", "jsdl:JobDescription", "missing")
    application = _child(description, "Application")
    posix = _child(application, "POSIXApplication") if application is not None else None
    if posix is None:
        raise JSDLFault(
            "UnsupportedFeature", "jsdl:Application", "only a POSIXApplication is understood"
        )
    executable = _text(_child(posix, "Executable"))
    if not executable:
        raise JSDLFault("InvalidRequestMessage", "jsdl-posix:Executable", "missing or empty")
    stage_in, stage_out = [], []
    for staging in _children(description, "DataStaging"):
        name = _text(_child(staging, "FileName"))
        source = _child(staging, "Source")
        target = _child(staging, "Target")
        flag = _text(_child(staging, "CreationFlag")) or "overwrite"
        if source is not None:
            stage_in.append(
                StagingSpec(name, source=_text(_child(source, "URI")), creation_flag=flag)
            )
        if target is not None:
            stage_out.append(
                StagingSpec(name, target=_text(_child(target, "URI")), creation_flag=flag)
            )
    for el in description:
        if isinstance(el.tag, str) and _local(el) not in (
            "JobIdentification",
            "Application",
            "DataStaging",
        ):
            raise JSDLFault("UnsupportedFeature", f"jsdl:{_local(el)}", "not understood here")
    environment = {e.get("name", ""): _text(e) for e in _children(posix, "Environment")}
    ident = _child(description, "JobIdentification")
    return [
        JobSpec(
            executable=executable,
            arguments=tuple(_text(a) for a in _children(posix, "Argument")),
            environment=environment,
            working_directory=_text(_child(posix, "WorkingDirectory")),
            stdin=_text(_child(posix, "Input")),
            stdout=_text(_child(posix, "Output")),
            stderr=_text(_child(posix, "Error")),
            stage_in=tuple(stage_in),
            stage_out=tuple(stage_out),
            name=_text(_child(ident, "JobName")) if ident is not None else "",
        )
    ]
