"""The layering of DESIGN.md, checked: backends and adapters never import the gateway,
and the protocol front ends never import a backend implementation (only the neutral
model, the interfaces and the store)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Front ends may use these parts of backends/; implementations are reached by entry point.
NEUTRAL = (
    "backends.model",
    "backends.interfaces",
    "backends.store",
    "backends.registry",
    "backends.entitlements",  # AARC-G002 read/write: how VO membership travels
    "backends.activities",  # activity records: neutral state every execution front end shares
    "backends.vm.cluster",  # virtual clusters over any VMBackend, through the contract only
    "backends.images",  # VM images on any StorageBackend's volume, through the contract only
)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["backends", "adapters"])
def test_lower_layers_never_import_the_gateway(folder: str) -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(folder)
        for line, module in imports(path)
        if module == "gateway" or module.startswith("gateway.")
    ]
    assert not offending, "\n".join(offending)


def test_front_ends_reach_backends_only_through_the_neutral_contract() -> None:
    front_ends = [p for p in sources("gateway") if p.parts[-2] in ("bes", "occi", "saml", "vo")]
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in front_ends
        for line, module in imports(path)
        if module.startswith("backends.") and not module.startswith(NEUTRAL)
    ]
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("helper", ["vm/cluster.py", "images.py"])
def test_neutral_helpers_use_only_the_contract(helper: str) -> None:
    """A helper counted as neutral (virtual clusters, VM images) imports no backend
    implementation."""
    path = ROOT / "backends" / helper
    offending = [
        module
        for _line, module in imports(path)
        if module.startswith("backends.")
        and not module.startswith(("backends.model", "backends.interfaces"))
    ]
    assert not offending


def test_the_check_sees_the_code() -> None:
    """Guard against a silent pass: the folders exist and hold modules."""
    assert len(sources("backends")) > 5 and len(sources("gateway")) > 5
