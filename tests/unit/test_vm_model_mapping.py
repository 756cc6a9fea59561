"""Pure parts of the libvirt backend: domain XML, state mapping, placement policies."""

from __future__ import annotations

import pytest

from backends.contracts.model import NetworkSpec, VMSpec
from backends.vm.libvirt import domain_xml, states
from backends.vm.libvirt.domain_xml import Link
from backends.vm.libvirt.placement import HostLoad, first_fit, least_loaded_memory

VM_ID = "5b0e8f4e-8a0c-4c47-9d0f-3f2a1c6b9e77"


def test_domain_xml_round_trips_the_spec():
    spec = VMSpec(
        name="web",
        cores=2,
        memory_mib=1536,
        architecture="aarch64",
        hostname="web1",
        share=1024,
        image="debian-12.qcow2",
        size="small",
        ssh_keys=("ssh-ed25519 AAAA alice",),
    )
    xml = domain_xml.build_domain(
        VM_ID, spec, domain_type="kvm", disk_path="/pool/d.qcow2", disk_volume="d.qcow2"
    )
    facts = domain_xml.read_facts(xml)
    assert facts.id == VM_ID and facts.managed
    assert (facts.cores, facts.memory_mib, facts.architecture) == (2, 1536, "aarch64")
    assert (facts.hostname, facts.name, facts.image, facts.size) == (
        "web1",
        "web",
        "debian-12.qcow2",
        "small",
    )
    assert (facts.share, facts.disk_volume) == (1024, "d.qcow2")
    assert domain_xml.disk_targets(xml) == ["vda"]
    assert domain_xml.next_disk_target(xml) == "vdb"


def test_memory_units_libvirt_writes_are_understood():
    for memory, mib in (
        ("<memory unit='KiB'>1048576</memory>", 1024),
        ("<memory>2097152</memory>", 2048),
        ("<memory unit='GiB'>3</memory>", 3072),
    ):
        xml = f"<domain><uuid>{VM_ID}</uuid>{memory}<vcpu>1</vcpu></domain>"
        assert domain_xml.read_facts(xml).memory_mib == mib
    assert not domain_xml.read_facts(xml).managed


def test_metadata_rewrite_keeps_what_it_does_not_change():
    xml = domain_xml.build_domain(
        VM_ID, VMSpec(name="a", hostname="h", user_data="I2Nsb3VkLWNvbmZpZw=="), domain_type="test"
    )
    link = Link("l1", "storage", "s1", "vdb")
    xml = domain_xml.replace_metadata(xml, links=(link,), pending_save="img")
    facts = domain_xml.read_facts(xml)
    assert facts.links == (link,) and facts.pending_save == "img" and facts.hostname == "h"
    assert "I2Nsb3VkLWNvbmZpZw==" in xml
    bare = domain_xml.metadata_xml(xml, pending_save="")
    assert bare.startswith("<vm>") and "pending-save" not in bare and 'id="l1"' in bare


def test_devices_are_added_and_removed_by_link():
    xml = domain_xml.build_domain(VM_ID, VMSpec(name="a"), domain_type="test")
    disk = Link("l1", "storage", "s1", "vdb")
    nic = Link("l2", "network", "n1", "52:54:00:aa:bb:cc")
    xml = domain_xml.add_device(xml, domain_xml.disk_device("/p/v", "vdb"))
    xml = domain_xml.add_device(xml, domain_xml.interface_device("xg-net-n1", nic.device))
    assert domain_xml.find_device(xml, disk) and domain_xml.find_device(xml, nic)
    xml = domain_xml.remove_device(xml, disk)
    assert not domain_xml.find_device(xml, disk) and domain_xml.find_device(xml, nic)


def test_network_xml_round_trips_the_ipnetwork_mixin():
    nid = "0d3c5a4e-2f7b-4e7c-8a39-6f3a2b1c0d9e"
    spec = NetworkSpec(name="n", vlan=7, address="10.1.0.0/16", gateway="10.1.255.254")
    facts = domain_xml.read_network(domain_xml.build_network(nid, spec))
    assert (facts.id, facts.vlan, facts.address, facts.gateway, facts.allocation) == (
        nid,
        7,
        "10.1.0.0/16",
        "10.1.255.254",
        "dynamic",
    )
    static = NetworkSpec(name="n", address="2001:db8::/64", allocation="static")
    facts = domain_xml.read_network(domain_xml.build_network(nid, static))
    assert (facts.gateway, facts.allocation, facts.vlan) == ("2001:db8::1", "static", None)


@pytest.mark.parametrize(
    ("state", "reason", "saved", "expected"),
    [
        (states.RUNNING, 1, False, "active"),
        (states.BLOCKED, 0, False, "active"),
        (states.SHUTDOWN, 1, False, "active"),
        (states.PAUSED, 1, False, "suspended"),
        (states.PMSUSPENDED, 0, False, "suspended"),
        (states.SHUTOFF, 5, True, "suspended"),
        (states.SHUTOFF, 1, False, "inactive"),
        (states.SHUTOFF, 6, False, "error"),
        (states.CRASHED, 1, False, "error"),
        (states.NOSTATE, 0, False, "error"),
    ],
)
def test_libvirt_states_in_occi_words(state, reason, saved, expected):
    occi, message = states.occi_state(state, reason, saved)
    assert occi == expected
    if expected == "error":
        assert message  # an error always says why (OCCI state.message)


def test_refusals_name_the_compute_and_the_state():
    assert states.refusal("v1", "start", "active") == "compute v1 is already active"
    assert "only when active" in states.refusal("v1", "restart", "suspended")


HOSTS = [
    HostLoad("a", memory_mib=4096, free_memory_mib=1024, cpus=4, active_vms=3),
    HostLoad("b", memory_mib=8192, free_memory_mib=3072, cpus=8, active_vms=5),
    HostLoad("c", memory_mib=8192, free_memory_mib=3072, cpus=8, active_vms=1),
]


def test_least_loaded_takes_most_free_memory_then_fewest_vms():
    assert least_loaded_memory(HOSTS, VMSpec(name="v", memory_mib=512)).uri == "c"
    assert least_loaded_memory(HOSTS, VMSpec(name="v", memory_mib=4096)) is None


def test_first_fit_packs_in_configuration_order():
    assert first_fit(HOSTS, VMSpec(name="v", memory_mib=512)).uri == "a"
    assert first_fit(HOSTS, VMSpec(name="v", memory_mib=2048)).uri == "b"


def test_vm_config_errors_name_the_key():
    from gateway.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as error:
        load_settings(
            vm={"sizes": {"tiny": {"cores": 0, "memory_mib": 256}}, "placement": "random"}
        )
    text = str(error.value)
    assert "vm.sizes.tiny.cores" in text and "XTREEMGATE_VM__SIZES__TINY__CORES" in text
    assert "vm.placement" in text
    sizes = load_settings().vm.sizes
    assert (sizes["medium"].cores, sizes["medium"].memory_mib) == (2, 4096)
