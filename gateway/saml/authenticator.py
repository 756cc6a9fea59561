"""The SAML login session as an authenticator of the chain (gateway/auth/chain.py), so
portal pages and APIs accept the browser's session cookie like any other credential."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from backends.contracts.model import Principal
from gateway.auth.chain import AuthenticationFailed, AuthRequest
from gateway.saml.sp import ServiceProvider


class SAMLSessionAuthenticator:
    mechanism = "saml"

    def __init__(self, sp: ServiceProvider) -> None:
        self.sp = sp

    def _cookie(self, request: AuthRequest) -> str | None:
        header = request.headers.get("cookie", "")
        if self.sp.config.session_cookie not in header:
            return None
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return None
        morsel = jar.get(self.sp.config.session_cookie)
        return morsel.value if morsel else None

    def present(self, request: AuthRequest) -> bool:
        return self._cookie(request) is not None

    def blocking(self, request: AuthRequest) -> bool:
        return True  # a database lookup

    def authenticate(self, request: AuthRequest) -> Principal:
        found = self.sp.session(self._cookie(request) or "")
        if found is None:
            raise AuthenticationFailed(
                "SAML session cookie is invalid, expired or logged out", self.mechanism
            )
        return found[1]

    def challenge(self) -> str:
        return f'SAML realm="{self.sp.entity_id}", login="{self.sp.public_url}/saml/login"'
