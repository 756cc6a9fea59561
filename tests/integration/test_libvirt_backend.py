"""The libvirt VM backend against the real libvirt library (test driver).

Every test gets its own hypervisor(s): ``test:///<node.xml>`` presets written into
tmp_path (pool ``xg-pool`` with the template ``debian-12.qcow2``). Only the restart and
event tests use ``test:///default``, whose state the whole process shares (a second
connection must see the same hypervisor), and they remove what they made.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backends.contracts.interfaces import (
    BackendContext,
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    UnknownResource,
)
from backends.contracts.model import NetworkSpec, StorageSpec, VMSpec
from tests.integration.libvirt_support import require_libvirt
from tests.libvirt_hosts import POOL, TEMPLATE, vm_options, write_node_xml

libvirt = require_libvirt()

from backends.vm.libvirt.backend import LibvirtVMBackend  # noqa: E402 - needs the binding

DOWN = "test+tcp://127.0.0.1:1/default"  # nothing listens on port 1: refused at once


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def make_backend(tmp_path: Path) -> Iterator[Callable[..., LibvirtVMBackend]]:
    made: list[LibvirtVMBackend] = []

    def make(uris: list[str], **options: Any) -> LibvirtVMBackend:
        state = tmp_path / "state"
        backend = LibvirtVMBackend(BackendContext(None, state, vm_options(uris, **options)))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return write_node_xml(tmp_path / "host-a.xml")


@pytest.fixture
def backend(make_backend, uri) -> LibvirtVMBackend:
    return make_backend([uri])


def domain(backend: LibvirtVMBackend, vm_id: str) -> Any:
    """The libvirt domain itself, read through the backend's own connection."""
    info = backend.describe([vm_id])[vm_id]
    return backend.connection(info.host).lookupByUUIDString(vm_id)


def pool_volumes(backend: LibvirtVMBackend, uri: str) -> set[str]:
    return set(backend.connection(uri).storagePoolLookupByName(POOL).listVolumes())


def new_vm(backend: LibvirtVMBackend, **spec: Any) -> str:
    vm_id = new_id()
    spec.setdefault("name", "vm")
    spec.setdefault("image", TEMPLATE)
    backend.create(vm_id, VMSpec(**spec))
    return vm_id


# -- compute ---------------------------------------------------------------------------
def test_create_defines_domain_from_spec_and_clones_the_template(backend, uri):
    vm_id = new_id()
    spec = VMSpec(name="web", size="large", hostname="web1.example.org", image=TEMPLATE)
    info = backend.create(vm_id, spec)

    assert (info.id, info.state, info.host) == (vm_id, "active", uri)
    assert (info.cores, info.memory_mib) == (4, 4096)  # resource_tpl "large" from config
    assert (info.hostname, info.image, info.architecture) == (
        "web1.example.org",
        TEMPLATE,
        "x86_64",
    )
    dom = domain(backend, vm_id)
    assert dom.UUIDString() == vm_id
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    xml = dom.XMLDesc(0)
    assert "<title>web1.example.org</title>" in xml
    assert "urn:xtreemgate:vm:1" in xml
    disk = f"xg-vm-{vm_id}.qcow2"
    assert disk in pool_volumes(backend, uri)
    assert f"/{disk}" in xml
    assert backend.describe() == {vm_id: info}


def test_cores_and_memory_without_a_size_and_without_an_image(backend):
    vm_id = new_id()
    info = backend.create(vm_id, VMSpec(name="bare", cores=3, memory_mib=768, share=512))
    assert (info.cores, info.memory_mib, info.image) == (3, 768, "")
    assert "<shares>512</shares>" in domain(backend, vm_id).XMLDesc(0)


