"""The CLI's state commands on the PostgreSQL destination: every one takes ``--destination`` (or
``IMPORTAPI_LITE_DESTINATION``) and reads or writes what a server on that database sees.

Data is loaded by a real server into a database of the session's cluster; the commands then run
against the same database, as a user would beside running servers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from importapi_lite.cli import main
from importapi_lite.settings import Settings

from .helpers import CLIENT_ID, Admin, Api, pg_query, record

pytestmark = pytest.mark.parametrize("destination", ["postgresql"], indirect=True)


def run(capsys: Any, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    code = main(list(argv), environ={} if environ is None else environ)
    out, err = capsys.readouterr()
    return code, out, err


def at(settings: Settings) -> tuple[str, str]:
    return ("--destination", str(settings.destination))


@pytest.fixture
async def loaded(api: Api, settings: Settings) -> Settings:
    """users (2 rows, 1 rejected record) and orders (1 row, 2 subtable rows) for the client."""
    await api.push([record("users", 1, {"id": i, "name": f"u{i}"}) for i in (1, 2)])
    await api.push([record("orders", 1, {"id": 7, "lines": [{"sku": "a"}, {"sku": "b"}]})])
    await api.push([record("users", 2, {"id": "three"})])
    return settings


def test_tokens_create_list_revoke_through_the_destination(capsys: Any, settings: Settings):
    code, out, err = run(capsys, "tokens", "create", "--client-id", "5", *at(settings))
    assert (code, err) == (0, "")
    secret = out.splitlines()[-1]

    _, listed, _ = run(capsys, "tokens", "list", *at(settings))
    (token_id,) = [line.split("\t")[0] for line in listed.splitlines()[1:]]
    assert secret not in listed

    code, out, _ = run(capsys, "tokens", "revoke", secret, *at(settings))
    assert code == 0 and token_id in out
    (row,) = pg_query(settings, "SELECT id, revoked_at FROM _importapi.tokens")
    assert row["id"] == token_id and row["revoked_at"] is not None


def test_the_destination_comes_from_the_environment(capsys: Any, settings: Settings, tmp_path):
    environ = {"IMPORTAPI_LITE_DESTINATION": str(settings.destination)}
    code, _, err = run(
        capsys, "tokens", "create", "--client-id", "5", "--data-dir", str(tmp_path), environ=environ
    )

    assert (code, err) == (0, "")
    assert len(pg_query(settings, "SELECT * FROM _importapi.tokens")) == 1
    assert not (tmp_path / "tokens.sqlite3").exists()


def test_integrations_set_state_through_the_destination(capsys: Any, settings: Settings):
    run(capsys, "tokens", "create", "--client-id", "5", *at(settings))

    code, _, err = run(
        capsys, "integrations", "set-state", "--client-id", "5", "paused", *at(settings)
    )

    assert (code, err) == (0, "")
    assert pg_query(settings, "SELECT state FROM _importapi.integrations") == [{"state": "paused"}]


async def test_admin_token_is_shown_once_and_rotate_replaces_it(
    capsys: Any, client: Any, settings: Settings
):
    plain = Settings(port=0, destination=settings.destination)  # no admin token given
    code, out, _ = run(capsys, "admin-token", *at(plain))
    first = out.strip()
    assert code == 0 and len(first) == 64

    code, out, err = run(capsys, "admin-token", *at(plain))
    assert (code, out) == (1, "") and "--rotate" in err

    code, out, _ = run(capsys, "admin-token", "--rotate", *at(plain))
    second = out.strip()
    assert code == 0 and len(second) == 64 and second != first
    dump = json.dumps(pg_query(settings, "SELECT * FROM _importapi.admin_token"), default=str)
    assert first not in dump and second not in dump


def test_tables_rows_rejected_and_reset(capsys: Any, loaded: Settings):
    code, out, _ = run(capsys, "tables", *at(loaded))
    assert code == 0
    assert [line.split("\t") for line in out.splitlines()] == [
        ["client_id", "integration", "table", "rows", "rejected", "path"],
        [str(CLIENT_ID), "import_api", "orders", "1", "0", "-"],
        [str(CLIENT_ID), "import_api", "orders__lines", "2", "-", "-"],
        [str(CLIENT_ID), "import_api", "users", "2", "1", "-"],
    ]

    code, out, _ = run(capsys, "rows", "orders__lines", "--format", "csv", *at(loaded))
    header, *lines = out.splitlines()
    sku = header.split(",").index("sku")
    assert code == 0 and [line.split(",")[sku] for line in lines] == ["a", "b"]

    code, out, _ = run(capsys, "rejected", "users", "--records", "1", *at(loaded))
    assert code == 0
    assert json.loads(out.splitlines()[-1])["record"]["data"] == {"id": "three"}

    code, out, _ = run(capsys, "path", "users", *at(loaded))
    assert code == 1

    code, out, _ = run(capsys, "reset", "--table", "users", *at(loaded))
    assert code == 0 and "removed" in out
    _, out, _ = run(capsys, "tables", *at(loaded))
    assert [line.split("\t")[2] for line in out.splitlines()[1:]] == ["orders", "orders__lines"]


async def test_the_admin_api_reads_the_postgresql_destination(loaded: Settings, admin: Admin):
    reply = await admin.get(f"/clients/{CLIENT_ID}/integrations/import_api/tables/orders/rows")

    assert reply.status == 200, reply
    assert [row["id"] for row in reply.body["rows"]] == [7]
