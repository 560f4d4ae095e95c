"""GET /v2/import/status (``web/status.py``): no auth, the API Status object, 503 when the store
cannot take writes."""

from __future__ import annotations

import shutil
from typing import Any

from importapi_lite import __version__

from .helpers import Api, record


async def test_status_needs_no_token_and_reports_ok(api: Api) -> None:
    reply = await api.request("GET", "/v2/import/status", token=None, content_type=None)
    assert (reply.status, reply.body) == (
        200,
        {
            "name": "pipeline.gate",
            "version": __version__,
            "revision": "importapi-lite",
            "status": "OK",
            "reason": None,
        },
    )
    assert reply.content_type == "application/json;charset=UTF-8"


async def test_status_ignores_a_bad_token(api: Api) -> None:
    reply = await api.request("GET", "/v2/import/status", token="nonsense", content_type=None)
    assert reply.status == 200


async def test_status_is_503_when_the_data_directory_is_gone(api: Api, settings: Any) -> None:
    shutil.rmtree(settings.data_dir)
    reply = await api.request("GET", "/v2/import/status", token=None, content_type=None)
    assert reply.status == 503
    assert reply.body["status"] == "ERROR" and reply.body["name"] == "pipeline.gate"
    assert "does not exist" in reply.body["reason"]


async def test_a_push_while_storage_is_unavailable_gets_a_stitch_shaped_503(
    api: Api, settings: Any
) -> None:
    settings.data_dir.joinpath("7723").write_text("a file where the client folder should be")
    reply = await api.push([record("users", 1, {"id": 1})])
    assert (reply.status, reply.body) == (
        503,
        {"status": "ERROR", "message": "Service Unavailable"},
    )