@pytest.mark.parametrize(
    ("action", "method", "state", "libvirt_state"),
    [
        ("suspend", "suspend", "suspended", libvirt.VIR_DOMAIN_PAUSED),
        ("suspend", "hibernate", "suspended", libvirt.VIR_DOMAIN_SHUTOFF),
        ("stop", "graceful", "inactive", libvirt.VIR_DOMAIN_SHUTOFF),
        ("stop", "acpioff", "inactive", libvirt.VIR_DOMAIN_SHUTOFF),
        ("stop", "poweroff", "inactive", libvirt.VIR_DOMAIN_SHUTOFF),
        ("restart", "graceful", "active", libvirt.VIR_DOMAIN_RUNNING),
        ("restart", "warm", "active", libvirt.VIR_DOMAIN_RUNNING),
        ("restart", "cold", "active", libvirt.VIR_DOMAIN_RUNNING),
    ],
)
def test_every_action_and_method_then_start_again(backend, action, method, state, libvirt_state):
    vm_id = new_vm(backend)
    info = backend.act(vm_id, action, method)
    assert info.state == state
    dom = domain(backend, vm_id)
    assert dom.state()[0] == libvirt_state
    assert backend.describe([vm_id])[vm_id].state == state
    if method == "hibernate":
        assert dom.hasManagedSaveImage(0) == 1
        assert "hibernated" in info.state_message
    if state != "active":
        again = backend.act(vm_id, "start")
        assert again.state == "active"
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert dom.hasManagedSaveImage(0) == 0  # a hibernated VM resumed from its save


def test_stop_of_a_suspended_vm(backend):
    paused, hibernated = new_vm(backend), new_vm(backend)
    backend.act(paused, "suspend", "suspend")
    backend.act(hibernated, "suspend", "hibernate")
    assert backend.act(paused, "stop", "graceful").state == "inactive"
    assert backend.act(hibernated, "stop").state == "inactive"
    assert domain(backend, hibernated).hasManagedSaveImage(0) == 0


def test_actions_that_do_not_apply_raise_invalid_state(backend):
    vm_id = new_vm(backend)
    with pytest.raises(InvalidState, match=f"compute {vm_id} is already active"):
        backend.act(vm_id, "start")
    backend.act(vm_id, "suspend")
    with pytest.raises(InvalidState, match="already suspended"):
        backend.act(vm_id, "suspend")
    with pytest.raises(InvalidState, match="restart does not apply"):
        backend.act(vm_id, "restart")
    backend.act(vm_id, "stop", "poweroff")
    for action in ("stop", "restart", "suspend"):
        with pytest.raises(InvalidState, match="is inactive"):
            backend.act(vm_id, action)
    assert backend.describe([vm_id])[vm_id].state == "inactive"  # nothing changed


def test_unknown_actions_methods_and_ids(backend):
    vm_id = new_vm(backend)
    with pytest.raises(InvalidSpec, match="unknown compute action 'explode'"):
        backend.act(vm_id, "explode")
    with pytest.raises(InvalidSpec, match="methods: graceful, acpioff, poweroff"):
        backend.act(vm_id, "stop", "gently")
    missing = new_id()
    with pytest.raises(UnknownResource, match=f"compute {missing} does not exist"):
        backend.act(missing, "start")
    with pytest.raises(UnknownResource):
        backend.delete(missing)
    with pytest.raises(InvalidSpec, match="not a UUID"):
        backend.describe(["not-a-uuid"])
    assert backend.describe([missing]) == {}


def test_create_refusals_leave_nothing_behind(backend, uri):
    before = pool_volumes(backend, uri)
    with pytest.raises(InvalidSpec, match=r"unknown resource_tpl.*known: large, small"):
        backend.create(new_id(), VMSpec(name="x", size="huge"))
    with pytest.raises(InvalidSpec, match=r"unknown os_tpl.*'centos-5'"):
        backend.create(new_id(), VMSpec(name="x", image="centos-5"))
    with pytest.raises(InvalidSpec, match="Unknown architecture"):
        backend.create(new_id(), VMSpec(name="x", image=TEMPLATE, architecture="pdp11"))
    with pytest.raises(BackendUnavailable, match="no hypervisor has 99999 MiB free"):
        backend.create(new_id(), VMSpec(name="x", memory_mib=99999))
    vm_id = new_vm(backend)
    with pytest.raises(InvalidState, match="already exists"):
        backend.create(vm_id, VMSpec(name="again"))
    assert pool_volumes(backend, uri) == before | {f"xg-vm-{vm_id}.qcow2"}
    assert list(backend.describe()) == [vm_id]


