"""The SP's key pairs: read from configured PEM files, or generated into the state
folder at first start (self-signed: SAML metadata trusts keys, not certificate chains)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate, as PEM bytes and paths (xmlsec reads either)."""

    key_path: Path
    cert_path: Path
    key_pem: bytes
    cert_pem: bytes

    @property
    def cert_base64(self) -> str:
        """The DER certificate in base64, as ds:X509Certificate carries it."""
        der = x509.load_pem_x509_certificate(self.cert_pem).public_bytes(serialization.Encoding.DER)
        import base64

        return base64.b64encode(der).decode()

    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key


def generate(common_name: str, key_size: int, years: int = 10) -> tuple[bytes, bytes]:
    """A new RSA key and a self-signed certificate for it, as PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def load_or_generate(
    key_file: str, cert_file: str, directory: Path, use: str, common_name: str, key_size: int
) -> KeyPair:
    """The configured pair, or ``<directory>/sp-<use>.{key,crt}``, made once if missing."""
    if key_file or cert_file:
        if not (key_file and cert_file):
            raise ValueError(f"saml.{use}_key and saml.{use}_cert must be set together")
        key_path, cert_path = Path(key_file), Path(cert_file)
    else:
        key_path = directory / f"sp-{use}.key"
        cert_path = directory / f"sp-{use}.crt"
        if not key_path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            key_pem, cert_pem = generate(common_name, key_size)
            # Written under a temporary name and renamed: a second process starting at
            # the same moment never reads half a key.
            tmp_key = key_path.with_suffix(f".key.{os.getpid()}")
            tmp_cert = cert_path.with_suffix(f".crt.{os.getpid()}")
            fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key_pem)
            tmp_cert.write_bytes(cert_pem)
            os.replace(tmp_cert, cert_path)
            os.replace(tmp_key, key_path)
    return KeyPair(key_path, cert_path, key_path.read_bytes(), cert_path.read_bytes())
