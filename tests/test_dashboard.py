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

    def push(self, body: Any, headers: dict[str, str] | None = None) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return _send(
            urllib.request.Request(
                self.url + "/v2/import/push", data=data, headers={**sent, **(headers or {})}
            )
        )

    def admin_get(self, path: str) -> Any:
        reply = _send(
            urllib.request.Request(
                self.url + "/_importapi/v1" + path,
                headers={"Authorization": f"Bearer {self.admin_token}"},
            )
        )
        assert reply.status == 200, reply
        return reply.body


def _send(request: urllib.request.Request) -> Reply:
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


def screenshot(driver: webdriver.Chrome, path: Path, element_id: str) -> None:
    """The window with the element at its top, as a PNG for a person to look at."""
    driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", element_id)
    driver.save_screenshot(str(path))


def pairs(driver: webdriver.Chrome, dl_id: str) -> dict[str, str]:
    """A definition list's terms and their values, as shown."""
    script = """return Array.from(document.querySelectorAll('#' + arguments[0] + ' dt'),
        dt => [dt.innerText, dt.nextElementSibling.innerText])"""
    return dict(driver.execute_script(script, dl_id))


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
        ("/_importapi/favicon.svg", "image/svg+xml"),
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
    wait_for(
        browser, lambda d: HOSTILE in texts(d, "#activity-legend td"), "the hostile table's line"
    )
    groups = browser.find_elements(By.CSS_SELECTOR, "#activity-chart g.series")
    assert HOSTILE in [g.get_attribute("data-table") for g in groups]
    assert HOSTILE in texts(browser, "#layout-columns td")
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
    bars = browser.find_elements(By.CSS_SELECTOR, '#reasons tr[data-reason-of="people"] .bar-fill')
    assert len(bars) == 1 and int(bars[0].get_attribute("width")) > 0
    screenshot(browser, tmp_path / "rejected-reasons.png", "rejected-section")

    browser.find_element(By.CSS_SELECTOR, '#tables td[data-rejected-of="people"] button').click()
    wait_for(browser, lambda d: len(texts(d, "#rejected-records tbody tr")) == 2, "the records")
    assert texts(browser, "#rejected-title") == [f"{CLIENT_ID} / import_api / people"]
    newest = texts(browser, "#rejected-records tbody tr")[0]
    assert collision in newest and '"_sdc_sequence":3' in newest, newest
    assert texts(browser, "#rejected-info") == ["records 1–2 of 2, newest first"]
    screenshot(browser, tmp_path / "rejected-records.png", "rejected-browser")


@pytest.mark.browser
@pytest.mark.serve
def test_the_activity_chart_draws_a_line_per_table_that_loaded(
    browser: webdriver.Chrome, server: Server, tmp_path: Path
) -> None:
    first = [record("chart_a", 1, {"id": i}) for i in range(3)] + [record("chart_b", 5, {"id": 1})]
    assert server.push(first).status == 201
    assert (
        server.push([record("chart_b", 2, {"id": 2}), record("chart_b", 1, {"id": 1})]).status
        == 201
    )
    buckets = len(server.admin_get("/activity")["buckets"])

    open_dashboard(browser, server)
    legend = "#activity-legend tr[data-table='{}'] td"
    wait_for(browser, lambda d: texts(d, legend.format("chart_b")), "chart_b in the legend")
    # table, records/s in the last minute, peak records/s, accepted, stale, rejected
    assert texts(browser, legend.format("chart_a"))[3:] == ["3", "0", "0"]
    assert texts(browser, legend.format("chart_b"))[3:] == ["2", "1", "0"]
    for table in ("chart_a", "chart_b"):
        lines = browser.find_elements(
            By.CSS_SELECTOR, f"#activity-chart g.series[data-table='{table}'] polyline"
        )
        assert len(lines) == 1, table
        assert len(lines[0].get_attribute("points").split()) == buckets
        points = browser.find_elements(
            By.CSS_SELECTOR, f"#activity-chart g.series[data-table='{table}'] circle"
        )
        assert points, f"{table} has no point above zero"
    colours = {
        line.get_attribute("stroke")
        for line in browser.find_elements(By.CSS_SELECTOR, "#activity-chart g.series polyline")
    }
    assert len(colours) > 1  # lines told apart
    screenshot(browser, tmp_path / "activity.png", "activity-section")


