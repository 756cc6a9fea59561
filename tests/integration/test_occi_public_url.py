"""OCCI locations with ``server.public_url`` set (#16.11): absolute, as 1.1-era clients,
pOCCI and text/uri-list readers expect; relative without it (test_occi_http.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import basic
from tests.integration.occi_support import COMPUTE_KIND, INFRA, isolated_vm

BASE = "https://cloud.example.org:8443"
PLAIN = {"Content-Type": "text/plain", "Accept": "text/plain"}


@pytest.fixture
def settings(make_settings: Callable[..., Any], tmp_path: Any) -> Any:
    from backends.store import migrate

    s = make_settings(vm=isolated_vm(tmp_path), server={"public_url": BASE + "/"})
    migrate.upgrade(s.database_url)
    return s


def test_every_rendered_location_is_absolute(client: Any, alice: str) -> None:
    h = basic(alice)
    storage = f'Category: storage; scheme="{INFRA}"; class="kind"\n'
    made = client.post(
        "/storage/",
        headers={**h, **PLAIN},
        content=storage + "X-OCCI-Attribute: occi.storage.size=1\n",
    )
    disk = made.headers["Location"]
    assert made.status_code == 201 and disk.startswith(BASE + "/storage/"), made.text
    made = client.post(
        "/compute/",
        headers={**h, **PLAIN},
        content=f'Category: {COMPUTE_KIND}\nLink: <{disk}>; rel="{INFRA}storage"; '
        f'category="{INFRA}storagelink"\n',
    )
    assert made.status_code == 201, made.text
    vm = made.headers["Location"]
    assert vm.startswith(BASE + "/compute/")
    shown = client.get(vm, headers=h).text
    assert f"Link: <{disk}>" in shown and f'self="{BASE}/storagelink/' in shown
    assert f"<{vm}?action=stop>" in shown
    assert f"X-OCCI-Location: {vm}" in client.get("/compute/", headers=h).text
    uris = client.get("/compute/", headers={**h, "Accept": "text/uri-list"}).text.split()
    assert uris == [vm]
    paged = client.get("/compute/", headers=h, params={"page": 1, "number": 1}).text
    assert paged == f"X-OCCI-Location: {vm}\n"
    doc = client.get(vm, headers={**h, "Accept": "application/occi+json"}).json()
    assert doc["links"][0]["target"]["location"] == disk
    assert doc["links"][0]["source"]["location"] == vm
    link = doc["links"][0]["id"]
    ends = client.get(f"/storagelink/{link}", headers=h).text
    assert f'occi.core.source="{vm}"' in ends and f'occi.core.target="{disk}"' in ends
    path = vm.removeprefix(BASE)
    assert client.get(path, headers=h).status_code == 200  # requests name paths, as ever
