"""The dashboard (``admin/dashboard.py``, ``admin/static/``) at /_importapi/, in a real headless
browser against a real server process.

Debian's chromium, driven by Selenium through Debian's chromedriver (``apt-get install -y
chromium chromium-driver``; ``.ci/run`` installs both). Without them the tests skip, except under
CI=true, where a missing browser is a failure: the suite must not go green by testing less.
Data arrives as a client sends it (urllib to the Stitch API); the page gets the admin token in its
URL fragment, as a user would open it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from importapi_lite import Settings
from importapi_lite.store.admin_token import ensure_admin_token

from .helpers import CLIENT_ID, Reply, free_port, make_token, record

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the network is closed: no update or safe-browsing calls
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
)
STATIC = Path(__file__).resolve().parents[1] / "importapi_lite" / "admin" / "static"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


@dataclass
class Server:
    url: str
    token: str = field(repr=False)  # a push token; never in a failure's output
    admin_token: str = field(repr=False)

    def push(self, body: Any) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + "/v2/import/push",
            data=data,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Reply(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.headers, error.read().decode())


def require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = f"{' and '.join(missing)} missing: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI must run the browser tests; .ci/run installs them)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
    token = make_token(Settings(data_dir=data_dir))
    admin_token = secrets.token_urlsafe(24)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    env["IMPORTAPI_LITE_ADMIN_TOKEN"] = admin_token  # not on the command line: ps shows that
    process = subprocess.Popen(
        [sys.executable, "-m", "importapi_lite", "serve", "--port", str(port)]
        + ["--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, admin_token)
        yield Server(url, token, admin_token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], admin_token: str) -> None:
    for _ in range(200):
        assert process.poll() is None, "the server exited early"
        request = urllib.request.Request(
            url + "/_importapi/v1/readyz", headers={"Authorization": f"Bearer {admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not become ready")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(driver: webdriver.Chrome, condition: Any, what: str) -> Any:
    # The page re-renders every few seconds (auto-refresh): an element found a moment ago may be
    # gone, so conditions are retried rather than failed on a stale reference.
    return WebDriverWait(
        driver, 10, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition, message=f"waiting for {what}")


def texts(driver: webdriver.Chrome, css: str) -> list[str]:
    """The rendered text of every match, read in one go (no element can go stale midway)."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)"
    return list(driver.execute_script(script, css))


def click_table(driver: webdriver.Chrome, name: str) -> None:
    def click(d: webdriver.Chrome) -> bool:
        for button in d.find_elements(By.CSS_SELECTOR, "#tables button[data-table]"):
            if button.get_attribute("data-table") == name:
                button.click()
                return True
        return False

    wait_for(driver, click, f"table {name!r} in the list")


def open_dashboard(driver: webdriver.Chrome, server: Server) -> None:
    driver.get(f"{server.url}/_importapi/#token={server.admin_token}")
    wait_for(driver, lambda d: d.find_element(By.ID, "app").is_displayed(), "the signed-in page")


# --- the page as served (no browser needed) ---------------------------------------------------


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/_importapi/", "text/html"),
        ("/_importapi/dashboard.js", "text/javascript"),
        ("/_importapi/dashboard.css", "text/css"),
    ],
)
async def test_the_page_and_its_files_are_served_without_a_token_under_a_strict_policy(
    client: Any, path: str, content_type: str
) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == content_type and response.charset == "utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        await response.read() == (STATIC / (path.rsplit("/", 1)[-1] or "index.html")).read_bytes()
    )


