"""The log (``observe/logs.py``): ``--log-format text|json``, ``--log-level``, one access line a
request with its request id, never a token or a body; JSON lines that parse as they are."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from importapi_lite import Settings
from importapi_lite.admin.routes import ADMIN_PREFIX
from importapi_lite.observe.logs import JsonFormatter

from .helpers import Admin, Api, make_token, record, serving

ROOT = Path(__file__).resolve().parents[1]
MARKER = "body-value-never-logged"
HOSTILE = "evil\ntable 2026-12-06 ERROR forged"


def send(url: str, path: str, body: Any, token: str) -> int:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def run_server(tmp_path: Path, *args: str) -> tuple[str, str]:
    """A server process with ``args``, sent a known sequence of requests; its log, whole, after
    it stopped, and the push token (which must not be in it)."""
    data_dir = tmp_path / "data"
    token = make_token(Settings(data_dir=data_dir))
    admin_token = "admin-" + "7" * 30
    env = {"IMPORTAPI_LITE_ADMIN_TOKEN": admin_token}
    with serving(data_dir, "--workers", "0", *args, env=env) as server:
        push = "/v2/import/push"
        assert send(server.url, push, [record("t", 1, {"id": 1, "v": MARKER})], token) == 201
        assert send(server.url, push, [record(HOSTILE, 1, {"id": 1})], token) == 201
        assert send(server.url, push, [record("t", "x", {"id": 2, "v": MARKER})], token) == 422
        assert send(server.url, push, [record("t", 1, {"id": 1})], "wrong-token") == 401
        request = urllib.request.Request(
            server.url + ADMIN_PREFIX + "/clients",
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        log = server.log
    text = log.read_text()
    for secret in (token, admin_token, "wrong-token", MARKER):
        assert secret not in text
    return text, token


@pytest.mark.serve
def test_a_json_run_logs_every_line_as_json_and_one_access_line_a_request(
    tmp_path: Path,
) -> None:
    text, _ = run_server(tmp_path, "--log-format", "json", "--log-level", "info")

    lines = [json.loads(line) for line in text.splitlines()]  # every line, or this raises
    access = [
        line
        for line in lines
        if line["logger"] == "importapi_lite.access" and line["path"] != "/v2/import/status"
    ]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("POST", "/v2/import/push", 201),
        ("POST", "/v2/import/push", 201),
        ("POST", "/v2/import/push", 422),
        ("POST", "/v2/import/push", 401),
        ("GET", ADMIN_PREFIX + "/clients", 200),
    ]
    first, hostile, invalid, unauthorized, admin = access
    assert first["tables"] == ["t"] and first["client_id"] == 7723
    assert (first["accepted"], first["stale"], first["rejected"]) == (1, 0, 0)
    assert first["bytes"] > 0 and first["ms"] >= 0 and first["remote"] == "127.0.0.1"
    assert hostile["tables"] == [HOSTILE]  # escaped by JSON, whole
    assert "tables" not in invalid and invalid["client_id"] == 7723
    assert "client_id" not in unauthorized
    assert len({a["request_id"] for a in access}) == 5
    assert all(re.fullmatch(r"[0-9a-f]{16}", a["request_id"]) for a in access)
    assert all(line["time"].endswith("Z") and line["level"] for line in lines)


@pytest.mark.serve
def test_a_text_run_writes_one_line_a_request_whatever_the_names(tmp_path: Path) -> None:
    text, _ = run_server(tmp_path, "--log-level", "info")

    access = [
        line
        for line in text.splitlines()
        if " INFO importapi_lite.access: " in line and "/v2/import/status" not in line
    ]
    assert len(access) == 5
    assert (
        "POST /v2/import/push 201 client_id=7723 tables=t accepted=1 stale=0 rejected=0"
        in (access[0])
    )
    assert f"tables={json.dumps(HOSTILE)} " in access[1]  # the newline escaped: one line
    assert not any(line.startswith("table 2026") for line in text.splitlines())


@pytest.mark.serve
def test_by_default_no_request_is_logged(tmp_path: Path) -> None:
    text, _ = run_server(tmp_path)  # --log-level warning

    assert "importapi_lite.access" not in text
    assert " INFO " not in text


async def test_the_request_id_is_the_clients_when_plausible_and_ours_otherwise(
    api: Api, admin: Admin
) -> None:
    given = await api.push([record("t", 1, {"id": 1})], headers={"X-Request-Id": "ci-run.42:7"})
    forged = await api.push([record("t", 2, {"id": 1})], headers={"X-Request-Id": "a b\tc"})
    none = await api.push([record("t", 3, {"id": 1})])

    assert given.headers["X-Request-Id"] == "ci-run.42:7"
    assert re.fullmatch(r"[0-9a-f]{16}", forged.headers["X-Request-Id"])
    assert re.fullmatch(r"[0-9a-f]{16}", none.headers["X-Request-Id"])
    journal = (await admin.get("/journal")).body["entries"]
    assert [e["request_id"] for e in journal] == [
        "ci-run.42:7",
        forged.headers["X-Request-Id"],
        none.headers["X-Request-Id"],
    ]


async def test_access_lines_are_written_only_when_info_is_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="importapi_lite.access"):
        assert (await api.push([record("t", 1, {"id": 1})])).status == 201
    assert not [r for r in caplog.records if r.name == "importapi_lite.access"]

    with caplog.at_level(logging.INFO, logger="importapi_lite.access"):
        assert (await api.push([record("t", 2, {"id": 1})])).status == 201
    (line,) = [r for r in caplog.records if r.name == "importapi_lite.access"]
    assert line.fields["tables"] == ["t"]  # type: ignore[attr-defined]


async def test_the_documented_json_line_has_the_fields_a_real_one_has(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="importapi_lite.access"):
        assert (await api.push([record("customers", 1, {"id": 1})])).status == 201
    (line,) = [r for r in caplog.records if r.name == "importapi_lite.access"]
    real = json.loads(JsonFormatter().format(line))

    start = "POST /v2/import/push 201 client_id=7723 tables=customers accepted=1 stale=0 rejected=0"
    assert real["message"].startswith(start)
    for page in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        shown = re.search(r'^\{"time": .*"importapi_lite.access".*\}$', page.read_text(), re.M)
        assert shown, page
        documented = json.loads(shown.group(0))
        assert list(documented) == list(real), page
        assert documented["message"].startswith(start), page
