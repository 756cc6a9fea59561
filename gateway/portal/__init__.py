"""The portal: small server-rendered pages for people logged in through SAML."""
