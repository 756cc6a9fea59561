"""The site's application registry: what a JSDL ApplicationName (and Version) runs.

UNICORE clients, and sites used to them, name an installed application ("Date" version
"1.0") instead of a program path, and leave the path to the site. A site lists its
applications in the ``[applications]`` config section: name → version → executable.
A request without a version gets the only version there is, or the one registered as
"default"; anything else is refused with the names and versions the site offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_VERSION = "default"


class UnknownApplication(LookupError):
    """No registered application matches; the message lists what the site offers."""


@dataclass(frozen=True)
class ApplicationRegistry:
    entries: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def resolve(self, name: str, version: str = "") -> str:
        """The executable registered for ``name`` at ``version``."""
        versions = self.entries.get(name)
        if versions is None:
            offered = ", ".join(sorted(self.entries)) or "none"
            raise UnknownApplication(
                f"the application {name!r} is not installed here (this site offers: {offered})"
            )
        if version:
            if version in versions:
                return versions[version]
            raise UnknownApplication(
                f"the application {name!r} is not installed in version {version!r} "
                f"(installed: {', '.join(sorted(versions))})"
            )
        if DEFAULT_VERSION in versions:
            return versions[DEFAULT_VERSION]
        if len(versions) == 1:
            return next(iter(versions.values()))
        raise UnknownApplication(
            f"the application {name!r} is installed in several versions "
            f"({', '.join(sorted(versions))}); ask for one with jsdl:ApplicationVersion"
        )
