"""xtreemgate protocol front ends: the HTTP app, authentication, OCCI, OGSA-BES, SAML."""
