"""A site's own backend, found by entry point, declares its own config section.

Each test installs a throw-away distribution (a ``*.dist-info`` folder with METADATA and
entry_points.txt, group ``xtreemgate.backends``) into a temp folder on sys.path, and
forgets it afterwards (importlib's caches and the settings model), so no other test sees
its plugins."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from backends.contracts import registry
from gateway.config import ConfigError, load_settings, settings_model
from gateway.runtime import load_backend

SITE_PACKAGE = '''
from pydantic import Field

from backends.contracts.interfaces import ExecutionBackend, StorageBackend
from backends.contracts.model import HealthReport
from backends.contracts.settings import Section


class SiteSettings(Section):
    """[execution.site]"""

    queue: str = "batch"
    max_nodes: int = Field(4, ge=1, le=64)


class SiteBackend(ExecutionBackend):
    name = "site"
    section = "execution.site"
    settings = SiteSettings

    def __init__(self, context):
        super().__init__(context)
        self.options = SiteSettings.of(context.settings)

    def health(self):
        return HealthReport(True, f"queue {self.options.queue}")


class TapeSettings(Section):
    """[tape]: a section of its own, beside the gateway's."""

    drive: str = ""


class TapeBackend(StorageBackend):
    name = "tape"
    section = "tape"
    settings = TapeSettings

    def health(self):
        return HealthReport(True, "tape")


class PlainBackend(ExecutionBackend):
    """Declares no settings: it needs none."""

    name = "plain"

    def health(self):
        return HealthReport(True, "plain")


class ClashSettings(Section):
    default_account: str = "site"


class ClashBackend(ExecutionBackend):
    """Declares a key the built-in execution plugins declare already."""

    name = "clash"
    settings = ClashSettings

    def health(self):
        return HealthReport(True, "clash")
'''

SITE_PLUGINS = """\
[xtreemgate.backends]
execution.site = sitepkg:SiteBackend
execution.plain = sitepkg:PlainBackend
storage.tape = sitepkg:TapeBackend
"""


def _forget_plugins() -> None:
    sys.modules.pop("sitepkg", None)
    importlib.invalidate_caches()
    settings_model.cache_clear()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Install the site distribution with these entry points (entry_points.txt text)."""

    def installed(entry_points: str) -> None:
        folder = tmp_path / "site-packages"
        info = folder / "sitepkg-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sitepkg\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(entry_points)
        (folder / "sitepkg.py").write_text(SITE_PACKAGE)
        monkeypatch.syspath_prepend(str(folder))
        _forget_plugins()

    yield installed
    monkeypatch.undo()
    _forget_plugins()


def test_the_site_plugin_is_found_by_entry_point(install) -> None:
    install(SITE_PLUGINS)
    assert {"site", "plain", "local"} <= set(registry.installed("execution"))
    assert "execution.site" in registry.declared_sections()


def test_a_good_value_is_accepted_and_reachable(install, monkeypatch) -> None:
    install(SITE_PLUGINS)
    s = load_settings(None, execution={"site": {"queue": "gpu"}}, tape={"drive": "lto9"})
    assert (s.execution.site.queue, s.execution.site.max_nodes) == ("gpu", 4)
    assert s.tape.drive == "lto9"
    assert s.execution.slurm.partition == "" and s.execution.max_running == 64  # built-ins
    monkeypatch.setenv("XTREEMGATE_EXECUTION__SITE__MAX_NODES", "16")
    assert load_settings().execution.site.max_nodes == 16


def test_the_plugin_is_built_with_its_own_section(install, tmp_path) -> None:
    install(SITE_PLUGINS)
    s = load_settings(
        None,
        state_dir=str(tmp_path / "state"),
        backends={"execution": "site"},
        execution={"site": {"queue": "gpu"}},
    )
    backend = load_backend(s, SimpleNamespace(engine=None), "execution")
    assert backend.options.queue == "gpu"
    assert backend.context.settings is s.execution.site
    assert backend.health().detail == "queue gpu"


def test_a_bad_value_is_refused_naming_the_key_and_the_variable(install) -> None:
    install(SITE_PLUGINS)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, execution={"site": {"max_nodes": 100}})
    assert caught.value.problems == [
        "execution.site.max_nodes: Input should be less than or equal to 64 (got 100) "
        "[env XTREEMGATE_EXECUTION__SITE__MAX_NODES]"
    ]


def test_an_unknown_key_is_refused(install) -> None:
    install(SITE_PLUGINS)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, tape={"libary": "lto9"})
    assert caught.value.problems == [
        "tape.libary: unknown key (check the spelling against xtreemgate.example.toml) "
        "[env XTREEMGATE_TAPE__LIBARY]"
    ]


def test_a_plugin_without_settings_needs_none(install, tmp_path) -> None:
    install(SITE_PLUGINS)
    s = load_settings(None, state_dir=str(tmp_path / "state"), backends={"execution": "plain"})
    backend = load_backend(s, SimpleNamespace(engine=None), "execution")
    assert backend.context.settings is None and backend.health().ok
    with pytest.raises(ConfigError, match=r"execution\.plain: unknown key"):
        load_settings(None, execution={"plain": {}})


def test_two_models_may_not_declare_one_key(install) -> None:
    install("[xtreemgate.backends]\nexecution.clash = sitepkg:ClashBackend\n")
    with pytest.raises(ConfigError, match=r"config key execution\.default_account is declared"):
        load_settings()


def test_without_the_distribution_its_sections_are_unknown() -> None:
    with pytest.raises(ConfigError, match=r"execution\.site: unknown key"):
        load_settings(None, execution={"site": {"queue": "gpu"}})
    assert "site" not in registry.installed("execution")
