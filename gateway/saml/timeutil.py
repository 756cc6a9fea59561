"""xsd:dateTime and xsd:duration as SAML uses them (always UTC, 'Z' or an offset)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_datetime(text: str) -> datetime:
    """An aware UTC datetime; ValueError names the bad text."""
    try:  # the common case (seconds, 'Z'), at C speed
        parsed = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python before 3.11.? accepts only 6 fraction digits; SAML allows any number.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", value)
    if match:
        frac = (match.group(2) or "")[:7]
        value = match.group(1) + frac + match.group(3)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an xsd:dateTime: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # SAML core §1.3.3: UTC without zone
    return parsed.astimezone(UTC)


def parse_duration(text: str) -> float:
    """Seconds of an xsd:duration (months as 30 days, years as 365: metadata cache
    durations only need to be about right)."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an xsd:duration: {text!r}")
    g = {k: float(v) if v else 0.0 for k, v in match.groupdict().items() if k != "sign"}
    seconds = (
        g["y"] * 365 * 86400
        + g["mo"] * 30 * 86400
        + g["d"] * 86400
        + g["h"] * 3600
        + g["mi"] * 60
        + g["s"]
    )
    return -seconds if match.group("sign") else seconds


def format_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
