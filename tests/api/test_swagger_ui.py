"""Swagger UI, driven by a real headless Chromium: the spec at /api/v1/swagger.json renders at
/api/v1/ui/, a token can be entered through "Authorize", and "Try it out" on GET /users gets a
live 200 from the server.

Only the SQLite server is used: the browser exercises the UI and the spec, not the database."""
import json
import os
import re
import shutil
import tempfile

import pytest
import requests

from support.harness import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15  # seconds for any one UI step; the whole test normally takes a few seconds
# GET /users in the Users tag. Swagger UI's DOM id is operations-<tag>-<operationId> with the id
# CSS-escaped inside the attribute itself (literal backslashes before the dots), so the block is
# found by its tag prefix and path instead.
LIST_USERS = ("//div[starts-with(@id,'operations-Users-') and contains(@class,'opblock-get')]"
              "[.//*[contains(@class,'opblock-summary-path') and @data-path='/users']]")

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(tmp_path, monkeypatch):
    require("Chromium (Debian package chromium: /usr/bin/chromium)",
            os.access(CHROMIUM, os.X_OK))
    require("ChromeDriver (Debian package chromium-driver: /usr/bin/chromedriver)",
            os.access(CHROMEDRIVER, os.X_OK))
    require("Python selenium (pip install -e '.[test]')", _selenium_available())
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager must never try to download a browser or driver: the Debian ones are used.
    monkeypatch.setenv("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="berth-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # Console messages go into the failure report: they explain a UI that never renders.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _selenium_available():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


class Page:
    """Explicit waits that, on failure, leave a screenshot and explain what the page showed."""

    def __init__(self, driver, tmp_path):
        from selenium.webdriver.support.ui import WebDriverWait
        self.driver = driver
        self.tmp_path = tmp_path
        self.wait = WebDriverWait(driver, WAIT)

    def fail(self, step, error=None, element=None):
        shot = self.tmp_path / "swagger-ui-failure.png"
        try:
            if element is not None:  # show what was wrong, not wherever the page was scrolled
                self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
            self.driver.save_screenshot(str(shot))
        except Exception as exc:  # the report matters more than the screenshot
            shot = f"(no screenshot: {exc})"
        source = self.driver.page_source
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", source)).strip()
        errors = re.findall(r'<div class="errors-wrapper".*?</div>\s*</div>', source, re.S)
        try:
            console = [f"{e['level']} {e['message']}" for e in self.driver.get_log("browser")][-15:]
        except Exception:
            console = []
        pytest.fail(
            f"Swagger UI: {step} failed ({type(error).__name__ if error else 'assertion'}: {error or ''})\n"
            f"url: {self.driver.current_url}\nscreenshot: {shot}\n"
            f"browser console: {console}\n"
            f"Swagger UI errors panel: {errors[:1]}\n"
            f"page text (start): {text[:1500]}\n"
            f"page source (end): {source[-2500:]}", pytrace=False)

    def until(self, step, condition):
        from selenium.common.exceptions import WebDriverException
        try:
            return self.wait.until(condition)
        except WebDriverException as exc:  # TimeoutException and friends
            self.fail(step, exc)

    def visible(self, step, by, selector):
        from selenium.webdriver.support import expected_conditions as EC
        return self.until(step, EC.visibility_of_element_located((by, selector)))

    def click(self, step, by, selector):
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support import expected_conditions as EC
        element = self.until(step, EC.element_to_be_clickable((by, selector)))
        try:
            element.click()
        except WebDriverException as exc:
            self.fail(step, exc)
        return element

    def check(self, step, ok, detail="", element=None):
        if not ok:
            self.fail(step, AssertionError(detail), element)


@pytest.mark.parametrize("berth", ["sqlite"], indirect=True)
def test_spec_is_served_as_swagger_2(berth):
    r = requests.get(berth.api + "/swagger.json", timeout=10)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    spec = r.json()
    assert spec["swagger"] == "2.0"
    assert spec["basePath"] == "/api/v1"
    assert "get" in spec["paths"]["/users"]
    assert {"bearer", "access_token"} <= set(spec["securityDefinitions"])


@pytest.mark.parametrize("berth", ["sqlite"], indirect=True)
def test_try_it_out_lists_users_with_a_token(berth, owner, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    page = Page(browser, tmp_path)
    browser.get(berth.api + "/ui/")
    page.visible("rendering the spec (title)", By.CSS_SELECTOR, ".swagger-ui .info .title")
    page.check("showing the spec's title", "Berth" in browser.find_element(
        By.CSS_SELECTOR, ".swagger-ui .info .title").text)
    page.visible("rendering GET /users", By.XPATH, LIST_USERS)

    # Authorise with the header scheme: `Authorization: Bearer <token>`. Each scheme of the
    # dialog is its own form with its own Authorize button, so everything is scoped to `bearer`.
    page.click("opening the Authorize dialog", By.CSS_SELECTOR, ".scheme-container button.authorize")
    bearer = ("//div[contains(@class,'modal-ux')]//div[contains(@class,'auth-container')]"
              "[.//h4/code[normalize-space(.)='bearer']]")
    value = page.visible("finding the bearer scheme's value field", By.XPATH, bearer + "//input")
    value.send_keys(f"Bearer {owner.token}")
    page.click("authorising", By.XPATH, bearer + "//button[contains(@class,'authorize')]")
    # An accepted scheme hides its input and offers Logout instead of Authorize.
    page.visible("seeing the bearer scheme authorised", By.XPATH,
                 bearer + "//button[normalize-space(.)='Logout']")
    page.click("closing the Authorize dialog", By.XPATH,
               bearer + "//button[contains(@class,'btn-done')]")
    page.until("closing the Authorize dialog",
               EC.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))

    # Expand GET /users, then "Try it out" and "Execute".
    page.click("expanding GET /users", By.XPATH,
               LIST_USERS + "//*[contains(@class,'opblock-summary-path')]")
    page.click("clicking Try it out", By.XPATH,
               LIST_USERS + "//button[contains(@class,'try-out__btn')]")
    page.click("clicking Execute", By.XPATH, LIST_USERS + "//button[contains(@class,'execute')]")

    live = LIST_USERS + "//table[contains(@class,'live-responses-table')]"
    status = page.visible("waiting for the live response", By.XPATH,
                          live + "/tbody//td[contains(@class,'response-col_status')]")
    page.check("getting 200 from GET /users", status.text.strip() == "200",
               f"status cell shows {status.text!r}", status)
    body = page.visible("reading the response body", By.XPATH,
                        live + "/tbody//td[contains(@class,'response-col_description')]"
                               "//*[contains(@class,'highlight-code')]//pre")
    try:
        usernames = [u["username"] for u in json.loads(body.text)["users"]]
    except (ValueError, KeyError, TypeError) as exc:
        usernames = f"(not a users list: {exc!r})"
    page.check("seeing the owner in the response body", "owner" in usernames,
               f"usernames: {usernames!r}; body: {body.text[:500]!r}", body)
    curl = browser.find_element(By.XPATH, LIST_USERS + "//*[contains(@class,'curl-command')]").text
    page.check("sending the token as a Bearer header", f"Bearer {owner.token}" in curl,
               f"curl: {curl[:500]!r}")

