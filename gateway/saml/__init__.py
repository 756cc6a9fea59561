"""SAML 2.0 service provider: Web Browser SSO, ECP, metadata, single logout."""
