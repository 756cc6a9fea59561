"""xtreemgate protocol front ends: the HTTP app, authentication, OCCI, OGSA-BES, SAML."""

import warnings

# connexion 3.3 imports starlette's test client at import time, which warns at every start
# of every worker about a test-only dependency; nothing here can act on it.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
