import pytest

from backends.contracts import registry
from backends.contracts.interfaces import BackendContext, ExecutionBackend, VMBackend


def context(tmp_path):
    return BackendContext(engine=None, state_dir=tmp_path, settings=None)


def test_embedded_defaults_are_registered():
    for kind, name in (
        ("execution", "local"),
        ("vm", "libvirt"),
        ("storage", "posix"),
        ("vo", "sql"),
    ):
        assert name in registry.installed(kind)


def test_load_builds_the_named_implementation(tmp_path):
    backend = registry.load("execution", "local", context(tmp_path))
    assert isinstance(backend, ExecutionBackend)
    assert backend.health().ok
    figures = backend.resources()
    assert figures["cpu_count"] >= 1 and figures["physical_memory"] > 0


def test_unknown_name_lists_installed_ones(tmp_path):
    with pytest.raises(registry.UnknownBackend) as caught:
        registry.load("vm", "openstack", context(tmp_path))
    assert str(caught.value) == (
        "backends.vm = 'openstack' is not installed; installed vm backends: libvirt"
    )


def test_unknown_kind(tmp_path):
    with pytest.raises(registry.UnknownBackend, match="unknown backend kind 'gpu'"):
        registry.load("gpu", "x", context(tmp_path))


def test_libvirt_health_reports_an_unreachable_host(tmp_path):
    from types import SimpleNamespace

    ctx = BackendContext(
        None, tmp_path, SimpleNamespace(uris=["test:///default", "test:///nonexistent.xml"])
    )
    backend = registry.load("vm", "libvirt", ctx)
    assert isinstance(backend, VMBackend)
    report = backend.health()
    assert not report.ok
    assert "test:///nonexistent.xml" in report.detail
    assert report.figures["test:///default"]["cpus"] > 0
    backend.close()
