"""Applications by name (UNICORE style) through the site's registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.jsdl.applications import ApplicationRegistry, UnknownApplication
from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import parse
from tests import services

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "interop" / "jsdl" / "unicore"
DATE = b"""<jsdl:JobDefinition xmlns:jsdl="http://schemas.ggf.org/jsdl/2005/11/jsdl"
 xmlns:jsdl-posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"><jsdl:JobDescription>
 <jsdl:Application><jsdl:ApplicationName>Date</jsdl:ApplicationName>%s
 <jsdl-posix:POSIXApplication><jsdl-posix:Argument>-u</jsdl-posix:Argument>
 </jsdl-posix:POSIXApplication></jsdl:Application></jsdl:JobDescription></jsdl:JobDefinition>"""
SITE = ApplicationRegistry(
    {"Date": {"1.0": "/bin/date", "2.0": "/usr/bin/date"}, "Sleep": {"1.0": "/bin/sleep"}}
)


def job(version: str = "", registry: ApplicationRegistry = SITE):
    extra = f"<jsdl:ApplicationVersion>{version}</jsdl:ApplicationVersion>" if version else ""
    return read_job_definition(parse(DATE % extra.encode()), applications=registry)


def test_named_application_runs_the_registered_program_with_its_arguments() -> None:
    (spec,) = job("2.0")
    assert spec.executable == "/usr/bin/date"
    assert spec.arguments == ("-u",)


def test_the_unicore_sample_runs_with_a_registry() -> None:
    if not SAMPLES.is_dir():
        services.missing("the shared interop samples", f"expected at {SAMPLES}")
    (spec,) = read_job_definition(parse((SAMPLES / "date.jsdl").read_bytes()), applications=SITE)
    assert spec.executable == "/bin/date"
    assert spec.arguments == ("TESTARGUMENT1", "TESTARGUMENT2")


def test_no_version_needs_one_version_or_a_default() -> None:
    only = ApplicationRegistry({"Date": {"1.0": "/bin/date"}})
    assert job(registry=only)[0].executable == "/bin/date"
    default = ApplicationRegistry({"Date": {"1.0": "/a", "default": "/b"}})
    assert job(registry=default)[0].executable == "/b"
    with pytest.raises(JSDLFault, match=r"several versions \(1.0, 2.0\)") as fault:
        job()
    assert fault.value.fault == "UnsupportedFeature"
    assert fault.value.element == "jsdl:ApplicationName"


def test_unknown_name_or_version_lists_what_the_site_offers() -> None:
    with pytest.raises(JSDLFault, match=r"installed: 1.0, 2.0"):
        job("3.1")
    with pytest.raises(UnknownApplication, match=r"offers: Date, Sleep"):
        SITE.resolve("Povray")


def test_config_refuses_relative_executables(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text('[applications.Date]\n"1.0" = "date"\n')
    with pytest.raises(ConfigError, match=r"applications.*must be an absolute path"):
        load_settings(config)
    config.write_text('[applications.Date]\n"1.0" = "/bin/date"\n')
    assert load_settings(config).applications == {"Date": {"1.0": "/bin/date"}}
