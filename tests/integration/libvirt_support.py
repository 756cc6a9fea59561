"""Shared by the libvirt tests: the binding, or the harness's skip (a failure in CI)."""

from __future__ import annotations

from tests import services


def require_libvirt():
    """The libvirt binding; skips locally with the install hint, fails when CI=true."""
    try:
        import libvirt
    except ImportError as exc:
        services.missing(
            f"libvirt-python ({exc})",
            "install the Debian packages libvirt-daemon libvirt-dev pkg-config, "
            "then scripts/setup-venv test",
        )
    return libvirt
