"""Fixtures of the interop suite: a real pysaml2 IdP and a gateway served over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import services


@dataclass
class SAMLWorld:
    gateway: str  # base URL of the running gateway
    idp: Any  # tests.interop.saml_idp.IdP
    runtime: Any
    federation_key: Path
    federation_cert: Path
    directory: Path

    @property
    def sp(self) -> Any:
        return self.runtime.saml


def _serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="module")
def saml_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SAMLWorld]:
    import requests

    from backends.store import migrate
    from gateway.app import create_app
    from gateway.config import load_settings
    from tests.integration.occi_support import isolated_vm
    from tests.interop import saml_idp

    saml_idp.xmlsec1()  # skips (or fails under CI) without Debian's xmlsec1
    directory = tmp_path_factory.mktemp("saml")
    idp_key, idp_cert = saml_idp.make_keypair(directory, "idp")
    fed_key, fed_cert = saml_idp.make_keypair(directory, "federation")
    idp = saml_idp.IdP(directory, services.free_port(), idp_key, idp_cert)
    (directory / "federation.xml").write_bytes(
        saml_idp.sign_aggregate(saml_idp.aggregate([idp.metadata()]), fed_key, fed_cert, directory)
    )
    port = services.free_port()
    settings = load_settings(
        None,
        state_dir=str(directory / "state"),
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        logging={"format": "text", "access_log": False},
        auth={"chain": ["bearer", "basic", "saml"]},
        vm=isolated_vm(directory),  # the portal lists and stops VMs on a host of its own
        saml={
            "enabled": True,
            "key_size": 2048,
            "clock_skew": 60,
            "federations": [
                {"source": str(directory / "federation.xml"), "certificate": str(fed_cert)}
            ],
            # The IdP's own group authority, for any VO (and the local VO "fusion").
            "entitlement_authorities": [
                {"authority": "aai.example.org", "idps": [idp.entity_id], "vos": ["*", "fusion"]}
            ],
        },
    )
    migrate.upgrade(settings.database_url)
    app = create_app(settings, configure_logs=False)
    runtime = app.app.extensions["xtreemgate"]
    runtime.saml.federations.load_all()
    server, thread = _serve(app, port)
    gateway = f"http://127.0.0.1:{port}"
    idp.start(requests.get(f"{gateway}/saml/metadata", timeout=10).content)
    try:
        yield SAMLWorld(gateway, idp, runtime, fed_key, fed_cert, directory)
    finally:
        idp.stop()
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()