def test_save_hot_makes_a_template_a_new_vm_can_start_from(backend):
    vm_id = new_vm(backend)
    saved = backend.act(vm_id, "save", "hot", name="golden")
    assert saved.state_message == "image template (os_tpl) golden saved"
    templates = {t.id: t for t in backend.templates()}
    assert set(templates) == {TEMPLATE, "golden"}
    assert templates["golden"].size_bytes == templates[TEMPLATE].size_bytes
    child = backend.create(new_id(), VMSpec(name="child", image="golden"))
    assert (child.image, child.state) == ("golden", "active")
    with pytest.raises(InvalidState, match="'golden' already exists"):
        backend.act(vm_id, "save", name="golden")
    with pytest.raises(InvalidSpec, match="image template name"):
        backend.act(vm_id, "save", name="../etc/passwd")
    bare = backend.create(new_id(), VMSpec(name="bare"))
    with pytest.raises(InvalidState, match="has no disk"):
        backend.act(bare.id, "save", name="nothing")


def test_save_deferred_happens_when_the_vm_stops(backend):
    vm_id = new_vm(backend)
    pending = backend.act(vm_id, "save", "deferred", name="later")
    assert pending.state == "active" and "later to be saved when" in pending.state_message
    assert "later" not in {t.id for t in backend.templates()}
    assert "<xg:pending-save>later</xg:pending-save>" in domain(backend, vm_id).XMLDesc(
        libvirt.VIR_DOMAIN_XML_INACTIVE
    )
    backend.act(vm_id, "stop")
    assert "later" in {t.id for t in backend.templates()}
    assert "pending-save" not in domain(backend, vm_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    # on an inactive VM there is nothing to wait for
    backend.act(vm_id, "save", "deferred", name="now")
    assert "now" in {t.id for t in backend.templates()}


def test_update_changes_the_persistent_definition(backend):
    vm_id = new_vm(backend, size="small")
    info = backend.update(vm_id, VMSpec(name="vm", cores=2, memory_mib=2048, hostname="db1"))
    assert (info.cores, info.memory_mib, info.hostname) == (2, 2048, "db1")
    inactive = domain(backend, vm_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<vcpu placement='static'>2</vcpu>" in inactive
    assert "<title>db1</title>" in inactive
    with pytest.raises(InvalidSpec, match="unknown resource_tpl"):
        backend.update(vm_id, VMSpec(name="vm", size="nope"))


def test_delete_removes_domain_and_its_disk_and_nothing_else(backend, uri):
    keep, gone = new_vm(backend), new_vm(backend)
    backend.act(gone, "suspend", "hibernate")  # with a managed save image
    backend.delete(gone)
    assert set(backend.describe()) == {keep}
    assert f"xg-vm-{gone}.qcow2" not in pool_volumes(backend, uri)
    assert f"xg-vm-{keep}.qcow2" in pool_volumes(backend, uri)
    with pytest.raises(libvirt.libvirtError):
        backend.connection(uri).lookupByUUIDString(gone)


def test_domains_the_gateway_did_not_make_are_not_computes(backend, uri):
    conn = backend.connection(uri)
    foreign = new_id()
    conn.defineXML(
        f"<domain type='test'><name>admin-vm</name><uuid>{foreign}</uuid>"
        "<memory>1024</memory><os><type>hvm</type></os></domain>"
    )
    mine = new_vm(backend)
    assert set(backend.describe()) == {mine}
    with pytest.raises(UnknownResource):
        backend.act(foreign, "start")


def test_occi_architecture_words_are_accepted(backend):
    assert backend.create(new_id(), VMSpec(name="a", architecture="x64")).architecture == "x86_64"
    assert backend.create(new_id(), VMSpec(name="b", architecture="x86")).architecture == "i686"


def test_configuration_reaches_the_backend(make_settings, uri, tmp_path):
    """[vm] from the settings (pydantic models, as the gateway passes them)."""
    from backends.vm.libvirt.backend import LibvirtVMBackend as Backend

    settings = make_settings(
        vm={"uris": [uri], "pool": POOL, "sizes": {"tiny": {"cores": 1, "memory_mib": 256}}}
    )
    backend = Backend(BackendContext(None, tmp_path / "state", settings.vm))
    try:
        info = backend.create(new_id(), VMSpec(name="t", size="tiny", image=TEMPLATE))
        assert (info.cores, info.memory_mib) == (1, 256)
        assert backend.health().ok
        assert backend.health().figures[uri]["pool"] == POOL
    finally:
        backend.close()
    wrong = Backend(BackendContext(None, tmp_path / "state", make_settings(vm={"uris": [uri]}).vm))
    try:
        health = wrong.health()  # the preset has no pool "default" or "default-pool"
        assert not health.ok and "set vm.pool" in health.detail
        with pytest.raises(BackendUnavailable, match="no storage pool"):
            wrong.create_storage(new_id(), StorageSpec(name="s"))
    finally:
        wrong.close()


# -- storage ---------------------------------------------------------------------------
def test_storage_lifecycle(backend, uri):
    sid = new_id()
    info = backend.create_storage(sid, StorageSpec(name="data", size_gib=2))
    assert (info.id, info.state, info.size_gib, info.host) == (sid, "online", 2.0, uri)
    vol = (
        backend.connection(uri)
        .storagePoolLookupByName(POOL)
        .storageVolLookupByName(f"xg-storage-{sid}")
    )
    assert vol.info()[1] == 2 * 1024**3
    assert backend.describe_storage() == {sid: info}
    assert backend.act_storage(sid, "offline").state == "offline"
    with pytest.raises(InvalidState, match="already offline"):
        backend.act_storage(sid, "offline")
    assert backend.describe_storage([sid])[sid].state == "offline"
    assert backend.act_storage(sid, "online").state == "online"
    with pytest.raises(InvalidSpec, match="unknown storage action"):
        backend.act_storage(sid, "shred")
    with pytest.raises(InvalidState, match="already exists"):
        backend.create_storage(sid, StorageSpec(name="data"))
    with pytest.raises(InvalidSpec, match="size"):
        backend.create_storage(new_id(), StorageSpec(name="data", size_gib=0))
    backend.delete_storage(sid)
    assert backend.describe_storage() == {}
    with pytest.raises(UnknownResource, match=f"storage {sid} does not exist"):
        backend.delete_storage(sid)


def test_offline_state_survives_a_new_backend(make_backend, uri, tmp_path):
    first = make_backend([uri])
    sid = new_id()
    first.create_storage(sid, StorageSpec(name="d", size_gib=1))
    first.act_storage(sid, "offline")
    # same hypervisor connection (test:///<file> state is per connection), new annotations
    second = LibvirtVMBackend(BackendContext(None, tmp_path / "state", vm_options([uri])))
    second.hosts[uri] = first.hosts[uri]
    assert second.describe_storage([sid])[sid].state == "offline"


# -- networks --------------------------------------------------------------------------
def test_network_lifecycle_with_vlan_label_and_ipnetwork(backend, uri):
    nid = new_id()
    spec = NetworkSpec(
        name="lab", vlan=42, label="lab net", address="192.0.2.0/24", gateway="192.0.2.1"
    )
    info = backend.create_network(nid, spec)
    assert (info.state, info.vlan, info.label) == ("active", 42, "lab net")
    assert (info.address, info.gateway, info.allocation) == ("192.0.2.0/24", "192.0.2.1", "dynamic")
    xml = backend.connection(uri).networkLookupByUUIDString(nid).XMLDesc(0)
    assert "<tag id='42'/>" in xml
    assert "<range start='192.0.2.2' end='192.0.2.254'/>" in xml
    assert backend.act_network(nid, "down").state == "inactive"
    assert not backend.connection(uri).networkLookupByUUIDString(nid).isActive()
    with pytest.raises(InvalidState, match="already inactive"):
        backend.act_network(nid, "down")
    assert backend.act_network(nid, "up").state == "active"
    static = backend.create_network(
        new_id(), NetworkSpec(name="s", address="198.51.100.0/28", allocation="static")
    )
    assert (static.allocation, static.gateway, static.vlan) == ("static", "198.51.100.1", None)
    assert set(backend.describe_networks()) == {nid, static.id}
    backend.delete_network(nid)
    assert set(backend.describe_networks()) == {static.id}
    with pytest.raises(UnknownResource):
        backend.act_network(nid, "up")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (NetworkSpec(name="n", vlan=5000), "vlan must be within"),
        (NetworkSpec(name="n", address="300.1.2.0/24"), "not a CIDR network"),
        (NetworkSpec(name="n", address="192.0.2.0/24", gateway="10.0.0.1"), "outside"),
        (NetworkSpec(name="n", gateway="10.0.0.1"), "needs an address"),
        (NetworkSpec(name="n", allocation="magic"), "dynamic or static"),
    ],
)
def test_network_spec_errors(backend, spec, message):
    with pytest.raises(InvalidSpec, match=message):
        backend.create_network(new_id(), spec)
    assert backend.describe_networks() == {}


