"""The admin API's OpenAPI 3.1 document, written by hand (served at ``/openapi.json``).

``tests/test_admin.py`` checks that it lists exactly the routes of ``admin.routes.ROUTES``.
"""

from __future__ import annotations

from typing import Any

from ..observe.faults import DATA_ENDPOINTS, FAULT_STATUSES, MAX_DELAY_MS
from ..version import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_ERRORS = {
    "400": _ref("responses/Error"),
    "401": _ref("responses/Error"),
    "403": _ref("responses/Error"),
    "404": _ref("responses/Error"),
}
_TABLE_PARAMETERS = [
    _ref("parameters/client_id"),
    _ref("parameters/integration"),
    _ref("parameters/table"),
]
_WHERE = _query(
    "where",
    {"type": "array", "items": {"type": "string"}},
    "column:value; repeat for more. Values are compared as text: CAST(column AS TEXT) = value.",
)
_INTEGRATION = "/clients/{client_id}/integrations/{integration}"
_TABLE = _INTEGRATION + "/tables/{table}"
_PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "100"),
    _query("offset", {"type": "integer", "minimum": 0}, "0"),
]
_RESET = {
    "type": "object",
    "description": "What was reset; removed is false when there was nothing to delete.",
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "importapi-lite admin API",
        "version": __version__,
        "description": (
            "Inspect, reset and misconfigure on purpose a local Stitch Import API stand-in. "
            "Every route but this document needs the admin token "
            "(`importapi-lite admin-token` prints it); push tokens get 403. Errors are "
            '`{"error": code, "message": text}`.'
        ),
    },
    "servers": [{"url": "/_importapi/v1"}],
    "security": [{"adminToken": []}],
    "paths": {
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document"}},
            }
        },
        "/livez": {
            "get": {
                "summary": "Liveness: always 200 while the process serves",
                "responses": {"200": _json({"type": "object"}, '{"status": "ok"}')},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: 200 when the data directory is writable, else 503",
                "responses": {
                    "200": _json({"type": "object"}, '{"status": "ready"}'),
                    "503": _ref("responses/Error"),
                },
            }
        },
        "/clients": {
            "get": {
                "summary": "Clients (with data or tokens), their integrations, tables, row counts",
                "responses": {"200": _json(_ref("schemas/Clients"), "Every client"), **_ERRORS},
            },
            "delete": {
                "summary": "Reset everything: delete every table of every client (tokens stay)",
                "responses": {"200": _json(_RESET, "Reset done"), **_ERRORS},
            },
        },
        "/clients/{client_id}": {
            "parameters": [_ref("parameters/client_id")],
            "delete": {
                "summary": "Reset one client: delete its tables in every integration",
                "responses": {"200": _json(_RESET, "Reset done"), **_ERRORS},
            },
        },
        _INTEGRATION + "/tables": {
            "parameters": [_ref("parameters/client_id"), _ref("parameters/integration")],
            "get": {
                "summary": "One integration's tables with row and rejected counts and subtables "
                "(a table whose every record was rejected is listed with 0 rows)",
                "responses": {"200": _json({"type": "object"}, '{"tables": [...]}'), **_ERRORS},
            },
        },
        _INTEGRATION + "/rejected": {
            "parameters": [_ref("parameters/client_id"), _ref("parameters/integration")],
            "get": {
                "summary": "Records accepted but not loaded (_sdc_rejected), every table's",
                "parameters": [_query("table", {"type": "string"}, "only this table's"), *_PAGE],
                "responses": {"200": _json(_ref("schemas/Rejected"), "The page"), **_ERRORS},
            },
        },
        _TABLE: {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "A table (or subtable): columns with Stitch types, keys, active "
                "version, bookmarks, row count and subtables",
                "responses": {"200": _json(_ref("schemas/Table"), "The table"), **_ERRORS},
            },
            "delete": {
                "summary": "Reset one top-level table: its file, subtables and rejected records",
                "responses": {"200": _json(_RESET, "Reset done"), **_ERRORS},
            },
        },
        _TABLE + "/rows": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "A page of rows in insertion order",
                "parameters": [*_PAGE, _WHERE],
                "responses": {"200": _json(_ref("schemas/Rows"), "The page"), **_ERRORS},
            },
        },
        _TABLE + "/export": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "Every row, streamed as JSON Lines or CSV (header first)",
                "parameters": [
                    _query("format", {"enum": ["jsonl", "csv"]}, "jsonl (default) or csv"),
                    _WHERE,
                ],
                "responses": {
                    "200": {
                        "description": "The rows",
                        "content": {"application/x-ndjson": {}, "text/csv": {}},
                    },
                    **_ERRORS,
                },
            },
        },
        _TABLE + "/wait": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "Long-poll until the table holds at least min_rows rows",
                "description": "Always 200 with the count; reached is false on timeout.",
                "parameters": [
                    _query("min_rows", {"type": "integer", "minimum": 0}, "1"),
                    _query("timeout", {"type": "number", "maximum": 60}, "seconds, 10"),
                ],
                "responses": {"200": _json(_ref("schemas/Wait"), "The count"), **_ERRORS},
            },
        },
        _TABLE + "/rejected": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "One table's records accepted but not loaded, with their reasons "
                "(200 even for a table that has no rows, only rejections)",
                "parameters": _PAGE,
                "responses": {"200": _json(_ref("schemas/Rejected"), "The page"), **_ERRORS},
            },
        },
        "/journal": {
            "get": {
                "summary": "The last requests of the Stitch API, oldest first",
                "parameters": [
                    _query("since", {"type": "integer"}, "only entries with a greater id"),
                    _query("limit", {"type": "integer"}, "only the last N"),
                ],
                "responses": {"200": _json(_ref("schemas/Journal"), "Entries"), **_ERRORS},
            },
            "delete": {
                "summary": "Empty the journal",
                "responses": {"200": _json({"type": "object"}, '{"cleared": N}'), **_ERRORS},
            },
        },
        "/faults": {
            "get": {
                "summary": "Active fault rules",
                "responses": {"200": _json({"type": "object"}, '{"faults": [...]}'), **_ERRORS},
            },
            "post": {
                "summary": "Add a fault rule for the next data requests",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("schemas/FaultSpec")}},
                },
                "responses": {"201": _json(_ref("schemas/Fault"), "The rule"), **_ERRORS},
            },
            "delete": {
                "summary": "Clear every fault rule",
                "responses": {"200": _json({"type": "object"}, '{"cleared": N}'), **_ERRORS},
            },
        },
        "/faults/{fault_id}": {
            "parameters": [
                {"name": "fault_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "delete": {
                "summary": "Clear one fault rule",
                "responses": {"200": _json({"type": "object"}, '{"cleared": 1}'), **_ERRORS},
            },
        },
    },
    "components": {
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        "parameters": {
            "client_id": {
                "name": "client_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer"},
            },
            "integration": {
                "name": "integration",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "Integration name (the schema), usually import_api",
            },
            "table": {
                "name": "table",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "Table or subtable name, URL-encoded",
            },
        },
        "responses": {
            "Error": _json(_ref("schemas/Error"), "An error"),
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {
                        "type": "string",
                        "description": "Stable code: bad_request, unauthorized, forbidden, "
                        "not_found, method_not_allowed, internal_error, not_ready",
                    },
                    "message": {"type": "string"},
                },
            },
            "Clients": {
                "type": "object",
                "properties": {
                    "clients": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "client_id": {"type": "integer"},
                                "integrations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "name": {"type": "string"},
                                            "state": {"type": ["string", "null"]},
                                            "tables": {"type": "array"},
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
            "Table": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "parent": {"type": ["string", "null"]},
                    "key_names": {"type": "array", "items": {"type": "string"}},
                    "active_version": {"type": ["integer", "null"]},
                    "bookmark_names": {"type": ["array", "null"]},
                    "created_at": {"type": "string"},
                    "rows": {"type": "integer"},
                    "columns": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                        },
                    },
                    "subtables": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Rows": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "rows": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer", "description": "rows matching the filters"},
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                },
            },
            "Rejected": {
                "type": "object",
                "properties": {
                    "table": {"type": ["string", "null"], "description": "null: every table"},
                    "total": {"type": "integer", "description": "rejected records"},
                    "reasons": {
                        "type": "array",
                        "description": "counts by table and reason, most frequent first",
                        "items": {
                            "type": "object",
                            "properties": {
                                "table_name": {"type": "string"},
                                "reason": {"type": "string"},
                                "count": {"type": "integer"},
                                "last_rejected_at": {"type": "string"},
                            },
                        },
                    },
                    "records": {
                        "type": "array",
                        "description": "a page of the records, newest first",
                        "items": {
                            "type": "object",
                            "properties": {
                                "rejected_at": {"type": "string"},
                                "table_name": {"type": "string"},
                                "reason": {"type": "string"},
                                "record": {"description": "the record as the client sent it"},
                            },
                        },
                    },
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                },
            },
            "Wait": {
                "type": "object",
                "properties": {
                    "table": {"type": "string"},
                    "rows": {"type": "integer"},
                    "min_rows": {"type": "integer"},
                    "reached": {"type": "boolean"},
                    "waited_ms": {"type": "integer"},
                },
            },
            "Journal": {
                "type": "object",
                "properties": {
                    "entries": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "time": {"type": "string"},
                                "method": {"type": "string"},
                                "path": {"type": "string"},
                                "status": {
                                    "type": ["integer", "null"],
                                    "description": "null: the connection was dropped",
                                },
                                "duration_ms": {"type": "number"},
                                "request_bytes": {"type": "integer"},
                                "client_id": {"type": ["integer", "null"]},
                                "tables": {"type": "array", "items": {"type": "string"}},
                                "accepted": {"type": "integer"},
                                "stale": {"type": "integer"},
                                "rejected": {"type": "integer"},
                                "error": {"description": "the body of a 4xx/5xx answer"},
                                "fault": {"type": ["integer", "null"]},
                            },
                        },
                    }
                },
            },
            "FaultSpec": {
                "type": "object",
                "additionalProperties": False,
                "description": "At least one of status, delay_ms > 0 or drop.",
                "properties": {
                    "status": {"enum": list(FAULT_STATUSES)},
                    "delay_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS},
                    "drop": {"type": "boolean", "description": "close the connection unanswered"},
                    "count": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "description": "requests to fire on (default 1); null: until cleared",
                    },
                    "endpoint": {"enum": list(DATA_ENDPOINTS)},
                    "table": {"type": "string"},
                    "probability": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "seed": {"type": "integer", "description": "default 0"},
                },
            },
            "Fault": {
                "type": "object",
                "description": "A FaultSpec with its id, remaining count and times fired.",
            },
        },
    },
}
