"""The layering of the README's Architecture section, checked folder by folder.

    gateway/ (front ends)  ──▶ backends/services ──▶ backends/contracts ◀── plugins
                           ──▶ backends/store    ──▶ backends/contracts      (execution/,
                           ──▶ backends/contracts                              vm/, storage/, vo/)

- nothing under backends/ or adapters/ imports the gateway;
- the contracts import nothing else of the project;
- services and the store use the contracts (and services the store), never a plugin;
- the store drives no backend: it imports none of the backend interfaces;
- plugins use the contracts, the store and the adapters, never a service or another kind's
  plugin;
- front ends never import a plugin: plugins are found by entry point.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = "backends.contracts"
SERVICES = "backends.services"
STORE = "backends.store"
PLUGIN_KINDS = ("execution", "vm", "storage", "vo")
PLUGINS = tuple(f"backends.{kind}" for kind in PLUGIN_KINDS)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute imports; the project uses no other kind)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def offending(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(package)
        for line, module in imports(path)
        if within(module, *forbidden) and not within(module, *allowed)
    ]


@pytest.mark.parametrize("package", ["backends", "adapters"])
def test_lower_layers_never_import_the_gateway(package: str) -> None:
    assert not offending(package, ("gateway",)), "\n".join(offending(package, ("gateway",)))


def test_contracts_import_nothing_else_of_the_project() -> None:
    found = offending(CONTRACTS, ("backends", "adapters"), allowed=(CONTRACTS,))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package", [SERVICES, STORE])
def test_services_and_the_store_never_import_a_plugin(package: str) -> None:
    found = offending(package, (*PLUGINS, "adapters"))
    assert not found, "\n".join(found)


def test_the_store_drives_no_backend() -> None:
    """The store reads and writes rows; handing work to a backend is a service's job."""
    found = offending(STORE, (f"{CONTRACTS}.interfaces", SERVICES))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("kind", PLUGIN_KINDS)
def test_plugins_use_no_service_nor_another_kinds_plugin(kind: str) -> None:
    others = tuple(p for p in PLUGINS if p != f"backends.{kind}")
    found = offending(f"backends.{kind}", (SERVICES, *others))
    assert not found, "\n".join(found)


def test_front_ends_never_import_a_plugin() -> None:
    """Plugins are reached through backends.contracts.registry (entry points) only."""
    found = offending("gateway", PLUGINS)
    assert not found, "\n".join(found)


def test_the_check_sees_the_code() -> None:
    """Guard against a silent pass: every folder the rules name holds modules, and the
    import reader sees imports in them."""
    for package in (CONTRACTS, SERVICES, STORE, *PLUGINS, "gateway", "adapters"):
        assert sources(package), package
    assert any(m.startswith(CONTRACTS) for p in sources(SERVICES) for _, m in imports(p))
    assert module_of(ROOT / "backends/contracts/model.py") == "backends.contracts.model"
