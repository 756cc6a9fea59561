"""Federation metadata: signed aggregates of IdP descriptions, loaded from files or URLs,
verified against the federation's certificate, indexed by entityID, and refreshed in a
background thread so that requests never wait for a download.

A source that fails to refresh keeps serving its last good copy until that copy's
validUntil; a copy past validUntil is dropped. Downloads are cached in the state folder,
so a restart without network still knows the IdPs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import xmlsec
from lxml import etree

from gateway import xmlsafe
from gateway.config import FederationSource
from gateway.saml import dsig
from gateway.saml.namespaces import DS, MD, MDUI, PROTOCOL, SHIBMD, q
from gateway.saml.timeutil import parse_datetime, parse_duration

log = logging.getLogger("xtreemgate.saml.federation")

_ENTITY = q(MD, "EntityDescriptor")
_IDP = q(MD, "IDPSSODescriptor")


class MetadataError(ValueError):
    """A metadata document was refused; says which source and why."""


@dataclass(frozen=True)
class Endpoint:
    binding: str
    location: str
    response_location: str = ""


@dataclass(frozen=True)
class Scope:
    value: str
    regexp: bool = False


@dataclass
class IdentityProvider:
    """What metadata says about one IdP; its xmlsec keys are made on first use."""

    entity_id: str
    single_sign_on: tuple[Endpoint, ...]
    single_logout: tuple[Endpoint, ...]
    signing_certs: tuple[bytes, ...]  # DER
    encryption_certs: tuple[bytes, ...]
    scopes: tuple[Scope, ...]
    want_authn_requests_signed: bool
    display_names: dict[str, str]
    source: str
    _keys: list[xmlsec.Key] | None = field(default=None, repr=False)

    def signing_keys(self) -> list[xmlsec.Key]:
        if self._keys is None:
            self._keys = [dsig.key_from_cert(der, "der") for der in self.signing_certs]
        return self._keys

    def endpoint(self, kind: str, binding: str) -> Endpoint | None:
        endpoints = self.single_sign_on if kind == "sso" else self.single_logout
        return next((e for e in endpoints if e.binding == binding), None)

    def display_name(self, lang: str = "en") -> str:
        return (
            self.display_names.get(lang)
            or next(iter(self.display_names.values()), "")
            or self.entity_id
        )

    def scope_allows(self, scope: str) -> bool:
        """shibmd:Scope: an exact match, or a full match of a regexp scope."""
        import re

        for allowed in self.scopes:
            if allowed.regexp:
                if re.fullmatch(allowed.value, scope):
                    return True
            elif allowed.value == scope:
                return True
        return False


def _certs(descriptor: etree._Element, use: str) -> tuple[bytes, ...]:
    found = []
    for kd in descriptor.iterchildren(q(MD, "KeyDescriptor")):
        if kd.get("use", use) != use:
            continue
        for cert in kd.iter(q(DS, "X509Certificate")):
            text = "".join((cert.text or "").split())
            try:
                found.append(base64.b64decode(text, validate=True))
            except binascii.Error:
                continue
    return tuple(found)


def _endpoints(descriptor: etree._Element, tag: str) -> tuple[Endpoint, ...]:
    items = []
    for node in descriptor.iterchildren(q(MD, tag)):
        binding, location = node.get("Binding", ""), node.get("Location", "")
        if binding and location:
            items.append(Endpoint(binding, location, node.get("ResponseLocation", "")))
    return tuple(items)


def _text(node: etree._Element) -> str:
    return "".join(node.itertext()).strip()


def identity_provider(entity: etree._Element, source: str) -> IdentityProvider | None:
    """The IdP an EntityDescriptor describes, or None if it has no SAML 2.0 IdP role."""
    descriptor = next(
        (
            d
            for d in entity.iterchildren(_IDP)
            if PROTOCOL in d.get("protocolSupportEnumeration", "").split()
        ),
        None,
    )
    if descriptor is None:
        return None
    scopes: list[Scope] = []
    names: dict[str, str] = {}
    for ext in (entity.find(q(MD, "Extensions")), descriptor.find(q(MD, "Extensions"))):
        if ext is None:
            continue
        for scope in ext.iterchildren(q(SHIBMD, "Scope")):
            scopes.append(Scope(_text(scope), scope.get("regexp") in ("true", "1")))
        for name in ext.iter(q(MDUI, "DisplayName")):
            names.setdefault(
                name.get("{http://www.w3.org/XML/1998/namespace}lang", "en"), _text(name)
            )
    if not names:
        for name in entity.iter(q(MD, "OrganizationDisplayName")):
            names.setdefault(
                name.get("{http://www.w3.org/XML/1998/namespace}lang", "en"), _text(name)
            )
    return IdentityProvider(
        entity_id=entity.get("entityID", ""),
        single_sign_on=_endpoints(descriptor, "SingleSignOnService"),
        single_logout=_endpoints(descriptor, "SingleLogoutService"),
        signing_certs=_certs(descriptor, "signing"),
        encryption_certs=_certs(descriptor, "encryption"),
        scopes=tuple(scopes),
        want_authn_requests_signed=descriptor.get("WantAuthnRequestsSigned") in ("true", "1"),
        display_names=names,
        source=source,
    )


@dataclass
class LoadedAggregate:
    idps: dict[str, IdentityProvider]
    valid_until: datetime | None
    cache_duration: float | None
    loaded_at: float


def _valid_until(node: etree._Element) -> datetime | None:
    value = node.get("validUntil")
    return parse_datetime(value) if value else None


def read_aggregate(
    data: bytes,
    certificate_pem: bytes,
    source: str,
    *,
    require_valid_until: bool = True,
    max_bytes: int = 256 * 1024 * 1024,
    now: datetime | None = None,
) -> LoadedAggregate:
    """Parse, verify and index one metadata document, or :class:`MetadataError`."""
    now = now or datetime.now(UTC)
    try:
        root = xmlsafe.parse(data, max_bytes=max_bytes)
    except xmlsafe.UnsafeXML as exc:
        raise MetadataError(f"{source}: {exc}") from exc
    if root.tag not in (q(MD, "EntitiesDescriptor"), _ENTITY):
        raise MetadataError(f"{source}: root is {root.tag}, not SAML metadata")
    try:
        dsig.verify(root, [dsig.key_from_cert(certificate_pem)])
    except dsig.SignatureError as exc:
        raise MetadataError(f"{source}: metadata signature refused: {exc}") from exc
    except xmlsec.Error as exc:
        raise MetadataError(f"{source}: federation certificate unusable: {exc}") from exc
    try:
        valid_until = _valid_until(root)
        cache = root.get("cacheDuration")
        cache_duration = parse_duration(cache) if cache else None
    except ValueError as exc:
        raise MetadataError(f"{source}: {exc}") from exc
    if valid_until is None and require_valid_until:
        raise MetadataError(f"{source}: metadata has no validUntil (required for this source)")
    if valid_until is not None and valid_until <= now:
        raise MetadataError(f"{source}: metadata expired at {valid_until.isoformat()}")
    idps: dict[str, IdentityProvider] = {}
    entities = [root] if root.tag == _ENTITY else root.iter(_ENTITY)
    for entity in entities:
        try:
            entity_until = _valid_until(entity)
        except ValueError:
            continue
        if entity_until is not None and entity_until <= now:
            continue
        idp = identity_provider(entity, source)
        if idp is not None and idp.entity_id and idp.entity_id not in idps:
            idps[idp.entity_id] = idp
    return LoadedAggregate(idps, valid_until, cache_duration, time.time())


def fetch(source: str, max_bytes: int, timeout: float = 30.0) -> bytes:
    """The document's bytes from a file path or an http(s) URL, at most ``max_bytes``."""
    if source.startswith(("https://", "http://")):
        request = urllib.request.Request(  # noqa: S310 (http/https only, checked above)
            source, headers={"User-Agent": "xtreemgate-saml-sp"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            data = answer.read(max_bytes + 1)
    else:
        with open(source, "rb") as handle:
            data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise MetadataError(f"{source}: larger than {max_bytes} bytes")
    return data


@dataclass
class _SourceState:
    config: FederationSource
    aggregate: LoadedAggregate | None = None
    next_refresh: float = 0.0
    last_error: str = ""


class Federations:
    """Every configured federation source, merged into one index of IdPs.

    Readers see an immutable dict swapped in whole after each successful refresh, so a
    lookup never takes a lock and never waits for a load."""

    RETRY_AFTER_FAILURE = 60.0

    def __init__(
        self,
        sources: Sequence[FederationSource],
        cache_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = [_SourceState(s) for s in sources]
        self._cache_dir = cache_dir
        self._clock = clock
        self._index: dict[str, IdentityProvider] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------
    def lookup(self, entity_id: str) -> IdentityProvider | None:
        idp = self._index.get(entity_id)
        if idp is None:
            return None
        state = next((s for s in self._sources if s.config.source == idp.source), None)
        aggregate = state.aggregate if state else None
        if (
            aggregate
            and aggregate.valid_until
            and aggregate.valid_until.timestamp() <= self._clock()
        ):
            return None  # metadata expired since the last successful refresh
        return idp

    def __len__(self) -> int:
        return len(self._index)

    def identity_providers(self) -> Iterable[IdentityProvider]:
        return self._index.values()

    def search(self, text: str, limit: int = 20) -> list[IdentityProvider]:
        """IdPs whose display name or entityID contains every word of ``text``."""
        words = text.lower().split()
        hits = []
        for idp in self._index.values():
            haystack = " ".join([idp.entity_id, *idp.display_names.values()]).lower()
            if all(w in haystack for w in words):
                hits.append(idp)
        hits.sort(key=lambda i: i.display_name().lower())
        return hits[:limit]

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "source": s.config.source,
                "identity_providers": len(s.aggregate.idps) if s.aggregate else 0,
                "valid_until": s.aggregate.valid_until.isoformat()
                if s.aggregate and s.aggregate.valid_until
                else None,
                "error": s.last_error,
            }
            for s in self._sources
        ]

    # -- loading -------------------------------------------------------------------------
    def _cache_path(self, source: str) -> Path | None:
        if self._cache_dir is None or not source.startswith(("http://", "https://")):
            return None
        return (
            self._cache_dir / f"federation-{hashlib.sha256(source.encode()).hexdigest()[:16]}.xml"
        )

    def _load(self, state: _SourceState, *, initial: bool) -> None:
        config = state.config
        now = self._clock()
        cache = self._cache_path(config.source)
        try:
            certificate = Path(config.certificate).read_bytes()
        except OSError as exc:
            state.last_error = f"{config.source}: cannot read certificate: {exc}"
            log.error("federation metadata not loaded: %s", state.last_error)
            state.next_refresh = now + self.RETRY_AFTER_FAILURE
            return
        try:
            try:
                data = fetch(config.source, config.max_bytes)
            except (OSError, MetadataError) as exc:
                if not (initial and cache and cache.exists()):
                    raise MetadataError(f"{config.source}: cannot fetch: {exc}") from exc
                log.warning("federation %s unreachable (%s); using cached copy", config.source, exc)
                data = cache.read_bytes()
            aggregate = read_aggregate(
                data,
                certificate,
                config.source,
                require_valid_until=config.require_valid_until,
                max_bytes=config.max_bytes,
                now=datetime.fromtimestamp(now, UTC),
            )
        except MetadataError as exc:
            state.last_error = str(exc)
            log.error("federation metadata refused: %s", exc)
            state.next_refresh = now + min(self.RETRY_AFTER_FAILURE, config.refresh)
            return
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(cache)
        state.aggregate = aggregate
        state.last_error = ""
        interval = float(config.refresh)
        if aggregate.cache_duration is not None:
            interval = min(interval, max(aggregate.cache_duration, 10.0))
        if aggregate.valid_until is not None:
            interval = min(interval, max(aggregate.valid_until.timestamp() - now, 10.0))
        state.next_refresh = now + interval
        log.info(
            "federation metadata loaded: %s, %d identity providers, next refresh in %.0f s",
            config.source,
            len(aggregate.idps),
            interval,
        )
        self._rebuild()

    def _rebuild(self) -> None:
        index: dict[str, IdentityProvider] = {}
        for state in self._sources:  # earlier sources win for the same entityID
            if state.aggregate is not None:
                for entity_id, idp in state.aggregate.idps.items():
                    index.setdefault(entity_id, idp)
        self._index = index

    def load_all(self) -> None:
        """Load every source now (the first start; tests)."""
        with self._lock:
            for state in self._sources:
                self._load(state, initial=state.aggregate is None)

    def refresh_due(self) -> float:
        """Reload the sources whose time has come; returns seconds until the next one."""
        with self._lock:
            now = self._clock()
            for state in self._sources:
                if state.next_refresh <= now:
                    self._load(state, initial=state.aggregate is None)
            if not self._sources:
                return 3600.0
            return max(1.0, min(s.next_refresh for s in self._sources) - self._clock())

    def start(self) -> None:
        """Background refresh; the first load happens in the thread too, so a slow
        federation never delays the gateway's start."""
        if self._thread is not None or not self._sources:
            return
        self._thread = threading.Thread(target=self._run, name="saml-federation", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.refresh_due()
            except Exception:  # a bug must not end refreshing for good
                log.exception("federation metadata refresh failed")
                wait = self.RETRY_AFTER_FAILURE
            self._wake.wait(wait)
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
