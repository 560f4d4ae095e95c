"""The admin API's OpenAPI 3.1 document, written by hand (served at ``/openapi.json``).

Exact, not indicative: every constraint a handler enforces on a parameter or a body is declared,
and each route lists the statuses and bodies it can answer, so a request the document calls valid
is served and every answer matches it. ``tests/test_admin.py`` checks that it lists exactly the
routes of ``admin.routes.ROUTES``; ``tests/test_admin_contract.py`` has schemathesis check the
rest against a running server.
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


def _errors(*statuses: int) -> dict[str, Any]:
    """The errors a route answers: 401 and 403 (the admin token) and ``statuses``. A 500 is a
    bug, never part of the contract; a 405 is another method's, with ``Allow``."""
    return {str(status): _ref("responses/Error") for status in sorted({401, 403, *statuses})}


def _object(properties: dict[str, Any], **schema: Any) -> dict[str, Any]:
    """An object sent whole: every property listed is in every answer."""
    return {"type": "object", "required": list(properties), "properties": properties, **schema}


def _link(path: str, method: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to ``method path``: where an answer (or its request) names the resource,
    so clients and tools can follow it (schemathesis does, in its sequences)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": parameters}


_COUNT = {"type": "integer", "minimum": 0}
_TABLE_PARAMETERS = [
    _ref("parameters/client_id"),
    _ref("parameters/integration"),
    _ref("parameters/table"),
]
_WHERE = _query(
    "where",
    # A column name (not empty), a colon, then the value (the rest, colons and all, maybe empty).
    {"type": "array", "items": {"type": "string", "pattern": "^[^:]+:"}},
    "column:value; repeat for more. Values are compared as text: CAST(column AS TEXT) = value. "
    "A column the table does not have is a 400.",
)
_INTEGRATION = "/clients/{client_id}/integrations/{integration}"
_TABLE = _INTEGRATION + "/tables/{table}"
_FIRST_TABLE = {
    "client_id": "$request.path.client_id",
    "integration": "$request.path.integration",
    "table": "$response.body#/tables/0/name",
}
_PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "100"),
    _query("offset", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, "0"),
]
_COUNTS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "description": "data points, one count per bucket",
}
_CLEARED = _json(_object({"cleared": _COUNT}), "How many were cleared")

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
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                        "The OpenAPI document",
                    )
                },
            }
        },
        "/livez": {
            "get": {
                "summary": "Liveness: always 200 while the process serves",
                "responses": {
                    "200": _json(_object({"status": {"const": "ok"}}), "Alive"),
                    **_errors(),
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: 200 when the data directory is writable, else 503",
                "responses": {
                    "200": _json(_object({"status": {"const": "ready"}}), "Ready"),
                    **_errors(503),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Metrics in Prometheus' text format (every server process's, added up)",
                "description": "Scraped with the admin token as a bearer token. Names, labels "
                "and their bounds: docs/admin-api.md#metrics.",
                "responses": {
                    "200": {
                        "description": "The metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _ref("responses/Error"),
                    "403": _ref("responses/Error"),
                },
            }
        },
        "/clients": {
            "get": {
                "summary": "Clients (with data or tokens), their integrations, tables, row counts",
                "responses": {
                    "200": {
                        **_json(_ref("schemas/Clients"), "Every client"),
                        "links": {
                            "tables": _link(
                                _INTEGRATION + "/tables",
                                "get",
                                client_id="$response.body#/clients/0/client_id",
                                integration="$response.body#/clients/0/integrations/0/name",
                            )
                        },
                    },
                    **_errors(),
                },
            },
            "delete": {
                "summary": "Reset everything: delete every table of every client (tokens stay)",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "reset": {"const": "everything"},
                                "clients_removed": {
                                    **_COUNT,
                                    "description": "clients that had data",
                                },
                            }
                        ),
                        "Reset done",
                    ),
                    **_errors(),
                },
            },
        },
        "/clients/{client_id}": {
            "parameters": [_ref("parameters/client_id")],
            "delete": {
                "summary": "Reset one client: delete its tables in every integration",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "reset": {"const": "client"},
                                "client_id": {"type": "integer"},
                                "removed": {
                                    "type": "boolean",
                                    "description": "false: there was nothing to delete",
                                },
                            }
                        ),
                        "Reset done",
                    ),
                    **_errors(404),
                },
            },
        },
        _INTEGRATION + "/tables": {
            "parameters": [_ref("parameters/client_id"), _ref("parameters/integration")],
            "get": {
                "summary": "One integration's tables with row and rejected counts and subtables "
                "(a table whose every record was rejected is listed with 0 rows)",
                "responses": {
                    "200": {
                        **_json(
                            _object(
                                {"tables": {"type": "array", "items": _ref("schemas/TableSummary")}}
                            ),
                            "The tables (none for an integration with no data)",
                        ),
                        "links": {
                            "table": _link(_TABLE, "get", **_FIRST_TABLE),
                            "rows": _link(_TABLE + "/rows", "get", **_FIRST_TABLE),
                            "export": _link(_TABLE + "/export", "get", **_FIRST_TABLE),
                            "rejected": _link(_TABLE + "/rejected", "get", **_FIRST_TABLE),
                            "reset": _link(_TABLE, "delete", **_FIRST_TABLE),
                        },
                    },
                    **_errors(404),
                },
            },
        },
        _INTEGRATION + "/rejected": {
            "parameters": [_ref("parameters/client_id"), _ref("parameters/integration")],
            "get": {
                "summary": "Records accepted but not loaded (_sdc_rejected), every table's",
                "parameters": [_query("table", {"type": "string"}, "only this table's"), *_PAGE],
                "responses": {
                    "200": _json(_ref("schemas/Rejected"), "The page"),
                    **_errors(400, 404),
                },
            },
        },
        _TABLE: {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "A table (or subtable): columns with Stitch types, keys, active "
                "version, bookmarks, row count and subtables",
                "responses": {"200": _json(_ref("schemas/Table"), "The table"), **_errors(404)},
            },
            "delete": {
                "summary": "Reset one top-level table: its file, subtables and rejected records",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "reset": {"const": "table"},
                                "client_id": {"type": "integer"},
                                "integration": {"type": "string"},
                                "table": {"type": "string"},
                                "removed": {
                                    "type": "boolean",
                                    "description": "false: there was no such top-level table",
                                },
                            }
                        ),
                        "Reset done",
                    ),
                    **_errors(404),
                },
            },
        },
        _TABLE + "/rows": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "A page of rows in insertion order",
                "parameters": [*_PAGE, _WHERE],
                "responses": {"200": _json(_ref("schemas/Rows"), "The page"), **_errors(400, 404)},
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
                        "description": "The rows: one JSON object a line (jsonl), or CSV with "
                        "the column names first (csv)",
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 404),
                },
            },
        },
        _TABLE + "/wait": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "Long-poll until the table holds at least min_rows rows",
                "description": "Always 200 with the count, for any table name (one that does not "
                "exist yet has 0 rows); reached is false on timeout.",
                "parameters": [
                    _query("min_rows", {"type": "integer", "minimum": 0}, "1"),
                    _query(
                        "timeout", {"type": "number", "minimum": 0, "maximum": 60}, "seconds, 10"
                    ),
                ],
                "responses": {"200": _json(_ref("schemas/Wait"), "The count"), **_errors(400, 404)},
            },
        },
        _TABLE + "/rejected": {
            "parameters": _TABLE_PARAMETERS,
            "get": {
                "summary": "One table's records accepted but not loaded, with their reasons "
                "(200 for any table name: one with only rejections, or none at all)",
                "parameters": _PAGE,
                "responses": {
                    "200": _json(_ref("schemas/Rejected"), "The page"),
                    **_errors(400, 404),
                },
            },
        },
        "/journal": {
            "get": {
                "summary": "The last requests of the Stitch API, oldest first",
                "parameters": [
                    _query("since", _COUNT, "only entries with a greater id (0)"),
                    _query("limit", _COUNT, "only the last N (all)"),
                ],
                "responses": {"200": _json(_ref("schemas/Journal"), "Entries"), **_errors(400)},
            },
            "delete": {
                "summary": "Empty the journal",
                "responses": {"200": _CLEARED, **_errors()},
            },
        },
        "/activity": {
            "get": {
                "summary": "Data points per table in the last minutes, in buckets of a few "
                "seconds (this process's only; for the dashboard's chart)",
                "responses": {"200": _json(_ref("schemas/Activity"), "The window"), **_errors()},
            },
        },
        "/faults": {
            "get": {
                "summary": "Active fault rules",
                "responses": {
                    "200": _json(
                        _object({"faults": {"type": "array", "items": _ref("schemas/Fault")}}),
                        "The rules, oldest first",
                    ),
                    **_errors(),
                },
            },
            "post": {
                "summary": "Add a fault rule for the next data requests",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("schemas/FaultSpec")}},
                },
                "responses": {
                    "201": {
                        **_json(_ref("schemas/Fault"), "The rule"),
                        "links": {
                            "remove": _link(
                                "/faults/{fault_id}", "delete", fault_id="$response.body#/id"
                            )
                        },
                    },
                    **_errors(400),
                },
            },
            "delete": {
                "summary": "Clear every fault rule",
                "responses": {"200": _CLEARED, **_errors()},
            },
        },
        "/faults/{fault_id}": {
            "parameters": [
                {
                    "name": "fault_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                    "example": 1,
                }
            ],
            "delete": {
                "summary": "Clear one fault rule",
                "responses": {
                    "200": _json(_object({"cleared": {"const": 1}}), "Cleared"),
                    **_errors(404),
                },
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
                "example": 7723,
            },
            "integration": {
                "name": "integration",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
                "description": "Integration name (the schema), usually import_api",
                "example": "import_api",
            },
            "table": {
                "name": "table",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
                "description": "Table or subtable name, URL-encoded",
                "example": "customers",
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
                "required": ["clients"],
                "properties": {
                    "clients": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["client_id", "integrations"],
                            "properties": {
                                "client_id": {"type": "integer"},
                                "integrations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["name", "state", "tables"],
                                        "properties": {
                                            "name": {"type": "string"},
                                            "state": {
                                                "type": ["string", "null"],
                                                "description": "null: data, but no token names "
                                                "the integration",
                                            },
                                            "tables": {
                                                "type": "array",
                                                "items": _ref("schemas/TableSummary"),
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
            "TableSummary": _object(
                {
                    "name": {"type": "string"},
                    "rows": _COUNT,
                    "rejected": {**_COUNT, "description": "records in _sdc_rejected"},
                    "subtables": {
                        "type": "array",
                        "items": _object({"name": {"type": "string"}, "rows": _COUNT}),
                    },
                },
                description="A table with its row count, rejected count and subtables",
            ),
            "Table": {
                "type": "object",
                "required": [
                    "name",
                    "parent",
                    "key_names",
                    "active_version",
                    "bookmark_names",
                    "created_at",
                    "rows",
                    "columns",
                    "subtables",
                ],
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
                            "properties": {
                                "name": {"type": "string"},
                                "type": {"type": "string"},
                                "split_of": {
                                    "type": ["string", "null"],
                                    "description": "the field whose values of this type went "
                                    "to this split column (<field>__<suffix>), or null",
                                },
                            },
                        },
                    },
                    "subtables": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Rows": {
                "type": "object",
                "required": ["columns", "rows", "total", "limit", "offset"],
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
                "required": ["table", "total", "reasons", "records", "limit", "offset"],
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
                "required": ["table", "rows", "min_rows", "reached", "waited_ms"],
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
                "required": ["entries"],
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
                                "request_id": {
                                    "type": "string",
                                    "description": "as in the access log and the answer's "
                                    "X-Request-Id",
                                },
                                "headers": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": "only User-Agent, Content-Type, "
                                    "Content-Length, Content-Encoding, Transfer-Encoding and "
                                    "X-Request-Id, as sent (never Authorization)",
                                },
                                "per_table": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "table_name": {"type": "string"},
                                            "accepted": {"type": "integer"},
                                            "stale": {"type": "integer"},
                                            "rejected": {"type": "integer"},
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
            "Activity": {
                "type": "object",
                "description": "Records per second of a bucket: (accepted + stale + rejected) / "
                "bucket_seconds. At most max_tables tables have a series; data points of the "
                "others count in one series whose client_id, integration and table are null.",
                "properties": {
                    "bucket_seconds": {"type": "integer"},
                    "window_seconds": {"type": "integer"},
                    "max_tables": {"type": "integer"},
                    "buckets": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "each bucket's start in seconds since the epoch, oldest "
                        "first; the last is the bucket under way",
                    },
                    "series": {
                        "type": "array",
                        "description": "tables with data points in the window, by client, "
                        "integration and table; the other tables last",
                        "items": {
                            "type": "object",
                            "properties": {
                                "client_id": {"type": ["integer", "null"]},
                                "integration": {"type": ["string", "null"]},
                                "table": {"type": ["string", "null"]},
                                "accepted": _COUNTS,
                                "stale": _COUNTS,
                                "rejected": _COUNTS,
                            },
                        },
                    },
                },
            },
            "FaultSpec": {
                "type": "object",
                "additionalProperties": False,
                "description": "At least one of status, delay_ms above 0 or drop: true; a rule "
                "that drops answers no status.",
                "example": {"status": 503, "count": 2, "endpoint": "push"},
                "properties": {
                    "status": {"enum": [*FAULT_STATUSES, None]},
                    "delay_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS},
                    "drop": {"type": "boolean", "description": "close the connection unanswered"},
                    "count": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "description": "requests to fire on (default 1); null: until cleared",
                    },
                    "endpoint": {"enum": [*DATA_ENDPOINTS, None]},
                    "table": {"type": ["string", "null"]},
                    "probability": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": 1,
                        "description": "default 1",
                    },
                    "seed": {"type": "integer", "description": "default 0"},
                },
                "anyOf": [
                    {"required": ["status"], "properties": {"status": {"type": "integer"}}},
                    {"required": ["delay_ms"], "properties": {"delay_ms": {"minimum": 1}}},
                    {"required": ["drop"], "properties": {"drop": {"const": True}}},
                ],
                "not": {
                    "required": ["status", "drop"],
                    "properties": {"status": {"type": "integer"}, "drop": {"const": True}},
                },
            },
            "Fault": _object(
                {
                    "id": {"type": "integer", "minimum": 1},
                    "status": {"enum": [*FAULT_STATUSES, None]},
                    "delay_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS},
                    "drop": {"type": "boolean"},
                    "remaining": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "description": "requests it will still fire on; null: until cleared",
                    },
                    "endpoint": {"enum": [*DATA_ENDPOINTS, None]},
                    "table": {"type": ["string", "null"]},
                    "probability": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "seed": {"type": "integer"},
                    "fired": _COUNT,
                },
                description="A rule as added (defaults filled in), with its id and its use so far",
            ),
        },
    },
}
