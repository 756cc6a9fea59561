"""The HTTP-Redirect binding (SAML bindings §3.4): DEFLATE + base64 in the query, with
the signature over the exact query string, and its verification for inbound messages."""

from __future__ import annotations

import base64
import binascii
import urllib.parse
import zlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.saml.namespaces import SIG_RSA_SHA256

_HASHES = {
    SIG_RSA_SHA256: hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512,
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1,
}
MAX_INFLATED = 256 * 1024


class BindingError(ValueError):
    """A redirect-bound message is malformed or its signature refused."""


def deflate(xml: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode()


def inflate(value: str) -> bytes:
    """The XML of a redirect-bound message, bounded (a deflate bomb stops early)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BindingError("message is not base64") from exc
    decompressor = zlib.decompressobj(-15)
    try:
        xml = decompressor.decompress(raw, MAX_INFLATED)
    except zlib.error as exc:
        raise BindingError(f"message is not DEFLATE-compressed: {exc}") from exc
    if decompressor.unconsumed_tail:
        raise BindingError(f"message inflates beyond {MAX_INFLATED} bytes")
    return xml


def encode(
    location: str,
    param: str,
    xml: bytes,
    relay_state: str = "",
    signing_key: rsa.RSAPrivateKey | None = None,
) -> str:
    """The URL to redirect the browser to; signed when ``signing_key`` is given."""
    parts = [(param, deflate(xml))]
    if relay_state:
        parts.append(("RelayState", relay_state))
    if signing_key is not None:
        parts.append(("SigAlg", SIG_RSA_SHA256))
    query = urllib.parse.urlencode(parts)
    if signing_key is not None:
        signature = signing_key.sign(query.encode(), padding.PKCS1v15(), hashes.SHA256())
        query += "&" + urllib.parse.urlencode({"Signature": base64.b64encode(signature).decode()})
    return location + ("&" if "?" in location else "?") + query


# The parameters of the binding (bindings §3.4.4.1): each at most once.
PARAMETERS = ("SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature")


def query_parts(raw_query: str) -> dict[str, str]:
    """The binding's parameters of a query, still URL-encoded as they arrived; one
    given twice is refused, so the message read and the message whose signature is
    checked are always the same octets (a first unsigned copy for any user beside a
    validly signed second one must not pass)."""
    parts: dict[str, str] = {}
    for piece in raw_query.split("&"):
        name, eq, value = piece.partition("=")
        name = urllib.parse.unquote_plus(name)
        if not eq or name not in PARAMETERS:
            continue
        if name in parts:
            raise BindingError(f"the {name} parameter is given more than once")
        parts[name] = value
    return parts


def message_of(parts: dict[str, str], param: str) -> bytes:
    """The XML of the message in ``param`` of :func:`query_parts`."""
    return inflate(urllib.parse.unquote_plus(parts[param]))


def verify_query(raw_query: str | dict[str, str], param: str, certs_der: Sequence[bytes]) -> bool:
    """Whether the redirect's Signature verifies with one of the certificates; the
    signed octets are the query parts exactly as they arrived (bindings §3.4.4.1)."""
    pieces = query_parts(raw_query) if isinstance(raw_query, str) else raw_query
    if "Signature" not in pieces or "SigAlg" not in pieces:
        return False
    algorithm = urllib.parse.unquote_plus(pieces["SigAlg"])
    if algorithm not in _HASHES:
        raise BindingError(f"SigAlg {algorithm!r} is not accepted")
    signed = "&".join(
        f"{name}={pieces[name]}" for name in (param, "RelayState", "SigAlg") if name in pieces
    ).encode()
    try:
        signature = base64.b64decode(urllib.parse.unquote_plus(pieces["Signature"]))
    except (binascii.Error, ValueError) as exc:
        raise BindingError("Signature is not base64") from exc
    for der in certs_der:
        public = x509.load_der_x509_certificate(der).public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            continue
        try:
            public.verify(signature, signed, padding.PKCS1v15(), _HASHES[algorithm]())
        except InvalidSignature:
            continue
        return True
    return False
