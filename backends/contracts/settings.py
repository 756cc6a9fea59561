"""What a config section is, for the gateway and for every plugin that declares one.

A plugin declares its section as its class's ``settings`` model (a :class:`Section`) at
the key path ``section``; the gateway joins the models of every installed plugin into
its configuration (``gateway/config.py``), so one file and one environment validate them
all with the same rules and the same error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def of(cls, given: object) -> Self:
        """This section validated from what a caller holds: the section itself (as the
        gateway's configuration passes it), None (every default), a mapping of keys, or
        any object with the keys as attributes (a plugin built by hand, in a test or a
        benchmark); a bad value raises pydantic's ValidationError naming the key."""
        if isinstance(given, cls):
            return given
        if given is None:
            return cls()
        if isinstance(given, Mapping):
            return cls.model_validate(dict(given))
        return cls.model_validate(given, from_attributes=True)
