"""A real SAML IdP for the interop tests: pysaml2's ``saml2.server.Server`` behind a tiny
WSGI login page on a loopback port, with its own keys; plus the federation around it
(an aggregate signed by Debian's ``xmlsec1`` with a throw-away federation key)."""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests import services

# pysaml2 signs with RSA-SHA1 unless told otherwise; the gateway refuses SHA-1 by default.
SHA256 = {
    "sign_alg": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "digest_alg": "http://www.w3.org/2001/04/xmlenc#sha256",
}
SHA1 = {
    "sign_alg": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "digest_alg": "http://www.w3.org/2000/09/xmldsig#sha1",
}

USERS = {
    "alice": (
        "wonderland",
        {
            "eduPersonPrincipalName": ["alice@example.org"],
            "displayName": ["Alice Liddell"],
            "mail": ["alice@example.org"],
            "eduPersonEntitlement": [
                "urn:geant:example.org:group:fusion:role=admin#aai.example.org",
                "urn:geant:example.org:group:fusion:ws1#aai.example.org",
                # an authority the gateway does not trust: never a membership
                "urn:geant:evil.net:group:hpc:role=admin#aai.evil.net",
            ],
            "eduPersonScopedAffiliation": ["member@example.org", "staff@example.org"],
        },
    ),
    # Registered at the IdP with a scope it is not allowed to assert.
    "mallory": (
        "evil",
        {"eduPersonPrincipalName": ["mallory@example.org.evil.net"], "displayName": ["Mallory"]},
    ),
}


def make_keypair(directory: Path, name: str, bits: int = 2048) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def xmlsec1() -> str:
    return services.require(
        "xmlsec1", hint="install the Debian package xmlsec1 (./scripts/test does)"
    )["xmlsec1"]


def sign_aggregate(xml: bytes, key: Path, cert: Path, directory: Path) -> bytes:
    """Sign an EntitiesDescriptor the way federation operators do, with xmlsec1."""
    unsigned = directory / "aggregate-unsigned.xml"
    unsigned.write_bytes(xml)
    out = subprocess.run(
        [
            xmlsec1(),
            "--sign",
            "--privkey-pem",
            f"{key},{cert}",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:metadata:EntitiesDescriptor",
            str(unsigned),
        ],
        check=True,
        capture_output=True,
    )
    return out.stdout


