"""pytest plugin: a real importapi-lite server for any test suite, as one fixture.

Installing importapi-lite registers it (the ``pytest11`` entry point ``importapi_lite``)::

    def test_my_pipeline(importapi_server):
        run_my_pipeline(url=importapi_server.url, token=importapi_server.token)
        assert len(importapi_server.wait_for_rows("users", 10)) >= 10

Why this shape: one server per test session (starting one per test would cost more than most
tests), real HTTP on 127.0.0.1 and a free port, in a background thread with its own event loop so
that sync code, threads and async tests can all talk to it; before each test it is reset (tables,
journal and faults), so every test starts empty. The handle talks to the server only through its
HTTP admin API, exactly as a user could. Opt out with ``-p no:importapi_lite``.

The server loads into SQLite files under a temporary directory by default. With
``--importapi-destination URL`` (or the ini option ``importapi_destination``, or
``IMPORTAPI_LITE_DESTINATION``), it loads into that PostgreSQL database instead: give it a
database for tests only, as the reset before each test empties it of every client's tables.

Records that Stitch would answer with 201 and then not load land in ``_sdc_rejected``: a test
that only counts rows could pass while data was lost. ``rejected(table)`` lists them, and
``--importapi-fail-on-rejection`` (or the ini option ``importapi_fail_on_rejection = true``) fails
every test after which the server holds any; ``@pytest.mark.importapi_allow_rejections`` exempts
a test that expects some.

The server's imports happen inside the fixture, not at module top: pytest loads this module at
start-up in every project that installs the package, and coverage of the package itself should
see its modules imported by the tests, not by plugin loading.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .settings import Settings

CLIENT_ID = 7723
INTEGRATION = "import_api"
FAIL_ON_REJECTION = "importapi_fail_on_rejection"
ALLOW_REJECTIONS = "importapi_allow_rejections"
DESTINATION = "importapi_destination"
DESTINATION_VARIABLE = "IMPORTAPI_LITE_DESTINATION"


def pytest_addoption(parser: pytest.Parser) -> None:
    help_ = "Fail a test using importapi_server if the server rejected any record during it."
    group = parser.getgroup("importapi-lite")
    group.addoption(
        "--importapi-fail-on-rejection", action="store_true", dest=FAIL_ON_REJECTION, help=help_
    )
    parser.addini(FAIL_ON_REJECTION, help_, type="bool", default=False)
    where = (
        "Where importapi_server loads: sqlite (files in a temporary directory) or a "
        f"postgresql:// URL of a database for tests only [{DESTINATION_VARIABLE}, else sqlite]."
    )
    group.addoption("--importapi-destination", dest=DESTINATION, metavar="URL", help=where)
    parser.addini(DESTINATION, where, default=None)


def _destination(config: pytest.Config) -> str:
    """The option, else the ini option, else the environment, else ``sqlite``."""
    found = config.getoption(DESTINATION) or config.getini(DESTINATION)
    return str(found or os.environ.get(DESTINATION_VARIABLE) or "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_REJECTIONS}: the test expects importapi-lite to reject records "
        "(exempt from --importapi-fail-on-rejection)",
    )


class ImportApiServer:
    """A running server: its URL, a push token, and the admin API wrapped in plain methods."""

    def __init__(self, url: str, token: str, admin_token: str, data_dir: Path) -> None:
        self.url = url
        self.token = token
        self.client_id = CLIENT_ID
        self.integration = INTEGRATION
        self.data_dir = data_dir
        self._admin = admin_token

    def __repr__(self) -> str:  # never the tokens
        return f"<ImportApiServer {self.url} client_id={self.client_id}>"

    @property
    def push_url(self) -> str:
        return self.url + "/v2/import/push"

    @property
    def batch_url(self) -> str:
        return self.url + "/v2/import/batch"

    def rows(self, table: str, *, integration: str = INTEGRATION) -> list[dict[str, Any]]:
        """The table's current rows as dicts (``_sdc_*`` columns included); [] if it has none."""
        try:
            text = self._call("GET", self._table_path(table, integration) + "/export")
        except LookupError:
            return []
        return [json.loads(line) for line in text.splitlines() if line]

    def wait_for_rows(
        self, table: str, count: int = 1, *, timeout: float = 10, integration: str = INTEGRATION
    ) -> list[dict[str, Any]]:
        """Wait until the table holds at least ``count`` rows, then return them; fail the test
        with what was there if ``timeout`` seconds pass first."""
        query = urllib.parse.urlencode({"min_rows": count, "timeout": timeout})
        path = f"{self._table_path(table, integration)}/wait?{query}"
        answer = json.loads(self._call("GET", path, read_timeout=timeout + 10))
        if not answer["reached"]:
            raise AssertionError(
                f"table {table!r} held {answer['rows']} rows after {timeout} s, "
                f"not the {count} awaited"
            )
        return self.rows(table, integration=integration)

    def rejected(
        self, table: str | None = None, *, integration: str = INTEGRATION
    ) -> list[dict[str, Any]]:
        """Records the server accepted (201) but could not load, newest first: each with
        ``table_name``, ``reason``, ``rejected_at`` and the ``record`` as sent. One table's, or
        every table's."""
        query = urllib.parse.urlencode(
            {"limit": 10_000} | ({} if table is None else {"table": table})
        )
        integration = urllib.parse.quote(integration, safe="")
        path = f"/clients/{self.client_id}/integrations/{integration}/rejected?{query}"
        records: list[dict[str, Any]] = json.loads(self._call("GET", path))["records"]
        return records

    def requests(self) -> list[dict[str, Any]]:
        """The journal of Stitch API requests since the test began, oldest first."""
        entries: list[dict[str, Any]] = json.loads(self._call("GET", "/journal"))["entries"]
        return entries

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = 503,
        delay_ms: int | None = None,
        drop: bool = False,
        endpoint: str | None = None,
        table: str | None = None,
    ) -> dict[str, Any]:
        """Make the next ``count`` data requests fail (see the README's fault rules)."""
        rule: dict[str, Any] = {"count": count, "status": status, "delay_ms": delay_ms}
        rule |= {"drop": drop or None, "endpoint": endpoint, "table": table}
        body = json.dumps({k: v for k, v in rule.items() if v is not None}).encode()
        fault: dict[str, Any] = json.loads(self._call("POST", "/faults", body))
        return fault

    def reset(self) -> None:
        """Empty every table, the journal and the fault rules; tokens stay valid."""
        for path in ("/clients", "/journal", "/faults"):
            self._call("DELETE", path)

    def _table_path(self, table: str, integration: str) -> str:
        integration, table = (urllib.parse.quote(name, safe="") for name in (integration, table))
        return f"/clients/{self.client_id}/integrations/{integration}/tables/{table}"

    def _call(
        self, method: str, path: str, body: bytes | None = None, read_timeout: float = 30
    ) -> str:
        request = urllib.request.Request(
            f"{self.url}/_importapi/v1{path}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self._admin}", "Content-Type": "application/json"},
        )
        # Always the fixture's own http://127.0.0.1 server: never a file: or custom scheme.
        try:
            with urllib.request.urlopen(request, timeout=read_timeout) as response:  # nosec B310
                return str(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise LookupError(path) from None
            detail = error.read().decode("utf-8", "replace")
            raise AssertionError(f"admin API {method} {path}: {error.code} {detail}") from None


class ServerThread:
    """The server on its own event loop in a daemon thread (also used by our own fuzz tests).

    ``settings`` are further ``Settings`` fields, such as ``durability="fast"``.
    """

    def __init__(self, data_dir: Path, admin_token: str, **settings: Any) -> None:
        self.data_dir = data_dir
        self.admin_token = admin_token
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.failure: BaseException | None = None
        self.port = 0
        self.thread = threading.Thread(target=self._run, name="importapi-lite", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.started.wait(timeout=30)
        if self.failure is not None:
            raise RuntimeError("importapi-lite did not start") from self.failure

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), which raises it in the test
            self.failure = exc
            self.started.set()
            return
        self.started.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        from aiohttp import web

        from .app import create_app
        from .settings import Secret, Settings

        settings = Settings(
            data_dir=self.data_dir, port=0, admin_token=Secret(self.admin_token), **self.settings
        )
        self.runner = web.AppRunner(create_app(settings), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="session")
def importapi_server_session(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[ImportApiServer]:
    """The session's one server; prefer ``importapi_server``, which also resets it per test."""
    from .settings import DestinationUrl, Settings

    data_dir = tmp_path_factory.mktemp("importapi-lite")
    destination = DestinationUrl(_destination(pytestconfig))
    settings = Settings(data_dir=data_dir, destination=destination)
    token_id, push_token = _push_token(settings)
    server = ServerThread(data_dir, secrets.token_hex(32), destination=settings.destination)
    server.start()
    try:
        yield ImportApiServer(
            f"http://127.0.0.1:{server.port}", push_token, server.admin_token, data_dir
        )
    finally:
        server.stop()
        _revoke(settings, token_id)


def _push_token(settings: Settings) -> tuple[str, str]:
    """A push token for the plugin's client. A PostgreSQL destination outlives the session and
    keeps at most two active tokens per integration, so one left by a session that never ended
    (killed) is revoked to make room: the plugin's client is the plugin's own."""
    from .store import open_tokens
    from .store.tokens import MAX_ACTIVE_TOKENS

    tokens = open_tokens(settings)
    try:
        ours = [
            t
            for t in tokens.tokens()
            if (t.client_id, t.integration) == (CLIENT_ID, INTEGRATION) and t.is_active
        ]
        for stale in ours[: max(0, len(ours) - MAX_ACTIVE_TOKENS + 1)]:
            tokens.revoke(stale.id)
        token, secret = tokens.create(CLIENT_ID, INTEGRATION)
        return token.id, secret
    finally:
        tokens.close()


def _revoke(settings: Settings, token_id: str) -> None:
    from .store import open_tokens

    tokens = open_tokens(settings)
    try:
        tokens.revoke(token_id)
    finally:
        tokens.close()


@pytest.fixture
def importapi_server(
    importapi_server_session: ImportApiServer, request: pytest.FixtureRequest
) -> Iterator[ImportApiServer]:
    """A running importapi-lite server with nothing in it: see ``ImportApiServer``."""
    server = importapi_server_session
    server.reset()
    yield server
    config = request.config
    fail = config.getoption(FAIL_ON_REJECTION) or config.getini(FAIL_ON_REJECTION)
    if not fail or request.node.get_closest_marker(ALLOW_REJECTIONS) is not None:
        return
    rejected = server.rejected()
    if rejected:
        reasons = Counter((r["table_name"], r["reason"]) for r in rejected)
        listed = "; ".join(f"{n} of {t!r}: {why}" for (t, why), n in reasons.most_common())
        pytest.fail(
            f"importapi-lite accepted but rejected {len(rejected)} record(s): {listed} "
            f"(importapi_server.rejected() lists them; @pytest.mark.{ALLOW_REJECTIONS} if "
            "the test expects them)",
            pytrace=False,
        )
