"""XML Signature for SAML, on xmlsec: verify an enveloped signature so that the element
the caller goes on to use is exactly the element the signature covers, and sign.

Signature wrapping attacks work when the verifier checks *some* signed element and the
consumer reads *another*. Here the caller names the element it intends to use; the
signature must be that element's own direct ``ds:Signature`` child, carry exactly one
``Reference`` whose URI is ``#`` + that element's ``ID``, that ID must occur once in the
whole document, and only the enveloped-signature and exclusive c14n transforms are
allowed (no XPath, XSLT or external references). Then xmlsec verifies with the key from
metadata, never a key from the message's own ``KeyInfo``.
"""

from __future__ import annotations

from collections.abc import Sequence

import xmlsec
from lxml import etree

from gateway.saml.namespaces import DS, q

_ALLOWED_TRANSFORMS = {
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
}
_ALLOWED_SIGNATURE_METHODS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}
# SHA-1 only where a site still has to accept it (saml.accept_sha1).
SHA1_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"


# xmlsec counts the digest among a reference's transforms, so the list names them too.
_REFERENCE_TRANSFORMS = (
    xmlsec.Transform.ENVELOPED,
    xmlsec.Transform.EXCL_C14N,
    xmlsec.Transform.EXCL_C14N_COMMENTS,
    xmlsec.Transform.SHA1,
    xmlsec.Transform.SHA256,
    xmlsec.Transform.SHA384,
    xmlsec.Transform.SHA512,
)


_SAME_ID = etree.XPath("count(//@ID[. = $id])")  # compiled once: runs on every signature


class SignatureError(ValueError):
    """The element is unsigned, or its signature is not acceptable; says why."""


def signature_of(element: etree._Element) -> etree._Element | None:
    """The element's own enveloped signature: a direct ds:Signature child, or None.

    More than one is refused: which one would count is exactly the ambiguity wrapping
    attacks live on."""
    found = element.findall(q(DS, "Signature"))
    if len(found) > 1:
        raise SignatureError(f"<{etree.QName(element).localname}> has {len(found)} signatures")
    return found[0] if found else None


def _check_shape(element: etree._Element, signature: etree._Element, allow_sha1: bool) -> None:
    local = etree.QName(element).localname
    element_id = element.get("ID")
    if not element_id:
        raise SignatureError(f"signed <{local}> has no ID attribute")
    signed_info = signature.find(q(DS, "SignedInfo"))
    if signed_info is None:
        raise SignatureError("ds:Signature has no ds:SignedInfo")
    c14n = signed_info.find(q(DS, "CanonicalizationMethod"))
    if c14n is None or c14n.get("Algorithm") not in _ALLOWED_TRANSFORMS:
        raise SignatureError("SignedInfo must be canonicalized with exclusive c14n")
    method = signed_info.find(q(DS, "SignatureMethod"))
    algorithm = method.get("Algorithm", "") if method is not None else ""
    if algorithm not in _ALLOWED_SIGNATURE_METHODS and not (
        allow_sha1 and algorithm == SHA1_SIGNATURE
    ):
        raise SignatureError(f"signature method {algorithm!r} is not accepted")
    references = signed_info.findall(q(DS, "Reference"))
    if len(references) != 1:
        raise SignatureError(f"signature has {len(references)} references; exactly 1 expected")
    uri = references[0].get("URI")
    if uri != "#" + element_id:
        raise SignatureError(
            f"signature of <{local} ID={element_id!r}> references {uri!r}, not this element"
        )
    digest = references[0].find(q(DS, "DigestMethod"))
    if digest is not None and digest.get("Algorithm") == SHA1_DIGEST and not allow_sha1:
        raise SignatureError("SHA-1 digests are not accepted")
    for transform in references[0].iter(q(DS, "Transform")):
        if transform.get("Algorithm") not in _ALLOWED_TRANSFORMS:
            raise SignatureError(f"transform {transform.get('Algorithm')!r} is not accepted")
    same_id = int(_SAME_ID(element.getroottree().getroot(), id=element_id))
    if same_id != 1:
        raise SignatureError(f"ID {element_id!r} occurs {same_id} times in the document")


def verify(
    element: etree._Element, keys: Sequence[xmlsec.Key], *, allow_sha1: bool = False
) -> etree._Element:
    """``element`` itself once its own signature verifies against one of ``keys``;
    otherwise :class:`SignatureError`. Callers read only from the returned element."""
    signature = signature_of(element)
    if signature is None:
        raise SignatureError(f"<{etree.QName(element).localname}> is not signed")
    _check_shape(element, signature, allow_sha1)
    if not keys:
        raise SignatureError("no signing key is known for the issuer")
    xmlsec.tree.add_ids(element, ["ID"])
    last = ""
    for key in keys:
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        for transform in _REFERENCE_TRANSFORMS:
            ctx.enable_reference_transform(transform)
        try:
            ctx.verify(signature)
        except xmlsec.Error as exc:
            last = str(exc)
            continue
        return element
    raise SignatureError(f"signature does not verify with the issuer's key(s) ({last})")


def key_from_cert(cert: bytes, fmt: str = "pem") -> xmlsec.Key:
    """An xmlsec public key from a certificate (PEM bytes, or DER for metadata's base64)."""
    kind = xmlsec.KeyFormat.CERT_PEM if fmt == "pem" else xmlsec.KeyFormat.CERT_DER
    return xmlsec.Key.from_memory(cert, kind)


def sign(
    element: etree._Element,
    key_pem: bytes,
    cert_pem: bytes | None,
    *,
    index: int = 0,
) -> etree._Element:
    """Add an enveloped RSA-SHA256 signature over ``element`` (by its ID) at child
    position ``index`` (SAML puts it right after Issuer, metadata first)."""
    element_id = element.get("ID")
    if not element_id:
        raise ValueError("element to sign needs an ID attribute")
    signature = xmlsec.template.create(
        element, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256, ns="ds"
    )
    element.insert(index, signature)
    ref = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="#" + element_id)
    xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    if cert_pem is not None:
        key_info = xmlsec.template.ensure_key_info(signature)
        xmlsec.template.add_x509_data(key_info)
    ctx = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM)
    if cert_pem is not None:
        key.load_cert_from_memory(cert_pem, xmlsec.KeyFormat.CERT_PEM)
    ctx.key = key
    xmlsec.tree.add_ids(element, ["ID"])
    ctx.sign(signature)
    return element
