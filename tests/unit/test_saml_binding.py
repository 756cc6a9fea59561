"""The HTTP-Redirect binding: DEFLATE round trip, bounded inflation, query signatures."""

from __future__ import annotations

import base64
import urllib.parse
import zlib

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.saml import binding, keys


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return keys.generate("sp.example.org", 2048)


def _der(cert_pem: bytes) -> bytes:
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)


def test_signed_redirect_round_trip(pair: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = pair
    key = serialization.load_pem_private_key(key_pem, password=None)
    url = binding.encode("https://idp.example.org/sso", "SAMLRequest", b"<x/>", "rs", key)
    query = url.split("?", 1)[1]
    params = dict(urllib.parse.parse_qsl(query))
    assert binding.inflate(params["SAMLRequest"]) == b"<x/>"
    assert binding.verify_query(query, "SAMLRequest", [_der(cert_pem)])
    other = keys.generate("other", 2048)[1]
    assert not binding.verify_query(query, "SAMLRequest", [_der(other)])
    tampered = query.replace("RelayState=rs", "RelayState=rt")
    assert not binding.verify_query(tampered, "SAMLRequest", [_der(cert_pem)])
    assert not binding.verify_query(query.split("&Signature=")[0], "SAMLRequest", [_der(cert_pem)])


def test_deflate_bomb_stops_at_the_bound() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"<a>" + b"x" * (10 * binding.MAX_INFLATED)) + compressor.flush()
    with pytest.raises(binding.BindingError, match="inflates beyond"):
        binding.inflate(base64.b64encode(bomb).decode())


def test_garbage_is_named() -> None:
    with pytest.raises(binding.BindingError, match="not base64"):
        binding.inflate("%%%")
    with pytest.raises(binding.BindingError, match="not DEFLATE"):
        binding.inflate(base64.b64encode(b"plain text").decode())


def test_a_parameter_given_twice_is_refused(pair: tuple[bytes, bytes]) -> None:
    """#16.4: the message read and the message verified are one and the same."""
    key_pem, cert_pem = pair
    key = serialization.load_pem_private_key(key_pem, password=None)
    url = binding.encode("https://sp.example.org/slo", "SAMLRequest", b"<signed/>", "", key)
    query = url.split("?", 1)[1]
    forged = f"SAMLRequest={urllib.parse.quote(binding.deflate(b'<forged/>'))}&{query}"
    with pytest.raises(binding.BindingError, match="SAMLRequest parameter is given more"):
        binding.verify_query(forged, "SAMLRequest", [_der(cert_pem)])
    with pytest.raises(binding.BindingError, match="more than once"):
        binding.query_parts(query + "&Signature=x")
    parts = binding.query_parts(query)
    assert binding.message_of(parts, "SAMLRequest") == b"<signed/>"
    assert binding.verify_query(parts, "SAMLRequest", [_der(cert_pem)])
