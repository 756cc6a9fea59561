"""URLs naming a file on a volume: ``xtreemfs://<mrc>/<volume>/<path>``,
``glusterfs://<host>/<volume>/<path>`` and ``file:`` (a POSIX path).

The same URL is a JSDL DataStaging source/target and an OCCI os_tpl image location, so
parsing is strict: a URL either names exactly one volume and a clean relative path or is
refused with a message saying what is wrong.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

VOLUME_SCHEMES = ("xtreemfs", "glusterfs")
SCHEMES = (*VOLUME_SCHEMES, "file")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class VolumeURLError(ValueError):
    """The URL does not name a file on a volume; the message says why."""


@dataclass(frozen=True)
class VolumeURL:
    """``scheme``; ``host`` (the MRC or GlusterFS server, with port when given);
    ``volume`` (empty for ``file:``); ``path`` relative to the volume's root
    (for ``file:`` the absolute local path)."""

    scheme: str
    host: str
    volume: str
    path: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return "file://" + urllib.parse.quote(self.path)
        tail = f"/{urllib.parse.quote(self.path)}" if self.path else "/"
        return f"{self.scheme}://{self.host}/{self.volume}{tail}"


def check_name(name: str, what: str) -> str:
    """A volume or VO name: letters, digits, '.', '_', '-'; at most 64; not hidden."""
    if not NAME.match(name or ""):
        raise VolumeURLError(
            f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def clean_path(path: str) -> str:
    """A relative '/'-separated path without '.', '..' or empty parts ('' is the root)."""
    if "\0" in path:
        raise VolumeURLError(f"path {path!r} contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise VolumeURLError(f"path {path!r} must not contain '..'")
    return "/".join(parts)


def parse(url: str) -> VolumeURL:
    """Split a volume URL; refuses other schemes, user-info, queries and fragments."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise VolumeURLError(
            f"URL {url!r} has scheme {parts.scheme or '(none)'!r}; "
            f"volume URLs are {', '.join(s + ':' for s in SCHEMES)}"
        )
    if parts.query or parts.fragment:
        raise VolumeURLError(f"URL {url!r} must not have a query or a fragment")
    if "@" in parts.netloc:
        raise VolumeURLError(f"URL {url!r} must not carry user information")
    raw = urllib.parse.unquote(parts.path)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise VolumeURLError(f"file URL {url!r} names host {parts.netloc!r}; only local")
        if not raw.startswith("/"):
            raise VolumeURLError(f"file URL {url!r} must name an absolute path")
        return VolumeURL("file", "", "", "/" + clean_path(raw))
    if not parts.hostname:
        raise VolumeURLError(f"{scheme} URL {url!r} names no server")
    volume, _, rest = raw.lstrip("/").partition("/")
    check_name(volume, f"volume in {url!r}")
    return VolumeURL(scheme, parts.netloc.lower(), volume, clean_path(rest))
