"""Virtual clusters over the real libvirt backend (test driver, isolated preset)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.contracts.interfaces import BackendContext, BackendUnavailable, InvalidSpec
from backends.contracts.model import VMSpec
from backends.services.clusters import VirtualClusters, member_id, member_spec
from tests.integration.libvirt_support import require_libvirt
from tests.libvirt_hosts import TEMPLATE, vm_options, write_node_xml

require_libvirt()

from backends.vm.libvirt.backend import LibvirtVMBackend  # noqa: E402 - needs the binding

CLUSTER = "0b7e3d55-0a57-4bd4-a1f4-2c6d1b7f0c11"
TEMPLATE_SPEC = VMSpec(name="ssi", hostname="node", image=TEMPLATE, memory_mib=1024)


@pytest.fixture
def backend(tmp_path: Path):
    uri = write_node_xml(tmp_path / "host.xml", memory_mib=6144)
    backend = LibvirtVMBackend(BackendContext(None, tmp_path / "state", vm_options([uri])))
    yield backend
    backend.close()


def test_member_ids_are_stable_and_specs_numbered():
    assert member_id(CLUSTER, 3) == member_id(CLUSTER, 3)
    assert len({member_id(CLUSTER, i) for i in range(100)}) == 100
    assert member_id(CLUSTER, 0) != member_id("another-cluster", 0)
    spec = member_spec(TEMPLATE_SPEC, 2)
    assert (spec.name, spec.hostname, spec.image) == ("ssi-2", "node-2", TEMPLATE)


def test_cluster_lifecycle(backend):
    clusters = VirtualClusters(backend)
    members = clusters.create(CLUSTER, TEMPLATE_SPEC, 3)
    ids = [m.id for m in members]
    assert ids == [member_id(CLUSTER, i) for i in range(3)]
    assert {m.hostname for m in members} == {"node-0", "node-1", "node-2"}
    assert {m.image for m in members} == {TEMPLATE}

    stopped = clusters.stop(ids)
    assert stopped.ok and {m.state for m in stopped.members.values()} == {"inactive"}
    backend.act(ids[0], "start")  # one member already running: start skips it
    started = clusters.start(ids)
    assert started.ok and {m.state for m in started.members.values()} == {"active"}

    added = clusters.add(CLUSTER, TEMPLATE_SPEC, ids, 2)
    assert [m.id for m in added] == [member_id(CLUSTER, 3), member_id(CLUSTER, 4)]
    ids += [m.id for m in added]
    assert set(clusters.describe(ids)) == set(ids)

    evicted = clusters.evict([ids[1], ids[3]])
    assert evicted.ok
    remaining = [ids[0], ids[2], ids[4]]
    assert set(backend.describe()) == set(remaining)
    # the freed index 1 is reused first
    assert clusters.add(CLUSTER, TEMPLATE_SPEC, remaining)[0].id == member_id(CLUSTER, 1)


def test_growing_beyond_capacity_leaves_no_member_behind(backend):
    clusters = VirtualClusters(backend)
    ids = [m.id for m in clusters.create(CLUSTER, TEMPLATE_SPEC, 2)]
    with pytest.raises(BackendUnavailable, match="no hypervisor has 1024 MiB free"):
        clusters.add(CLUSTER, TEMPLATE_SPEC, ids, 10)  # 6 GiB host: 4 more fit, not 10
    assert set(backend.describe()) == set(ids)


def test_errors_are_reported_per_member(backend):
    clusters = VirtualClusters(backend)
    ids = [m.id for m in clusters.create(CLUSTER, TEMPLATE_SPEC, 2)]
    backend.delete(ids[1])
    result = clusters.stop(ids)
    assert not result.ok
    assert set(result.members) == {ids[0]}
    assert "does not exist" in result.errors[ids[1]]
    assert clusters.evict(ids).ok  # a member already gone counts as evicted
    with pytest.raises(InvalidSpec, match=r"1\.\.1024 members"):
        clusters.create(CLUSTER, TEMPLATE_SPEC, 0)
