"""``Authorization: Negotiate <token>`` (RFC 4559): Kerberos users of this site's realm and
of realms it trusts, mapped to site users, with their VO memberships from the directory.

On success the server's mutual-authentication token goes back to the client as
``WWW-Authenticate: Negotiate <token>`` on the 2xx answer (through
``AuthRequest.response_headers``), so the client can tell it spoke to the real service.
"""

from __future__ import annotations

import logging

from adapters.kerberos import KerberosError, PrincipalMapper, SPNEGOAcceptor
from adapters.ldap import Directory, DirectoryError, DirectoryUnavailable
from backends.contracts.model import Principal, VOMembership
from gateway.auth.chain import AuthenticationFailed, AuthRequest

log = logging.getLogger("xtreemgate.auth")


class NegotiateAuthenticator:
    mechanism = "negotiate"

    def __init__(
        self,
        acceptor: SPNEGOAcceptor,
        mapper: PrincipalMapper,
        directory: Directory | None = None,
        *,
        require_vo_membership: bool = False,
    ) -> None:
        self.acceptor = acceptor
        self.mapper = mapper
        self.directory = directory
        self.require_vo_membership = require_vo_membership

    def present(self, request: AuthRequest) -> bool:
        return request.authorization("Negotiate") is not None

    def blocking(self, request: AuthRequest) -> bool:
        return True  # keytab reads, replay cache, directory lookups

    def authenticate(self, request: AuthRequest) -> Principal:
        token = request.authorization("Negotiate") or ""
        try:
            context = self.acceptor.accept(token)
            user = self.mapper.map(context.principal)
        except KerberosError as exc:
            raise AuthenticationFailed(exc.reason, self.mechanism) from exc
        display_name, memberships, attributes = (
            "",
            (),
            {
                "kerberos_principal": context.principal,
                "realm": context.realm,
            },
        )
        if self.directory is not None:
            display_name, memberships, dn = self._from_directory(context.principal, user)
            if dn:
                attributes["directory_dn"] = dn
        if self.require_vo_membership and not memberships:
            raise AuthenticationFailed(
                f"{context.principal} (user {user}) is a member of no VO in the directory; "
                "ask a VO manager to add you",
                self.mechanism,
                status=403,
            )
        if context.mutual_token:
            request.response_headers["www-authenticate"] = f"Negotiate {context.mutual_token}"
        log.info("negotiate: %s authenticated as %s", context.principal, user)
        return Principal(
            name=user,
            authenticated_by=self.mechanism,
            display_name=display_name,
            memberships=memberships,
            attributes=attributes,
        )

    def _from_directory(
        self, principal: str, user: str
    ) -> tuple[str, tuple[VOMembership, ...], str]:
        assert self.directory is not None
        try:
            entry = self.directory.user_by_uid(user)
        except DirectoryUnavailable as exc:
            raise AuthenticationFailed(
                f"cannot look {user} up in the directory now: {exc}", self.mechanism, status=503
            ) from exc
        except DirectoryError as exc:
            raise AuthenticationFailed(
                f"directory lookup of {user} failed: {exc}", self.mechanism, status=403
            ) from exc
        if entry is None:
            log.info("negotiate: %s maps to %s, who is not in the directory", principal, user)
            return "", (), ""
        return entry.display_name, self.directory.memberships(entry), entry.dn

    def challenge(self) -> str:
        return "Negotiate"
