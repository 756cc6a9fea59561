"""Shared by the OCCI tests: an isolated libvirt test-driver host with a template image,
JSON checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from tests.integration.libvirt_support import require_libvirt
from tests.libvirt_hosts import POOL, write_node_xml

TEMPLATE = "debian12.qcow2"
OS_TPL = "http://schemas.xtreemgate.org/occi/os_tpl#debian12_qcow2"
SMALL = "http://schemas.xtreemgate.org/occi/resource_tpl#small"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE_KIND = f'compute; scheme="{INFRA}"; class="kind"'


def isolated_vm(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """``vm`` settings for one test's own hypervisor: a ``test:///<node.xml>`` host with
    the template volume in pool ``xg-pool``. ``test:///default`` is shared by the whole
    process (VMs of earlier tests would fill its memory), so OCCI tests never use it."""
    require_libvirt()  # skips locally with the install hint, fails under CI=true
    uri = write_node_xml(tmp_path / "occi-node.xml", templates=(TEMPLATE,))
    return {"uris": [uri], "pool": POOL, **extra}


def check_json(response: Any) -> Any:
    """Every JSON the server sends validates against schemas/occi-1.2.json."""
    from gateway.occi.jsonrender import schema

    doc = json.loads(response.text if hasattr(response, "text") else response.data)
    jsonschema.Draft7Validator(schema()).validate(doc)
    return doc
