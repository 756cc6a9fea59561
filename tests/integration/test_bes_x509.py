"""X.509 client certificates forwarded by the TLS proxy, on /bes and the REST API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests import bes_messages as m
from tests.bes_schemas import assert_valid

SECRET = "proxy-shared-secret"


def certificate(cn: str, issuer_key=None, issuer_name=None, *, days: int = 1):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Grid"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + timedelta(days=days))
        .sign(issuer_key or key, hashes.SHA256())
    )
    return key, cert


def pem(cert) -> str:
    return quote(cert.public_bytes(serialization.Encoding.PEM).decode())


@pytest.fixture
def ca(tmp_path):
    key, cert = certificate("Test CA", days=30)
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


@pytest.fixture
def x509_app(make_settings, ca):
    from backends.store import migrate
    from gateway.app import create_app

    s = make_settings(
        auth={
            "chain": ["bearer", "basic", "wss", "x509"],
            "x509": {"proxy_secret": SECRET, "ca_file": str(ca[2])},
        }
    )
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    yield app
    app.app.extensions["xtreemgate"].close()


def headers(cert, secret=SECRET, verdict="SUCCESS"):
    return {
        "Content-Type": "text/xml",
        "X-SSL-Client-Cert": pem(cert),
        "X-SSL-Client-Verify": verdict,
        "X-Xtreemgate-Proxy-Secret": secret,
    }


def test_a_proxy_verified_certificate_is_a_principal(x509_app, ca):
    _, user = certificate("Alice Grid", ca[0], ca[1].subject)
    with x509_app.test_client() as c:
        response = c.post(
            "/bes", content=m.envelope(m.create(m.job("/bin/true"))), headers=headers(user)
        )
        assert response.status_code == 200, response.text
        assert_valid(response.content)
        listing = c.get("/api/v1/activities/", headers=headers(user)).json()
        assert listing["activities"][0]["owner"] == "CN=Alice Grid,O=Grid"
        me = c.get("/api/v1/whoami", headers=headers(user)).json()
        assert me["authenticated_by"] == "x509" and me["display_name"] == "Alice Grid"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda ca: headers(certificate("A", ca[0], ca[1].subject)[1], secret="guess"),
            "shared secret",
        ),
        (
            lambda ca: headers(certificate("A", ca[0], ca[1].subject)[1], verdict="FAILED:expired"),
            "did not verify",
        ),
        (lambda ca: headers(certificate("Self signed")[1]), "not issued by a trusted CA"),
        (lambda ca: headers(certificate("Old", ca[0], ca[1].subject, days=-1)[1]), "not now"),
    ],
    ids=["forged-headers", "proxy-refused", "foreign-ca", "expired"],
)
def test_refused_certificates(x509_app, ca, make, reason):
    with x509_app.test_client() as c:
        response = c.post(
            "/bes", content=m.envelope("<bes:GetFactoryAttributesDocument/>"), headers=make(ca)
        )
    assert response.status_code == 401
    assert reason in m.body_of(response.content).findtext("faultstring")


def test_x509_in_the_chain_needs_a_proxy_secret(make_settings):
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="proxy_secret must be set"):
        make_settings(auth={"chain": ["x509"]})