@pytest.mark.browser
@pytest.mark.serve
def test_a_table_s_layout_shows_columns_in_order_with_types_splits_keys_and_subtables(
    browser: webdriver.Chrome, server: Server, tmp_path: Path
) -> None:
    pushed = server.push(
        [
            record(
                "shipments", 1, {"id": 1, "weight": 5, "lines": [{"sku": "a"}]}, table_version=2
            ),
            record("shipments", 2, {"id": 2, "weight": "heavy"}, table_version=2),
            {
                "client_id": CLIENT_ID,
                "table_name": "shipments",
                "sequence": 3,
                "action": "switch_view",
                "table_version": 2,
            },
        ]
    )
    assert pushed.status == 201, pushed

    open_dashboard(browser, server)
    click_table(browser, "shipments")
    columns = "#layout-columns tbody tr"
    wait_for(browser, lambda d: any("weight__st" in r for r in texts(d, columns)), "the columns")
    rows = [row.split("\t") for row in texts(browser, columns)]
    assert [r[0] for r in rows] == [str(i) for i in range(1, len(rows) + 1)]
    by_name = {r[1]: r[2:] for r in rows}
    assert [r[1] for r in rows if not r[1].startswith("_sdc_")] == ["id", "weight", "weight__st"]
    assert by_name["id"] == ["integer", "key"]
    assert by_name["weight"] == ["integer", ""]
    assert by_name["weight__st"] == ["string", "split: string values of weight"]
    assert by_name["_sdc_sequence"][0] == "integer"
    meta = pairs(browser, "layout-meta")
    assert (meta["key_names"], meta["active_version"], meta["rows"]) == ("id", "2", "2")
    assert meta["subtables"] == "shipments__lines"
    screenshot(browser, tmp_path / "layout.png", "browser")

    browser.find_element(By.CSS_SELECTOR, "#layout-meta .subtables button").click()
    wait_for(browser, lambda d: "sku" in texts(d, "#layout-columns td"), "the subtable")
    meta = pairs(browser, "layout-meta")
    assert (meta["subtable of"], meta["subtables"]) == ("shipments", "none")
    rows = {r.split("\t")[1]: r.split("\t")[2:] for r in texts(browser, columns)}
    assert rows["sku"] == ["string", ""]
    assert rows["_sdc_source_key_id"] == ["integer", "system: the parent row's id"]
    assert rows["_sdc_level_0_id"][1] == "system: position in the array (level 0)"
    screenshot(browser, tmp_path / "layout-subtable.png", "browser")


@pytest.mark.browser
@pytest.mark.serve
def test_a_journal_entry_s_detail_shows_headers_tables_and_error_but_no_token(
    browser: webdriver.Chrome, server: Server, tmp_path: Path
) -> None:
    headers = {"User-Agent": "detail-test/1.0", "X-Request-Id": "detail-1", "Cookie": "c=secret"}
    loaded = server.push(
        [
            record("detail_a", 1, {"id": 1}),
            record("detail_a", 2, {"id": 2, "_sdc_sequence": 1}),  # rejected
            record("detail_b", 1, {"id": 1}),
        ],
        headers=headers,
    )
    assert loaded.status == 201, loaded
    refused = server.push([record("detail_a", 1, {"name": "no id"})], headers=headers)
    assert refused.status == 422, refused
    *_, loaded_id, refused_id = [e["id"] for e in server.admin_get("/journal")["entries"]]

    open_dashboard(browser, server)
    open_entry = f"#journal button[data-entry='{loaded_id}']"
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, open_entry), "the entry")
    browser.find_element(By.CSS_SELECTOR, open_entry).click()
    wait_for(browser, lambda d: d.find_element(By.ID, "journal-detail").is_displayed(), "detail")
    assert texts(browser, "#detail-title") == [f"#{loaded_id}: POST /v2/import/push"]
    assert pairs(browser, "detail-meta")["status"] == "201"
    shown_headers = dict(row.split("\t") for row in texts(browser, "#detail-headers tr"))
    assert shown_headers == {
        "User-Agent": "detail-test/1.0",
        "Content-Type": "application/json",
        "Content-Length": shown_headers["Content-Length"],
        "X-Request-Id": "detail-1",
    }
    assert texts(browser, "#detail-tables tbody tr") == ["detail_a\t1\t0\t1", "detail_b\t1\t0\t0"]
    assert not browser.find_element(By.ID, "detail-error-part").is_displayed()
    screenshot(browser, tmp_path / "journal-detail.png", "journal-section")

    browser.find_element(By.CSS_SELECTOR, f"#journal button[data-entry='{refused_id}']").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "detail-error").is_displayed(), "the error")
    assert pairs(browser, "detail-meta")["status"] == "422"
    reason = refused.body["errors"][0]["reason"]
    assert json.loads(texts(browser, "#detail-error")[0])["errors"][0]["reason"] == reason
    assert texts(browser, "#detail-tables-empty") == ["No table was loaded."]
    screenshot(browser, tmp_path / "journal-detail-error.png", "journal-section")

    page = browser.page_source + browser.execute_script("return document.body.innerText")
    for secret in (server.token, server.admin_token, "c=secret"):
        assert secret not in page


@pytest.mark.browser
@pytest.mark.serve
def test_the_page_has_an_icon_and_leaves_no_favicon_ico_404_in_the_journal(
    browser: webdriver.Chrome, server: Server
) -> None:
    open_dashboard(browser, server)
    time.sleep(0.5)  # a browser asks for its icon after the page has loaded
    paths = {entry["path"] for entry in server.admin_get("/journal")["entries"]}
    assert "/favicon.ico" not in paths
    icon = browser.execute_script("return document.querySelector('link[rel=icon]').href")
    assert icon == server.url + "/_importapi/favicon.svg"
    fetch = "fetch(arguments[0]).then(r => r.text().then(t => arguments[1]([r.status, t])))"
    status, body = browser.execute_async_script(fetch, icon)
    assert status == 200 and body.startswith("<svg")
