"""Federation metadata: signed aggregates (signed by Debian's xmlsec1, as federation
operators do), thousands of IdPs, validUntil/cacheDuration, background refresh."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.config import FederationSource
from gateway.saml.federation import Federations, MetadataError, read_aggregate
from tests.interop.saml_idp import AGGREGATE_TEMPLATE, make_keypair, sign_aggregate

ENTITY = """<md:EntityDescriptor entityID="https://idp{n}.example{n}.org/idp/shibboleth">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
      WantAuthnRequestsSigned="{signed}">
    <md:Extensions>
      <shibmd:Scope xmlns:shibmd="urn:mace:shibboleth:metadata:1.0" regexp="false">example{n}.org</shibmd:Scope>
      <mdui:UIInfo xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui">
        <mdui:DisplayName xml:lang="en">University of Example {n}</mdui:DisplayName>
      </mdui:UIInfo>
    </md:Extensions>
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp{n}.example{n}.org/idp/profile/SAML2/Redirect/SSO"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


def _cert_b64(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def build(count: int, cert_b64: str, valid_for: timedelta, start: int = 0) -> bytes:
    entities = "\n".join(
        ENTITY.format(n=n, cert=cert_b64, signed="true" if n % 2 else "false")
        for n in range(start, start + count)
    )
    until = (datetime.now(UTC) + valid_for).strftime("%Y-%m-%dT%H:%M:%SZ")
    return AGGREGATE_TEMPLATE.format(id="_agg", valid_until=until, entities=entities).encode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fed")
    fed_key, fed_cert = make_keypair(d, "federation")
    _idp_key, idp_cert = make_keypair(d, "idp")
    _other_key, other_cert = make_keypair(d, "other")
    return {"dir": d, "key": fed_key, "cert": fed_cert, "idp_cert": idp_cert, "other": other_cert}


@pytest.fixture(scope="module")
def big(keys: dict[str, Path]) -> bytes:
    xml = build(5000, _cert_b64(keys["idp_cert"]), timedelta(days=7))
    return sign_aggregate(xml, keys["key"], keys["cert"], keys["dir"])


def test_5000_idps_load_verified_and_indexed_quickly(keys: dict[str, Path], big: bytes) -> None:
    started = time.perf_counter()
    loaded = read_aggregate(big, keys["cert"].read_bytes(), "test")
    elapsed = time.perf_counter() - started
    assert len(loaded.idps) == 5000
    assert elapsed < 10, f"loading 5000 IdPs took {elapsed:.1f} s"
    idp = loaded.idps["https://idp4321.example4321.org/idp/shibboleth"]
    assert idp.display_name() == "University of Example 4321"
    assert idp.want_authn_requests_signed
    assert idp.scope_allows("example4321.org") and not idp.scope_allows("example4320.org")
    assert len(idp.signing_keys()) == 1
    assert loaded.cache_duration == 3600
    print(f"\n5000 IdPs ({len(big) / 1e6:.1f} MB) verified and indexed in {elapsed:.2f} s")


def test_tampered_aggregate_is_refused(keys: dict[str, Path], big: bytes) -> None:
    tampered = big.replace(b"idp17.example17.org/idp/profile", b"evil.example.net/idp/profile", 1)
    with pytest.raises(MetadataError, match="signature"):
        read_aggregate(tampered, keys["cert"].read_bytes(), "test")


def test_wrong_federation_certificate_is_refused(keys: dict[str, Path], big: bytes) -> None:
    with pytest.raises(MetadataError, match="does not verify"):
        read_aggregate(big, keys["other"].read_bytes(), "test")


def test_expired_aggregate_is_refused(keys: dict[str, Path]) -> None:
    xml = build(2, _cert_b64(keys["idp_cert"]), timedelta(seconds=-10))
    signed = sign_aggregate(xml, keys["key"], keys["cert"], keys["dir"])
    with pytest.raises(MetadataError, match="expired"):
        read_aggregate(signed, keys["cert"].read_bytes(), "test")


def test_refresh_honours_cache_duration_valid_until_and_keeps_last_good(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    cert = _cert_b64(keys["idp_cert"])
    source = tmp_path / "fed.xml"
    source.write_bytes(
        sign_aggregate(build(3, cert, timedelta(hours=2)), keys["key"], keys["cert"], keys["dir"])
    )
    now = [time.time()]
    federations = Federations(
        [FederationSource(source=str(source), certificate=str(keys["cert"]), refresh=86400)],
        clock=lambda: now[0],
    )
    federations.load_all()
    assert len(federations) == 3
    # cacheDuration PT1H beats the configured day.
    assert federations.refresh_due() == pytest.approx(3600, abs=5)

    # A new aggregate is picked up once the cache duration has passed.
    source.write_bytes(
        sign_aggregate(
            build(4, cert, timedelta(hours=3), start=10), keys["key"], keys["cert"], keys["dir"]
        )
    )
    now[0] += 3601
    federations.refresh_due()
    assert federations.lookup("https://idp12.example12.org/idp/shibboleth") is not None
    assert federations.lookup("https://idp1.example1.org/idp/shibboleth") is None

    # A broken refresh keeps the last good copy, and says why.
    source.write_bytes(source.read_bytes().replace(b"idp12.", b"evil.", 1))
    now[0] += 3601
    federations.refresh_due()
    assert federations.lookup("https://idp12.example12.org/idp/shibboleth") is not None
    assert "signature" in federations.status()[0]["error"]

    # ... but never beyond its validUntil.
    now[0] += 3 * 3600
    assert federations.lookup("https://idp12.example12.org/idp/shibboleth") is None


def test_background_start_does_not_block(keys: dict[str, Path], big: bytes, tmp_path: Path) -> None:
    source = tmp_path / "big.xml"
    source.write_bytes(big)
    federations = Federations([FederationSource(source=str(source), certificate=str(keys["cert"]))])
    started = time.perf_counter()
    federations.start()
    assert time.perf_counter() - started < 0.2  # the load runs in the thread
    try:
        deadline = time.monotonic() + 30
        while len(federations) < 5000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(federations) == 5000
        assert [i.entity_id for i in federations.search("example 4999")] == [
            "https://idp4999.example4999.org/idp/shibboleth"
        ]
    finally:
        federations.stop()


def test_health_and_config_check_report_the_federations(
    keys: dict[str, Path], tmp_path: Path, make_settings: Any
) -> None:
    from backends.store import migrate
    from gateway.runtime import build_runtime

    good = tmp_path / "good.xml"
    good.write_bytes(
        sign_aggregate(
            build(2, _cert_b64(keys["idp_cert"]), timedelta(days=1)),
            keys["key"],
            keys["cert"],
            keys["dir"],
        )
    )
    settings = make_settings(
        saml={
            "enabled": True,
            "key_size": 2048,
            "federations": [
                {"source": str(good), "certificate": str(keys["cert"])},
                {"source": str(tmp_path / "missing.xml"), "certificate": str(keys["cert"])},
            ],
        }
    )
    migrate.upgrade(settings.database_url)
    runtime = build_runtime(settings, with_backends=False)
    try:
        runtime.saml.federations.load_all()
        report = runtime.health()["saml"]
        assert not report.ok
        assert "good.xml: 2 IdPs" in report.detail
        assert "missing.xml: 0 IdPs" in report.detail and "cannot fetch" in report.detail
        assert report.figures["identity_providers"] == 2
    finally:
        runtime.close()


def test_url_source_is_fetched_cached_and_survives_the_server_going_away(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    import http.server
    import threading

    from tests import services

    document = sign_aggregate(
        build(3, _cert_b64(keys["idp_cert"]), timedelta(days=1)),
        keys["key"],
        keys["cert"],
        keys["dir"],
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    port = services.free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = FederationSource(
        source=f"http://127.0.0.1:{port}/aggregate.xml", certificate=str(keys["cert"])
    )
    try:
        first = Federations([source], cache_dir=tmp_path)
        first.load_all()
        assert len(first) == 3
    finally:
        server.shutdown()
        server.server_close()
    # A restart while the federation's server is unreachable: the cached copy serves.
    second = Federations([source], cache_dir=tmp_path)
    second.load_all()
    assert len(second) == 3
    assert second.status()[0]["error"] == ""
    # A later refresh that cannot fetch keeps the copy and says why.
    second._sources[0].next_refresh = 0
    second.refresh_due()
    assert len(second) == 3
    assert "cannot fetch" in second.status()[0]["error"]
