"""Shared by the OCCI tests: a template image on libvirt's test driver, JSON checks."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

TEMPLATE = "debian12.qcow2"
OS_TPL = "http://schemas.xtreemgate.org/occi/os_tpl#debian12_qcow2"
SMALL = "http://schemas.xtreemgate.org/occi/resource_tpl#small"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE_KIND = f'compute; scheme="{INFRA}"; class="kind"'


_KEEP: list = []


def ensure_template(uri: str = "test:///default") -> None:
    """A template volume in the test driver's default pool. The driver's state lives as
    long as one connection to it is open in the process, so this one stays open."""
    import libvirt

    if not _KEEP:
        _KEEP.append(libvirt.open(uri))
    conn = _KEEP[0]
    pool = conn.storagePoolLookupByName("default-pool")
    if TEMPLATE not in pool.listVolumes():
        pool.createXML(
            f"<volume><name>{TEMPLATE}</name><capacity unit='MiB'>64</capacity></volume>", 0
        )


def check_json(response: Any) -> Any:
    """Every JSON the server sends validates against schemas/occi-1.2.json."""
    from gateway.occi.jsonrender import schema

    doc = json.loads(response.text if hasattr(response, "text") else response.data)
    jsonschema.Draft7Validator(schema()).validate(doc)
    return doc