async def test_the_bare_prefix_redirects_to_the_page_and_unknown_paths_are_admin_404s(
    client: Any,
) -> None:
    response = await client.get("/_importapi", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/_importapi/")
    response = await client.get("/_importapi/nothing-here")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
    response = await client.post("/_importapi/")
    assert (response.status, (await response.json())["error"]) == (405, "method_not_allowed")
    response = await client.get("/_importapi/v1/livez")  # the admin API keeps its prefix
    assert (response.status, (await response.json())["error"]) == (401, "unauthorized")


async def test_loading_the_page_is_not_journaled(client: Any, settings: Settings) -> None:
    await client.get("/_importapi/")
    await client.get("/_importapi/dashboard.js")
    response = await client.get(
        "/_importapi/v1/journal",
        headers={"Authorization": f"Bearer {ensure_admin_token(settings.data_dir)}"},
    )
    assert (await response.json())["entries"] == []


def test_the_script_never_parses_data_as_html() -> None:
    script = (STATIC / "dashboard.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script.replace("never innerHTML", ""), sink


# --- in the browser -----------------------------------------------------------------------------
# Marked browser and serve: chromium, and the page's server as a process of its own (``server``).


@pytest.mark.browser
@pytest.mark.serve
def test_dashboard_shows_the_pushed_table_its_row_and_a_4xx_with_its_error_body(
    browser: webdriver.Chrome, server: Server, tmp_path: Path
) -> None:
    pushed = server.push([record("customers", 1, {"id": 1, "name": "Ada <b>Lovelace</b>"})])
    assert pushed.status == 201, pushed
    refused = server.push([record("customers", 1, {"id": 2}, key_names="id")])
    assert refused.status == 422, refused
    reason = refused.body["errors"][0]["reason"]["key_names"][0]  # "should be an array…"

    open_dashboard(browser, server)
    assert "#token" not in browser.current_url  # taken off the address bar at once
    rows_of = '#tables td[data-rows-of="customers"]'
    wait_for(browser, lambda d: texts(d, rows_of) == ["1"], "customers with its 1 row")

    click_table(browser, "customers")
    wait_for(browser, lambda d: "Ada <b>Lovelace</b>" in texts(d, "#rows td"), "the pushed row")
    headers = texts(browser, "#rows th")
    assert "id\ninteger" in headers and "name\nstring" in headers, headers
    assert texts(browser, "#page-info") == ["rows 1–1 of 1"]

    journal = texts(browser, "#journal tbody tr")
    failed = next(
        i for i, row in enumerate(journal) if "POST /v2/import/push" in row and "422" in row
    )
    assert reason in journal[failed + 1]  # the error body, on the line below its request
    browser.save_screenshot(str(tmp_path / "dashboard.png"))


@pytest.mark.browser
@pytest.mark.serve
def test_a_fault_added_from_the_dashboard_answers_the_next_push(
    browser: webdriver.Chrome, server: Server
) -> None:
    open_dashboard(browser, server)
    Select(browser.find_element(By.ID, "fault-status")).select_by_visible_text("503")
    count = browser.find_element(By.ID, "fault-count")
    count.clear()
    count.send_keys("1")
    browser.find_element(By.ID, "fault-add").click()
    wait_for(browser, lambda d: texts(d, "#faults tbody tr"), "the fault in the list")
    assert texts(browser, "#faults tbody td")[1:3] == ["503", "1"]

    rows = [record("orders", 1, {"id": 1})]
    assert server.push(rows).status == 503
    assert server.push(rows).status == 201  # count 1: the fault is used up
    browser.find_element(By.ID, "refresh").click()
    wait_for(browser, lambda d: not texts(d, "#faults tbody tr"), "the used fault to go")


@pytest.mark.browser
@pytest.mark.serve
def test_hostile_table_and_column_names_are_shown_as_text(
    browser: webdriver.Chrome, server: Server
) -> None:
    assert server.push([record(HOSTILE, 1, {"id": 1, HOSTILE: HOSTILE})]).status == 201
    open_dashboard(browser, server)
    title = browser.title
    click_table(browser, HOSTILE)
    wait_for(browser, lambda d: HOSTILE in texts(d, "#rows td"), "the hostile row")
    assert HOSTILE + "\nstring" in texts(browser, "#rows th")
    assert HOSTILE in texts(browser, "#tables button")
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.title == title


@pytest.mark.browser
@pytest.mark.serve
def test_the_page_without_a_token_asks_for_one_and_a_pasted_token_signs_in(
    browser: webdriver.Chrome, server: Server
) -> None:
    browser.get(server.url + "/_importapi/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(server.url + "/_importapi")  # redirected to the page
    assert browser.current_url == server.url + "/_importapi/"
    login = wait_for(browser, lambda d: d.find_element(By.ID, "login"), "the sign-in form")
    assert login.is_displayed() and not browser.find_element(By.ID, "app").is_displayed()

    browser.find_element(By.ID, "token-input").send_keys("not-the-admin-token\n")
    wait_for(browser, lambda d: "401" in d.find_element(By.ID, "message").text, "the refusal")
    assert login.is_displayed()

    browser.find_element(By.ID, "token-input").send_keys(server.admin_token + "\n")
    wait_for(browser, lambda d: "customers" in texts(d, "#tables button"), "the tables")
    assert browser.execute_script("return sessionStorage.length") == 1


@pytest.mark.browser
@pytest.mark.serve
def test_rejected_records_show_per_table_with_their_reasons_and_the_records(
    browser: webdriver.Chrome, server: Server, tmp_path: Path
) -> None:
    collision = "Field _sdc_sequence collides with a system column"
    pushed = server.push(
        [
            record("people", 1, {"id": 1, "name": "kept"}),
            record("people", 2, {"id": 2, "_sdc_sequence": 2}),
            record("people", 3, {"id": 3, "_sdc_sequence": 3}),
            record("y" * 64, 1, {"id": 1}),  # every record rejected: a table with no rows
        ]
    )
    assert pushed.status == 201, pushed

    open_dashboard(browser, server)
    wait_for(browser, lambda d: texts(d, '#tables td[data-rejected-of="people"]') == ["2"], "2")
    assert texts(browser, f'#tables td[data-rejected-of="{"y" * 64}"]') == ["1"]
    reasons = texts(browser, '#reasons tr[data-reason-of="people"]')
    assert len(reasons) == 1 and collision in reasons[0] and "\t2\t" in reasons[0], reasons
    browser.save_screenshot(str(tmp_path / "rejected-reasons.png"))

    browser.find_element(By.CSS_SELECTOR, '#tables td[data-rejected-of="people"] button').click()
    wait_for(browser, lambda d: len(texts(d, "#rejected-records tbody tr")) == 2, "the records")
    assert texts(browser, "#rejected-title") == [f"{CLIENT_ID} / import_api / people"]
    newest = texts(browser, "#rejected-records tbody tr")[0]
    assert collision in newest and '"_sdc_sequence":3' in newest, newest
    assert texts(browser, "#rejected-info") == ["records 1–2 of 2, newest first"]
    browser.save_screenshot(str(tmp_path / "rejected-records.png"))
