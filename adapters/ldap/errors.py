"""What can go wrong talking to the directory, in words an operator can act on."""

from __future__ import annotations


class DirectoryError(Exception):
    """The directory refused or could not answer a request (bad config, ambiguous data)."""


class DirectoryUnavailable(DirectoryError):
    """The directory did not answer: down, unreachable, too slow, or TLS refused."""
