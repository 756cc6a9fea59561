"""Shared by the libvirt tests: the binding or a skip (a failure under CI=true)."""

from __future__ import annotations

import os

import pytest


def require_libvirt():
    """The libvirt binding; skips locally with the install hint, fails when CI=true."""
    try:
        import libvirt
    except ImportError as exc:
        hint = (
            "libvirt-python is not importable "
            f"({exc}); install the Debian packages libvirt-daemon libvirt-dev pkg-config, "
            "then scripts/setup-venv test (this skip is a failure when CI=true)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(hint)
        pytest.skip(hint)
    return libvirt
