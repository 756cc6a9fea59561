"""Isolated libvirt test-driver hosts for tests and benchmarks.

``test:///<abs path to node.xml>`` gives each connection its own in-memory hypervisor,
preset from the file: here a storage pool with an image template volume and a network,
so that tests never share state (``test:///default`` is shared by the whole process).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

POOL = "xg-pool"
TEMPLATE = "debian-12.qcow2"
TEMPLATE_BYTES = 2 * 1024**3


def write_node_xml(
    path: Path, *, memory_mib: int = 8192, cpus: int = 4, templates: tuple[str, ...] = (TEMPLATE,)
) -> str:
    """Write a preset to ``path``; returns its ``test:///…`` URI."""
    volumes = "".join(
        f"""
      <volume type='file'>
        <name>{name}</name>
        <capacity>{TEMPLATE_BYTES}</capacity>
        <allocation>0</allocation>
        <target><format type='qcow2'/></target>
      </volume>"""
        for name in templates
    )
    path.write_text(
        f"""<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads>
       <mhz>2000</mhz></cpu>
  <memory>{memory_mib * 1024}</memory>
  <pool type='dir'>
    <name>{POOL}</name>
    <uuid>{uuid.uuid4()}</uuid>
    <capacity>1099511627776</capacity>
    <allocation>0</allocation>
    <available>1099511627776</available>
    <target><path>/var/lib/xtreemgate/{POOL}</path></target>{volumes}
  </pool>
  <network>
    <name>default</name>
    <bridge name='virbr0'/>
    <forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'/>
  </network>
</node>
""",
        encoding="utf-8",
    )
    return f"test://{path.resolve()}"


def vm_options(uris: list[str], **extra: Any) -> SimpleNamespace:
    """The ``[vm]`` settings a backend reads, for tests that build it directly."""
    values: dict[str, Any] = {
        "uris": uris,
        "pool": POOL,
        "image_pool": "",
        "placement": "least-loaded-memory",
        "domain_type": "",
        "retry_seconds": 10.0,
        "overcommit": 1.0,
        "sizes": {
            "small": {"cores": 1, "memory_mib": 1024},
            "large": {"cores": 4, "memory_mib": 4096},
        },
    }
    values.update(extra)
    return SimpleNamespace(**values)
