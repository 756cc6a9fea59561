"""XML namespaces and URIs of SAML 2.0 and its profiles, by their standard names."""

from __future__ import annotations

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SHIBMD = "urn:mace:shibboleth:metadata:1.0"
MDUI = "urn:oasis:names:tc:SAML:metadata:ui"
MDATTR = "urn:oasis:names:tc:SAML:metadata:attribute"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
IDPDISC = "urn:oasis:names:tc:SAML:profiles:SSO:idp-discovery-protocol"

NSMAP = {"saml": SAML, "samlp": SAMLP, "md": MD, "ds": DS, "xenc": XENC}

BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_PAOS = "urn:oasis:names:tc:SAML:2.0:bindings:PAOS"

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"

CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
PROTOCOL = SAMLP  # protocolSupportEnumeration names SAML 2.0 by its protocol namespace

SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
LOGOUT_USER = "urn:oasis:names:tc:SAML:2.0:logout:user"


def q(ns: str, local: str) -> str:
    """Clark notation, as lxml wants it."""
    return f"{{{ns}}}{local}"
