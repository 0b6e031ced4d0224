"""A real browser (Debian's headless Chromium) uses the form through NGINX."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.helpers import require_executable
from tests.servers import Stack
from training.registry import Registry
from training.schema import FEATURES, column

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1280,2400")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium driven by Debian's chromedriver (Selenium Manager is never used)."""
    options = Options()
    options.binary_location = require_executable("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=require_executable("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def fill_form(driver: WebDriver, applicant: dict[str, Any]) -> None:
    """Enter every model input of `applicant` the way a person would."""
    for feature in FEATURES:
        field = driver.find_element(By.ID, f"f-{feature.name}")
        if feature.is_numeric:
            field.clear()
            field.send_keys(str(applicant[feature.name]))
        else:
            Select(field).select_by_value(applicant[feature.name])


def submit(driver: WebDriver) -> None:
    """Press the form's submit button and wait until the next page has loaded."""
    # A mark on this document's window, which the next document does not have. (Waiting for
    # an old element to go stale races the navigation: chromedriver may answer "Node with
    # given id does not belong to the document" instead of a stale-element error.)
    driver.execute_script("window.leftForNextPage = true;")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda page: page.execute_script(
            "return !window.leftForNextPage && document.readyState === 'complete';"))


def csp_violations(driver: WebDriver) -> list[str]:
    """Console messages about the Content-Security-Policy blocking something."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]]


def test_form_is_filled_submitted_and_shows_the_result(
        browser: WebDriver, stack: Stack, module_registry: Path,
        applicant: dict[str, Any]) -> None:
    browser.get(f"{stack.url}/")
    assert "Credit risk" in browser.title
    # The stylesheet NGINX serves applied (a default page has no padded card).
    card = browser.find_element(By.CSS_SELECTOR, "form.card")
    assert card.value_of_css_property("padding-top") != "0px"

    fill_form(browser, applicant)
    submit(browser)

    decision = browser.find_element(By.CSS_SELECTOR, ".decision").text
    assert decision in ("Approve", "Decline")
    risk = browser.find_element(By.CSS_SELECTOR, ".risk-value .number").text
    assert risk.endswith("%") and 0.0 <= float(risk.rstrip("%")) <= 100.0
    version = browser.find_element(By.CSS_SELECTOR, ".model-version").text
    assert version == Registry(module_registry).production_version()
    factors = browser.find_elements(By.CSS_SELECTOR, ".factors .factor-name")
    assert factors, "the result names no factor"
    assert all(factor.text for factor in factors)
    # The risk meter is drawn with inline style attributes, which the CSP must allow.
    meter = browser.find_element(By.CSS_SELECTOR, ".meter-fill")
    assert meter.size["width"] > 0
    assert csp_violations(browser) == []


def test_invalid_value_is_refused_with_a_message_at_the_field(
        browser: WebDriver, stack: Stack, applicant: dict[str, Any]) -> None:
    age = column("age")
    browser.get(f"{stack.url}/")
    fill_form(browser, {**applicant, "age": age.maximum + 50})
    submit(browser)

    summary = browser.find_element(By.CSS_SELECTOR, ".error-summary")
    assert "Please correct 1 field" in summary.text
    message = browser.find_element(By.ID, "e-age").text
    assert str(age.minimum) in message and str(age.maximum) in message
    # The other answers are kept, so the person only fixes the one field.
    assert browser.find_element(By.ID, "f-duration").get_attribute("value") == \
        str(applicant["duration"])
    assert browser.find_elements(By.CSS_SELECTOR, ".decision") == []