AGGREGATE_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="{id}" Name="urn:test:federation"
    validUntil="{valid_until}" cacheDuration="PT1H">
  <ds:Signature>
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#{id}">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
  </ds:Signature>
{entities}
</md:EntitiesDescriptor>
"""


def aggregate(entities: list[bytes], valid_for: dt.timedelta = dt.timedelta(days=7)) -> bytes:
    body = b"\n".join(re.sub(rb"^<\?xml[^>]*\?>\s*", b"", e) for e in entities).decode()
    until = (dt.datetime.now(dt.UTC) + valid_for).strftime("%Y-%m-%dT%H:%M:%SZ")
    return AGGREGATE_TEMPLATE.format(id="_fed1", valid_until=until, entities=body).encode()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class IdP:
    """pysaml2 as an IdP on 127.0.0.1:<port>; ``options`` steer its next answers."""

    directory: Path
    port: int
    key: Path
    cert: Path
    sp_metadata: bytes = b""
    options: dict[str, Any] = field(default_factory=dict)
    server: Any = None
    ecp_server: Any = None  # ECP requests need no signature (the user logs in here)
    _httpd: WSGIServer | None = None
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)  # user -> name_id, idx

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def entity_id(self) -> str:
        return f"{self.base}/idp"

    def config(self) -> dict[str, Any]:
        from saml2 import BINDING_HTTP_REDIRECT, BINDING_SOAP
        from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT

        metadata = {"inline": [self.sp_metadata.decode()]} if self.sp_metadata else {}
        return {
            "entityid": self.entity_id,
            "service": {
                "idp": {
                    "name": "Example University IdP",
                    "endpoints": {
                        "single_sign_on_service": [
                            (f"{self.base}/sso/redirect", BINDING_HTTP_REDIRECT),
                            (f"{self.base}/sso/ecp", BINDING_SOAP),
                        ],
                        "single_logout_service": [
                            (f"{self.base}/slo/redirect", BINDING_HTTP_REDIRECT)
                        ],
                    },
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 15},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                    "name_id_format": [NAMEID_FORMAT_TRANSIENT, NAMEID_FORMAT_PERSISTENT],
                    "want_authn_requests_signed": True,
                    "scope": ["example.org"],
                }
            },
            "key_file": str(self.key),
            "cert_file": str(self.cert),
            "encryption_keypairs": [{"key_file": str(self.key), "cert_file": str(self.cert)}],
            "metadata": metadata,
            "xmlsec_binary": xmlsec1(),
            "organization": {
                "display_name": "Example University",
                "name": "Example University",
                "url": self.base,
            },
        }

    def metadata(self) -> bytes:
        from saml2.config import IdPConfig
        from saml2.metadata import entity_descriptor

        conf = IdPConfig().load(self.config())
        return str(entity_descriptor(conf)).encode()

    def start(self, sp_metadata: bytes) -> None:
        from saml2.config import IdPConfig
        from saml2.server import Server

        self.sp_metadata = sp_metadata
        self.server = Server(config=IdPConfig().load(self.config()))
        ecp_config = self.config()
        ecp_config["service"]["idp"]["want_authn_requests_signed"] = False
        self.ecp_server = Server(config=IdPConfig().load(ecp_config))
        self._httpd = make_server("127.0.0.1", self.port, self.wsgi, handler_class=_Quiet)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # -- the IdP's pages -----------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] != "/sso/ecp":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            params = dict(urllib.parse.parse_qsl(environ["wsgi.input"].read(size).decode()))
        else:
            params = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        try:
            if path == "/sso/redirect":
                return self._login_page(params, start_response)
            if path == "/login":
                return self._login(params, start_response)
            if path == "/sso/ecp":
                return self._ecp(environ, start_response)
            if path == "/slo/redirect":
                return self._slo(params, environ.get("QUERY_STRING", ""), start_response)
        except Exception as exc:  # the test shows what the IdP disliked
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [f"IdP error: {type(exc).__name__}: {exc}".encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def _login_page(self, params: dict[str, str], start_response: Any) -> list[bytes]:

        # Parsing checks the request is a well-formed AuthnRequest from a known SP.
        self._parse(params)
        self.options.setdefault("seen_signed_request", "Signature" in params)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}"/>'
            for k, v in params.items()
            if k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")
        )
        page = (
            "<html><body><h1>Example University login</h1>"
            f'<form method="post" action="{self.base}/login">{hidden}'
            '<input name="username" id="username"/><input name="password" id="password" type="password"/>'
            '<button type="submit" id="login">Log in</button></form></body></html>'
        )
        start_response("200 OK", [("Content-Type", "text/html")])
        return [page.encode()]

    def _parse(self, params: dict[str, str]) -> Any:
        """pysaml2 checks the redirect signature (it wants signed requests)."""
        from saml2 import BINDING_HTTP_REDIRECT

        return self.server.parse_authn_request(
            params["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=params.get("RelayState"),
            sigalg=params.get("SigAlg"),
            signature=params.get("Signature"),
        )

    def _login(self, params: dict[str, str], start_response: Any) -> list[bytes]:
        from saml2 import BINDING_HTTP_POST
        from saml2.saml import NAMEID_FORMAT_TRANSIENT, NameID

        user = params.get("username", "")
        if user not in USERS or USERS[user][0] != params.get("password"):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"wrong user or password"]
        request = self._parse(params)
        args = self.server.response_args(request.message)
        name_id = NameID(format=NAMEID_FORMAT_TRANSIENT, text="_" + user + "-transient")
        response = self.server.create_authn_response(
            dict(USERS[user][1]),
            userid=user,
            name_id=name_id,
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
                "authn_auth": self.entity_id,
            },
            sign_response=self.options.get("sign_response", False),
            sign_assertion=self.options.get("sign_assertion", True),
            encrypt_assertion=self.options.get("encrypt_assertion", False),
            encrypt_assertion_self_contained=True,
            **(SHA1 if self.options.get("sha1") else SHA256),
            **args,
        )
        self.sessions[user] = (name_id.text, "")
        http_args = self.server.apply_binding(
            BINDING_HTTP_POST,
            str(response),
            args["destination"],
            params.get("RelayState", ""),
            response=True,
        )
        start_response("200 OK", [("Content-Type", "text/html")])
        body = http_args["data"]
        return [body.encode() if isinstance(body, str) else body]

    def _ecp(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """The IdP's SOAP SSO endpoint for ECP clients: HTTP Basic, then a Response in a
        SOAP envelope with the ecp:Response header naming the SP's PAOS consumer."""
        import base64

        from saml2 import BINDING_PAOS, BINDING_SOAP
        from saml2.saml import NAMEID_FORMAT_TRANSIENT, NameID

        scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        user, _, password = base64.b64decode(encoded or "").decode().partition(":")
        if scheme != "Basic" or user not in USERS or USERS[user][0] != password:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="idp"')])
            return [b"log in"]
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size).decode()
        request = self.ecp_server.parse_authn_request(body, BINDING_SOAP)
        args = self.ecp_server.response_args(request.message, [BINDING_PAOS])
        response = self.ecp_server.create_authn_response(
            dict(USERS[user][1]),
            userid=user,
            name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="_" + user + "-ecp"),
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            },
            sign_assertion=True,
            **SHA256,
            **args,
        )
        document = re.sub(r"^<\?xml[^>]*\?>\s*", "", str(response))
        envelope = (
            '<soap11:Envelope xmlns:soap11="http://schemas.xmlsoap.org/soap/envelope/">'
            "<soap11:Header>"
            '<ecp:Response xmlns:ecp="urn:oasis:names:tc:SAML:2.0:profiles:SSO:ecp" '
            'soap11:mustUnderstand="1" soap11:actor="http://schemas.xmlsoap.org/soap/actor/next" '
            f'AssertionConsumerServiceURL="{html.escape(args["destination"])}"/>'
            f"</soap11:Header><soap11:Body>{document}</soap11:Body></soap11:Envelope>"
        )
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [envelope.encode()]

    def _slo(self, params: dict[str, str], query: str, start_response: Any) -> list[bytes]:
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.xmldsig import SIG_RSA_SHA256

        if "SAMLResponse" in params:  # answer to our own IdP-initiated request
            self.options["logout_response"] = params["SAMLResponse"]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"logged out"]
        request = self.server.parse_logout_request(
            params["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=params.get("RelayState"),
            sigalg=params.get("SigAlg"),
            signature=params.get("Signature"),
        )
        self.options["logout_request"] = request
        response = self.server.create_logout_response(request.message, [BINDING_HTTP_REDIRECT])
        http_args = self.server.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(response),
            response.destination,
            params.get("RelayState", ""),
            response=True,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        location = dict(http_args["headers"])["Location"]
        start_response("303 See Other", [("Location", location)])
        return [b""]
