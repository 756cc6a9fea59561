"""Namespaces of the XML standards that several front ends and JSDL share: SOAP 1.1/1.2,
WS-Addressing 1.0, WS-Security 1.0, the HPC Basic Profile file staging extensions.

Each standard's own namespaces live with it (``gateway.jsdl.namespaces``,
``gateway.bes.namespaces``, ``gateway.saml.namespaces``); these are the ones between.
"""

from __future__ import annotations

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSA_ANONYMOUS = f"{WSA}/anonymous"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
# HPC Basic Profile File Staging Extension (GFD.135): Staging-In / Staging-Out substates,
# and credentials in a DataStaging element: the 2007/01 "fs" and the 2007/11 "ac" drafts
# both carry a wsse:UsernameToken.
HPCP_FS = "http://schemas.ogf.org/hpcp/2007/01/fs"
HPCP_AC = "http://schemas.ogf.org/hpcp/2007/11/ac"
