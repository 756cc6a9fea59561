"""Content negotiation and OCCI version checks (GFD.223 §3.2, §3.3).

``text/plain`` is the default; ``text/uri-list`` only renders listings; a client whose
``Accept`` admits none of the renderings gets 406, and one announcing a newer OCCI than
1.2 gets 501.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.occi.errors import OCCIError

SERVED = (1, 2)
JSON = ("application/occi+json", "application/json")
ENTITY_TYPES = ("text/plain", "text/occi", *JSON)
LISTING_TYPES = ("text/plain", "text/occi", "text/uri-list", *JSON)

_VERSION = re.compile(r"OCCI/(\d+)\.(\d+)", re.IGNORECASE)


def check_version(headers: Mapping[str, str]) -> None:
    """501 when the client speaks a newer OCCI than this server."""
    for source in (headers.get("X-OCCI-Version", ""), headers.get("User-Agent", "")):
        match = _VERSION.search(source) or re.fullmatch(r"\s*(\d+)\.(\d+)\s*", source)
        if match and (int(match.group(1)), int(match.group(2))) > SERVED:
            raise OCCIError(
                501,
                f"this server speaks OCCI {SERVED[0]}.{SERVED[1]}; the client asked for "
                f"OCCI {match.group(1)}.{match.group(2)}",
            )


def _ranges(accept: str) -> list[tuple[str, float, int]]:
    """(media range, q, position) for each Accept item; malformed q counts as 1."""
    out = []
    for position, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 1.0
        out.append((media, q, position))
    return out


def _specificity(media_range: str, media: str) -> int:
    if media_range == media:
        return 3
    if media_range.endswith("/*") and media.startswith(media_range[:-1]):
        return 2
    if media_range in ("*/*", "*"):
        return 1
    return 0


def choose(accept: str | None, *, listing: bool) -> str:
    """The rendering to answer in: the client's preference among ours, text/plain first."""
    offered = LISTING_TYPES if listing else ENTITY_TYPES
    if not accept or not accept.strip():
        return "text/plain"
    ranges = _ranges(accept)
    best: tuple[tuple[float, int], str] | None = None
    for rank, media in enumerate(offered):
        # the most specific range that matches decides this type's q (RFC 9110 §12.5.1)
        matching = [(s, q, pos) for r, q, pos in ranges if (s := _specificity(r, media))]
        if not matching:
            continue
        specificity, q, position = max(matching)
        if q <= 0:
            continue
        # same q: a type named exactly (earliest named first) beats one reached by a
        # wildcard; among wildcard matches our order decides (text/plain first)
        order = -position if specificity == 3 else -1000 - rank
        if best is None or (q, order) > best[0]:
            best = ((q, order), media)
    if best is None and not listing and any(r == "text/uri-list" and q > 0 for r, q, _ in ranges):
        raise OCCIError(  # GFD.229 §8: uri-list renders collections only, asked elsewhere: 400
            400,
            "text/uri-list renders collections only; ask for this resource as "
            f"{', '.join(offered)}",
        )
    if best is None:
        raise OCCIError(
            406,
            f"none of the renderings asked for ({accept[:200]}) is offered here; this "
            f"resource renders as {', '.join(offered)}",
        )
    return best[1]
