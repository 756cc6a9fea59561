"""Validation of what the BES endpoint sends against the OFFICIAL OGF schemas.

The official copies live in root/../shared/interop/schemas/. Their network imports (the
SOAP 1.1 envelope schema and WS-Addressing) are resolved locally: ws-addr.xsd from the
official folder, the SOAP envelope schema from the project's schemas/ (the official
folder has none). The message elements are in the WSDL's inline schema, which is cut out
and written beside a copy of bes-factory.xsd so its include resolves (with the one
import of the WS-Addressing namespace it forgot). BES management is
not in the official set; it validates against the project's own bes-management.xsd.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / ".." / "shared" / "interop"
OFFICIAL = INTEROP / "schemas"
OWN = ROOT / "schemas"
XSD = "http://www.w3.org/2001/XMLSchema"

NETWORK = {
    "http://schemas.xmlsoap.org/soap/envelope/": OWN / "soap-envelope.xsd",
    "http://www.w3.org/2002/ws/addr/ns/ws-addr": OFFICIAL / "ws-addr.xsd",
}


class _Local(etree.Resolver):
    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        if url in NETWORK:
            return self.resolve_filename(str(NETWORK[url]), context)
        if url and url.startswith(("http://", "https://")):
            raise AssertionError(f"schema tried to fetch {url} from the network")
        return None


def _parser() -> etree.XMLParser:
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)
    parser.resolvers.add(_Local())
    return parser


@functools.cache
def official_schema() -> etree.XMLSchema:
    folder = Path(tempfile.mkdtemp(prefix="bes-schemas-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in ("bes-factory.xsd", "jsdl.xsd", "ws-addr.xsd"):
        shutil.copy(OFFICIAL / name, folder / name)
    shutil.copy(OWN / "bes-management.xsd", folder / "bes-management.xsd")
    wsdl = etree.parse(str(OFFICIAL / "bes-factory.wsdl"), _parser())
    inline = wsdl.find(f".//{{{XSD}}}schema")
    # The inline schema uses wsa:EndpointReferenceType without importing its namespace
    # (strict XSD processors refuse that; zeep forgives it): add the import, nothing else.
    wsa_import = etree.Element(f"{{{XSD}}}import")
    wsa_import.set("namespace", "http://www.w3.org/2005/08/addressing")
    wsa_import.set("schemaLocation", "http://www.w3.org/2002/ws/addr/ns/ws-addr")
    inline.insert(0, wsa_import)
    (folder / "bes-messages.xsd").write_bytes(etree.tostring(inline))
    wrapper = f"""<xsd:schema xmlns:xsd="{XSD}" targetNamespace="urn:xtreemgate:test:all">
      <xsd:import namespace="http://schemas.xmlsoap.org/soap/envelope/"
                  schemaLocation="http://schemas.xmlsoap.org/soap/envelope/"/>
      <xsd:import namespace="http://www.w3.org/2005/08/addressing"
                  schemaLocation="http://www.w3.org/2002/ws/addr/ns/ws-addr"/>
      <xsd:import namespace="http://schemas.ggf.org/bes/2006/08/bes-factory"
                  schemaLocation="bes-messages.xsd"/>
      <xsd:import namespace="http://schemas.ggf.org/bes/2006/08/bes-management"
                  schemaLocation="bes-management.xsd"/>
    </xsd:schema>"""
    (folder / "all.xsd").write_text(wrapper)
    return etree.XMLSchema(etree.parse(str(folder / "all.xsd"), _parser()))


def assert_valid(document: bytes | etree._Element) -> None:
    """Raise with libxml2's message when the document breaks the official schemas."""
    root = etree.fromstring(document) if isinstance(document, bytes) else document
    schema = official_schema()
    if not schema.validate(root):
        errors = "\n".join(str(e) for e in schema.error_log)
        raise AssertionError(f"not valid against the official BES schemas:\n{errors}")
