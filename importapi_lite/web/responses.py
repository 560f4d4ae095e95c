"""Building responses: JSON and plain text with the exact headers Stitch sends (SPEC §1.3)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
TEXT_CONTENT_TYPE = "text/plain;charset=UTF-8"


def json_response(body: Any, status: int = 200) -> web.Response:
    # "replace": a body may echo client text that is not valid Unicode (a Content-Type byte).
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    payload_bytes = payload.encode("utf-8", "replace")
    return web.Response(
        body=payload_bytes, status=status, headers={"Content-Type": JSON_CONTENT_TYPE}
    )


def text_response(text: str, status: int) -> web.Response:
    return web.Response(
        body=text.encode("utf-8", "replace"),
        status=status,
        headers={"Content-Type": TEXT_CONTENT_TYPE},
    )


def batch_status(status: str, message: str, http_status: int) -> web.Response:
    """The Batch Status object of every push/batch/validate success (SPEC §3.2)."""
    return json_response({"status": status, "message": message}, http_status)


_CREATED = batch_status("OK", "Batch Accepted!", 201).body  # the answer to nearly every push


def created() -> web.Response:
    return web.Response(body=_CREATED, status=201, headers={"Content-Type": JSON_CONTENT_TYPE})
