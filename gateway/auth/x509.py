"""X.509 client certificates, verified by the reverse proxy where TLS ends.

uvicorn does not hand the peer certificate to the application, so TLS client
authentication happens at the proxy (nginx ``ssl_verify_client``), which forwards the
certificate and its verdict in headers. Those headers are believed only together with
the proxy's shared secret: a client talking to the gateway directly cannot forge them.
The principal is the certificate's subject, as an RFC 4514 distinguished name.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from backends.contracts.model import Principal
from gateway.auth.chain import AuthenticationFailed, AuthRequest
from gateway.config import X509Settings


class X509Authenticator:
    mechanism = "x509"

    def __init__(self, settings: X509Settings) -> None:
        self.settings = settings
        self.cas: list[x509.Certificate] = []
        if settings.ca_file:
            self.cas = x509.load_pem_x509_certificates(Path(settings.ca_file).read_bytes())

    def present(self, request: AuthRequest) -> bool:
        return bool(request.headers.get(self.settings.cert_header.lower()))

    def blocking(self, request: AuthRequest) -> bool:
        return False  # parsing one certificate, in memory

    def challenge(self) -> str:
        return ""  # asked for by the TLS proxy, not by an HTTP challenge

    def _fail(self, reason: str) -> AuthenticationFailed:
        return AuthenticationFailed(reason, self.mechanism)

    def authenticate(self, request: AuthRequest) -> Principal:
        headers, s = request.headers, self.settings
        secret = headers.get(s.secret_header.lower(), "")
        if not s.proxy_secret or not hmac.compare_digest(secret, s.proxy_secret):
            raise self._fail(
                "client certificate headers are accepted only from the TLS proxy "
                "(its shared secret is missing or wrong)"
            )
        verdict = headers.get(s.verify_header.lower(), "")
        if verdict != "SUCCESS":
            raise self._fail(
                f"the TLS proxy did not verify the certificate ({verdict or 'no verdict'})"
            )
        try:
            cert = x509.load_pem_x509_certificate(unquote(headers[s.cert_header.lower()]).encode())
        except ValueError as exc:
            raise self._fail("the forwarded client certificate is not PEM") from exc
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise self._fail(
                f"the client certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d} "
                f"to {cert.not_valid_after_utc:%Y-%m-%d}, not now"
            )
        if self.cas and not any(self._issued_by(cert, ca) for ca in self.cas):
            raise self._fail("the client certificate is not issued by a trusted CA")
        common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return Principal(
            name=cert.subject.rfc4514_string(),
            authenticated_by=self.mechanism,
            display_name=str(common_names[0].value) if common_names else "",
            attributes={"issuer": cert.issuer.rfc4514_string(), "serial": str(cert.serial_number)},
        )

    @staticmethod
    def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True