# -- links -----------------------------------------------------------------------------
def test_storagelink_and_networkinterface_become_domain_devices(backend):
    vm_id = new_vm(backend)
    sid, nid = new_id(), new_id()
    backend.create_storage(sid, StorageSpec(name="d", size_gib=1))
    backend.create_network(nid, NetworkSpec(name="n", address="192.0.2.0/24"))

    assert backend.attach_storage("sl-1", vm_id, sid) == "vdb"
    mac = backend.attach_network("ni-1", vm_id, nid, address="192.0.2.10")
    assert mac.startswith("52:54:00:")
    xml = domain(backend, vm_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert f"xg-storage-{sid}" in xml and "<target dev='vdb' bus='virtio'/>" in xml
    assert f"<source network='xg-net-{nid}'/>" in xml and mac in xml
    assert 'id="sl-1"' in xml and 'address="192.0.2.10"' in xml

    with pytest.raises(InvalidState, match="already attached to compute"):
        backend.attach_storage("sl-2", new_vm(backend), sid)
    with pytest.raises(InvalidState, match="detach it before you delete it"):
        backend.delete_storage(sid)
    with pytest.raises(InvalidState, match="detach it before you take it offline"):
        backend.act_storage(sid, "offline")
    with pytest.raises(InvalidState, match="detach it before you delete it"):
        backend.delete_network(nid)
    with pytest.raises(InvalidState, match="link sl-1 already exists"):
        backend.attach_network("sl-1", vm_id, nid)

    backend.detach("sl-1")
    backend.detach("ni-1")
    xml = domain(backend, vm_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert f"xg-storage-{sid}" not in xml and mac not in xml and "sl-1" not in xml
    with pytest.raises(UnknownResource, match="link sl-1 does not exist"):
        backend.detach("sl-1")
    backend.delete_storage(sid)
    backend.delete_network(nid)


def test_link_refusals(backend):
    vm_id = new_vm(backend)
    sid = new_id()
    backend.create_storage(sid, StorageSpec(name="d", size_gib=1))
    backend.act_storage(sid, "offline")
    with pytest.raises(InvalidState, match="is offline"):
        backend.attach_storage("sl-1", vm_id, sid)
    backend.act_storage(sid, "online")
    assert backend.attach_storage("sl-1", vm_id, sid, device="vdf") == "vdf"
    with pytest.raises(InvalidSpec, match="not a disk name"):
        backend.attach_storage("sl-2", vm_id, sid, device="../../x")
    with pytest.raises(InvalidSpec, match="not a MAC"):
        backend.attach_network("ni-1", vm_id, new_id(), mac="zz:zz")
    with pytest.raises(UnknownResource, match=r"network .* does not exist"):
        backend.attach_network("ni-1", vm_id, new_id())
    with pytest.raises(UnknownResource, match=r"storage .* does not exist"):
        backend.attach_storage("sl-3", vm_id, new_id())


# -- several hosts -----------------------------------------------------------------------
def test_placement_least_loaded_by_free_memory(make_backend, tmp_path):
    small = write_node_xml(tmp_path / "small.xml", memory_mib=4096)
    big = write_node_xml(tmp_path / "big.xml", memory_mib=8192)
    backend = make_backend([small, big])
    hosts = [backend.create(new_id(), VMSpec(name="v", memory_mib=2048)).host for _ in range(6)]
    # free (small, big): (4096, 8192) → big; (4096, 6144) → big; (4096, 4096) tie: fewer
    # VMs wins → small; (2048, 4096) → big; (2048, 2048) tie → small; (0, 2048) → big
    assert hosts == [big, big, small, big, small, big]
    with pytest.raises(BackendUnavailable, match="no hypervisor has 2048 MiB free"):
        backend.create(new_id(), VMSpec(name="v", memory_mib=2048))
    assert {i.host for i in backend.describe().values()} == {small, big}
    assert len(backend.describe()) == 6
    # a stopped VM gives its memory back
    backend.act(next(iter(backend.describe())), "stop")
    assert backend.create(new_id(), VMSpec(name="v", memory_mib=2048)).state == "active"


def test_placement_first_fit_and_image_only_on_one_host(make_backend, tmp_path):
    a = write_node_xml(tmp_path / "a.xml", templates=())
    b = write_node_xml(tmp_path / "b.xml")
    backend = make_backend([a, b], placement="first-fit")
    assert backend.create(new_id(), VMSpec(name="v")).host == a
    assert backend.create(new_id(), VMSpec(name="v", image=TEMPLATE)).host == b


def test_storage_and_compute_on_different_hosts_cannot_link(make_backend, tmp_path):
    a = write_node_xml(tmp_path / "a.xml", memory_mib=1024)
    b = write_node_xml(tmp_path / "b.xml", memory_mib=4096)
    backend = make_backend([a, b])
    vm_id = backend.create(new_id(), VMSpec(name="v", memory_mib=2048)).id  # only b fits
    sid = new_id()
    assert backend.create_storage(sid, StorageSpec(name="d", size_gib=1)).host == a  # room tie
    with pytest.raises(InvalidState, match="needs both on one host"):
        backend.attach_storage("sl-1", vm_id, sid)


def test_unreachable_host_is_named_and_skipped(make_backend, uri):
    backend = make_backend([DOWN, uri])
    started = time.monotonic()
    vm_id = backend.create(new_id(), VMSpec(name="v")).id
    assert backend.describe()[vm_id].host == uri
    assert time.monotonic() - started < 5
    health = backend.health()
    assert not health.ok and DOWN in health.detail
    with pytest.raises(
        BackendUnavailable, match=rf"compute .* not on any reachable host.*{re.escape(DOWN)}"
    ):
        backend.act(new_id(), "start")
    assert backend.act(vm_id, "stop").state == "inactive"

    only_down = make_backend([DOWN])
    with pytest.raises(BackendUnavailable, match=f"hypervisor {re.escape(DOWN)} is unreachable"):
        only_down.create(new_id(), VMSpec(name="v"))
    with pytest.raises(BackendUnavailable, match=re.escape(DOWN)):
        only_down.describe([vm_id])
    with pytest.raises(BackendUnavailable, match=re.escape(DOWN)):
        only_down.create_network(new_id(), NetworkSpec(name="n"))
    with pytest.raises(BackendUnavailable, match=re.escape(DOWN)):
        only_down.templates()


def test_a_host_that_goes_away_shows_its_vms_in_error(make_backend, uri):
    backend = make_backend([uri], retry_seconds=60)
    vm_id = new_vm(backend)
    host = backend.hosts[uri]
    host.uri = DOWN  # the fault the test driver cannot produce: the host vanishes
    host.close()
    info = backend.describe()[vm_id]
    assert info.state == "error" and DOWN in info.state_message
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=re.escape(DOWN)):
        backend.act(vm_id, "stop")
    assert time.monotonic() - started < 1  # not retried within retry_seconds


# -- restart and events (test:///default: shared by every connection of the process) ----
@pytest.fixture
def shared_pool() -> Iterator[str]:
    """A pool with a template on test:///default, removed afterwards."""
    conn = libvirt.open("test:///default")
    name = f"xg-test-{uuid.uuid4().hex[:8]}"
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{name}</name><target><path>/{name}</path></target></pool>"
    )
    pool.create()
    pool.createXML(
        f"<volume><name>{TEMPLATE}</name><capacity>1073741824</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )
    yield name
    for vol in pool.listAllVolumes(0):
        vol.delete(0)
    pool.destroy()
    pool.undefine()
    conn.close()


def test_a_new_backend_finds_existing_vms_by_id(tmp_path, shared_pool):
    options = vm_options(["test:///default"], pool=shared_pool)
    first = LibvirtVMBackend(BackendContext(None, tmp_path / "s1", options))
    vm_id = new_id()
    created = first.create(vm_id, VMSpec(name="persistent", image=TEMPLATE, hostname="p1"))
    first.act(vm_id, "suspend")
    first.close()

    second = LibvirtVMBackend(BackendContext(None, tmp_path / "s2", options))
    try:
        found = second.describe([vm_id])[vm_id]
        assert found == replace(created, state="suspended", state_message="paused")
        assert second.act(vm_id, "start").state == "active"
        second.delete(vm_id)
        assert second.describe([vm_id]) == {}
    finally:
        second.close()


def test_events_keep_the_cached_state_fresh(tmp_path, shared_pool):
    backend = LibvirtVMBackend(
        BackendContext(None, tmp_path / "s", vm_options(["test:///default"], pool=shared_pool))
    )
    outside = libvirt.open("test:///default")
    try:
        assert backend.events_live("test:///default")
        vm_id = backend.create(new_id(), VMSpec(name="watched", image=TEMPLATE)).id
        seen = backend.hosts["test:///default"].cache.events_seen
        outside.lookupByUUIDString(vm_id).suspend()  # a change the backend did not make
        deadline = time.monotonic() + 15  # generous: a loaded 2-core machine delays the loop
        while backend.cached(vm_id).state != "suspended" and time.monotonic() < deadline:
            time.sleep(0.01)
        cache = backend.hosts["test:///default"].cache
        assert backend.cached(vm_id).state == "suspended", (  # from the event alone
            f"{cache.events_seen - seen} events delivered since the suspend; libvirt says "
            f"{outside.lookupByUUIDString(vm_id).state()}; cache generation "
            f"{cache.generation(vm_id)}"
        )
        assert backend.hosts["test:///default"].cache.events_seen > seen
        assert backend.describe([vm_id])[vm_id].state == "suspended"  # re-read, agrees

        # without events (a driver that has none), describe polls and is still right
        backend.hosts["test:///default"].cache.events_live = False
        outside.lookupByUUIDString(vm_id).resume()
        assert backend.describe([vm_id])[vm_id].state == "active"
        backend.hosts["test:///default"].cache.events_live = True
        # a deferred save completes when the guest stops by itself (seen as an event)
        backend.act(vm_id, "save", "deferred", name="on-guest-shutdown")
        outside.lookupByUUIDString(vm_id).shutdown()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if "on-guest-shutdown" in {t.id for t in backend.templates()}:
                break
            time.sleep(0.02)
        assert "on-guest-shutdown" in {t.id for t in backend.templates()}
        backend.delete(vm_id)
    finally:
        outside.close()
        backend.close()


def test_concurrent_actions_and_listings_agree_with_libvirt(backend):
    """Gateway workers call one backend from many threads."""
    from concurrent.futures import ThreadPoolExecutor

    ids = [new_vm(backend, image="") for _ in range(8)]

    def cycle(vm_id: str) -> str:
        for action in ("suspend", "start", "stop", "start", "stop"):
            backend.act(vm_id, action)
        return backend.describe([vm_id])[vm_id].state

    def listing(_: int) -> int:
        return len(backend.describe())

    with ThreadPoolExecutor(8) as pool:
        listings = pool.map(listing, range(40))
        states_after = list(pool.map(cycle, ids))
        assert set(listings) == {8}
    assert states_after == ["inactive"] * 8
    for vm_id, info in backend.describe().items():
        assert info.state == "inactive"
        assert domain(backend, vm_id).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
