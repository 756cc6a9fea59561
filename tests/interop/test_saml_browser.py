"""The whole login in a real browser (Debian's headless chromium through chromedriver):
portal → discovery page → the IdP's (pysaml2's) login form → auto-submitted Response →
back at the portal, which lists the user's VOs and activities; Cancel stops one."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests import services

pytestmark = pytest.mark.service


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = services.require(
        "chromium",
        "chromedriver",
        hint="install the Debian packages chromium and chromium-driver (./scripts/test does)",
    )
    options = webdriver.ChromeOptions()
    options.binary_location = found["chromium"]
    profile = tempfile.TemporaryDirectory(prefix="xg-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile.name}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found["chromedriver"]), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def test_login_through_discovery_and_idp_form_lands_on_portal_with_vos(
    saml_world: Any, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from backends.contracts.model import JobState
    from tests.interop.test_saml_portal import activity_store, start_activity

    running = start_activity(saml_world)  # alice's job, running before she logs in
    saml_world.idp.options.clear()
    wait = WebDriverWait(browser, 30)
    browser.get(f"{saml_world.gateway}/portal/")
    wait.until(ec.presence_of_element_located((By.ID, "q")))
    assert "/saml/discovery" in browser.current_url
    browser.find_element(By.ID, "q").send_keys("Example University")
    browser.find_element(By.ID, "search").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "a.idp"))).click()

    wait.until(ec.presence_of_element_located((By.ID, "username")))
    assert browser.current_url.startswith(saml_world.idp.base)
    browser.find_element(By.ID, "username").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys("wonderland")
    browser.find_element(By.ID, "login").click()

    # pysaml2's form posts itself to the ACS; the ACS sends the browser to the portal.
    wait.until(ec.presence_of_element_located((By.ID, "vos")))
    assert browser.current_url == f"{saml_world.gateway}/portal/"
    assert browser.find_element(By.ID, "who").text == "Alice Liddell"
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "tr.vo")]
    assert "fusion / admin" in rows
    assert "fusion ws1 —" in rows
    assert "example.org / member, staff" in rows
    cookie = browser.get_cookie("xg_saml_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # Her activity is listed, Running, with a Cancel button; pressing it stops the job.
    row = browser.find_element(By.ID, f"activity-{running.id}")
    assert row.find_element(By.CLASS_NAME, "state").text == "Running"
    assert browser.find_element(By.ID, "vms").text == "You have no virtual machines."
    browser.find_element(By.ID, f"cancel-{running.id}").click()
    wait.until(ec.staleness_of(row))
    row = wait.until(ec.presence_of_element_located((By.ID, f"activity-{running.id}")))
    assert browser.current_url == f"{saml_world.gateway}/portal/"
    assert row.find_element(By.CLASS_NAME, "state").text == "Cancelled"
    assert row.find_element(By.CLASS_NAME, "reason").text == "terminated by alice@example.org"
    assert not row.find_elements(By.CLASS_NAME, "cancel")
    assert activity_store(saml_world.runtime).get(running.id).state is JobState.CANCELLED
