"""Operating systems and CPU architectures in JSDL's words (GFD.56 §6.2.4 and §6.2.6:
OperatingSystemTypeEnumeration, ProcessorArchitectureEnumeration), and what the names a
host reports (``platform.system()``, ``platform.machine()``) are in them.

One table for every part that speaks of platforms: the JSDL matcher, the BES factory
attributes, the execution plugins' host checks, OCCI's ``occi.compute.architecture``.
"""

from __future__ import annotations

# platform.system() -> JSDL OperatingSystemTypeEnumeration
OPERATING_SYSTEMS = {
    "Linux": "LINUX",
    "Darwin": "MACOS",
    "FreeBSD": "FreeBSD",
    "NetBSD": "NetBSD",
    "OpenBSD": "OpenBSD",
    "SunOS": "Solaris",
    "AIX": "AIX",
    "Windows": "WINNT",
}

# JSDL ProcessorArchitectureEnumeration -> the machine names hosts report for it. "x86" is
# the family: a job that asks for it runs on either width.
ARCHITECTURES = {
    "x86_64": frozenset({"x86_64", "amd64"}),
    "x86_32": frozenset({"i386", "i486", "i586", "i686"}),
    "arm": frozenset({"aarch64", "arm64", "armv7l", "armv6l"}),
    "ia64": frozenset({"ia64"}),
    "powerpc": frozenset({"ppc", "ppc64", "ppc64le"}),
    "sparc": frozenset({"sparc", "sparc64"}),
    "mips": frozenset({"mips", "mips64"}),
    "parisc": frozenset({"parisc", "parisc64"}),
}
FAMILIES = {"x86": ARCHITECTURES["x86_64"] | ARCHITECTURES["x86_32"]}

# OCCI Infrastructure (GFD.224 §3.4.1) names only two architectures.
_OCCI = {"x86_64": "x64", "x86_32": "x86"}
# ... and the machine name a hypervisor is asked for, for each.
OCCI_MACHINES = {"x64": "x86_64", "x86": "i686"}


def jsdl_operating_system(system: str, default: str = "other") -> str:
    """The JSDL name of a ``platform.system()`` value."""
    return OPERATING_SYSTEMS.get(system, default)


def jsdl_architecture(machine: str) -> str:
    """The JSDL name of a ``platform.machine()`` value ("other" when JSDL has none)."""
    machine = machine.lower()
    if machine in ARCHITECTURES:
        return machine
    return next((name for name, names in ARCHITECTURES.items() if machine in names), "other")


def runs(wanted: str, machine: str) -> bool:
    """Whether a host reporting ``machine`` (a machine name, or already a JSDL name) runs a
    job that asks for the JSDL architecture ``wanted``."""
    wanted = wanted.lower()
    if wanted == "other":
        return True
    if wanted in FAMILIES:
        return machine.lower() in FAMILIES[wanted] or jsdl_architecture(machine) in (
            "x86_64",
            "x86_32",
        )
    return jsdl_architecture(machine) == wanted or machine.lower() == wanted


def occi_architecture(machine: str) -> str:
    """``occi.compute.architecture`` of a machine name (x64, x86; others as reported)."""
    return _OCCI.get(jsdl_architecture(machine), machine)
