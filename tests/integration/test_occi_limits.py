"""OCCI answers that need their own gateway settings: 413 for long listings, 503 (and no
record left behind) when the hypervisor cannot be reached."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backends.store import migrate
from tests.conftest import PASSWORD, basic
from tests.integration.occi_support import COMPUTE_KIND, isolated_vm

PLAIN = {"Content-Type": "text/plain"}


@pytest.fixture
def make_client(make_settings: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    from gateway.app import create_app
    from gateway.auth.users import add_user

    apps = []

    def make(**overrides: Any) -> Any:
        settings = make_settings(**overrides)
        migrate.upgrade(settings.database_url)
        app = create_app(settings, configure_logs=False)
        apps.append(app)
        add_user(app.app.extensions["xtreemgate"].db, "alice", PASSWORD)
        return app.test_client()

    yield make
    for app in apps:
        app.app.extensions["xtreemgate"].close()


def test_long_listing_is_413_until_paged(make_client: Callable[..., Any], tmp_path: Any) -> None:
    client = make_client(occi={"max_collection": 2}, vm=isolated_vm(tmp_path))
    h = basic("alice")
    for _ in range(3):
        r = client.post("/compute/", headers={**h, **PLAIN}, content=f"Category: {COMPUTE_KIND}\n")
        assert r.status_code == 201, r.text
    r = client.get("/compute/", headers=h)
    assert r.status_code == 413 and "page=1&number=2" in r.text
    assert client.get("/compute/", headers=h, params={"number": 3}).status_code == 413
    paged = client.get("/compute/", headers=h, params={"page": 2, "number": 2})
    assert paged.status_code == 200 and paged.text.count("X-OCCI-Location") == 1


def test_unreachable_hypervisor_is_503_and_nothing_is_half_written(
    make_client: Callable[..., Any], tmp_path: Any
) -> None:
    client = make_client(vm={"uris": [f"test://{tmp_path}/no-such-node.xml"]})
    h = basic("alice")
    r = client.post("/compute/", headers={**h, **PLAIN}, content=f"Category: {COMPUTE_KIND}\n")
    assert r.status_code == 503, r.text
    assert "unreachable" in r.text and r.headers["Retry-After"]
    listing = client.get("/compute/", headers=h)
    assert listing.status_code == 200 and "X-OCCI-Location" not in listing.text
