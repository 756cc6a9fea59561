"""Password hashing with scrypt (RFC 7914), stored as a PHC-style string.

scrypt is in the standard library and memory-hard; the parameters are stored with each
hash so they can be raised later without invalidating existing passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# 2**15 * 8 * 128 bytes = 32 MiB of memory per hash; about 60 ms on one core.
LOG_N, R, P, DKLEN = 15, 8, 1, 32
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=1 << log_n, r=r, p=p, dklen=dklen, maxmem=_MAXMEM
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, LOG_N, R, P, DKLEN)
    return f"$scrypt$ln={LOG_N},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash; False for garbage."""
    try:
        _, scheme, params, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        values = dict(item.split("=") for item in params.split(","))
        expected = _unb64(digest)
        actual = _scrypt(
            password,
            _unb64(salt),
            int(values["ln"]),
            int(values["r"]),
            int(values["p"]),
            len(expected),
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


# Verified against when the user does not exist, so that timing does not reveal names.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
