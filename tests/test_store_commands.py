"""``store_commands.py``: the store commands (admin-token, tables, rows, rejected, path, reset)
and the admin settings, on real files.

Data is loaded by a real server (``aiohttp_client``) into tmp_path; the commands then read the
same directory, as a user would after stopping the server.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from importapi_lite.cli import main
from importapi_lite.settings import Secret, Settings
from importapi_lite.store.admin_token import ADMIN_TOKEN_FILE
from importapi_lite.store.sqlite.tokens import TOKENS_FILE

from .helpers import CLIENT_ID, Admin, Api, db_path, make_token, record


def run(capsys: Any, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    code = main(list(argv), environ={} if environ is None else environ)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
async def loaded(api: Api, settings: Settings) -> Path:
    """A data dir with users (2 rows) and orders (1 row, 2 subtable rows) for client 7723."""
    await api.push([record("users", 1, {"id": i, "name": f"u{i}"}) for i in (1, 2)])
    await api.push([record("orders", 1, {"id": 7, "lines": [{"sku": "a"}, {"sku": "b"}]})])
    return settings.data_dir


# --- admin-token ---------------------------------------------------------------------------------


def test_admin_token_is_created_once_with_0600_and_printed_alone(capsys: Any, tmp_path: Path):
    code, first, err = run(capsys, "admin-token", "--data-dir", str(tmp_path))
    _, second, _ = run(capsys, "admin-token", "--data-dir", str(tmp_path))

    assert (code, err) == (0, "")
    assert first == second and len(first.strip()) == 64
    path = tmp_path / ADMIN_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.strip()


def test_admin_token_tightens_a_file_someone_made_readable(capsys: Any, tmp_path: Path):
    run(capsys, "admin-token", "--data-dir", str(tmp_path))
    (tmp_path / ADMIN_TOKEN_FILE).chmod(0o644)

    run(capsys, "admin-token", "--data-dir", str(tmp_path))

    assert stat.S_IMODE((tmp_path / ADMIN_TOKEN_FILE).stat().st_mode) == 0o600


async def test_admin_token_rotate_replaces_it_and_a_running_server_notices(
    capsys: Any, client: Any, settings: Settings
):
    data_dir = str(settings.data_dir)
    _, old, _ = run(capsys, "admin-token", "--data-dir", data_dir)
    assert (await Admin(client, old.strip()).get("/clients")).status == 200

    code, new, err = run(capsys, "admin-token", "--rotate", "--data-dir", data_dir)

    assert (code, err) == (0, "") and new != old and len(new.strip()) == 64
    assert stat.S_IMODE((settings.data_dir / ADMIN_TOKEN_FILE).stat().st_mode) == 0o600
    assert (await Admin(client, old.strip()).get("/clients")).status == 401
    assert (await Admin(client, new.strip()).get("/clients")).status == 200
    _, again, _ = run(capsys, "admin-token", "--data-dir", data_dir)
    assert again == new


# --- tables and rows -----------------------------------------------------------------------------


def test_tables_lists_tables_and_subtables_with_rows_rejections_and_files(
    capsys: Any, loaded: Path, settings: Settings
):
    code, out, _ = run(capsys, "tables", "--data-dir", str(loaded))

    orders, users = (str(db_path(settings, t)) for t in ("orders", "users"))
    assert code == 0
    assert [line.split("\t") for line in out.splitlines()] == [
        ["client_id", "integration", "table", "rows", "rejected", "path"],
        [str(CLIENT_ID), "import_api", "orders", "1", "0", orders],
        [str(CLIENT_ID), "import_api", "orders__lines", "2", "-", orders],
        [str(CLIENT_ID), "import_api", "users", "2", "0", users],
    ]


def test_tables_filtered_by_another_client_is_only_the_header(capsys: Any, loaded: Path):
    _, out, _ = run(capsys, "tables", "--client-id", "1", "--data-dir", str(loaded))

    assert out.splitlines() == ["client_id\tintegration\ttable\trows\trejected\tpath"]


@pytest.fixture
async def with_rejections(loaded: Path, api: Api) -> Path:
    """Two of users' records rejected, and a table whose every record was."""
    await api.push(
        [
            record("users", 5, {"id": 5, "_sdc_sequence": 1}),
            record("users", 6, {"id": 6, "_sdc_sequence": 2}),
            record("users", 7, {"id": "seven"}),
            record("x" * 64, 1, {"id": 1}),
        ]
    )
    return loaded


def test_tables_counts_rejections_and_lists_a_table_that_has_only_rejections(
    capsys: Any, with_rejections: Path
):
    _, out, _ = run(capsys, "tables", "--data-dir", str(with_rejections))

    lines = [line.split("\t") for line in out.splitlines()]
    assert [(name, rows, rejected) for _, _, name, rows, rejected, _ in lines[1:]] == [
        ("orders", "1", "0"),
        ("orders__lines", "2", "-"),
        ("users", "2", "3"),
        ("x" * 64, "0", "1"),
    ]
    assert lines[-1][-1] == "-"  # no file: nothing was ever loaded


def test_rejected_prints_counts_by_table_and_reason(capsys: Any, with_rejections: Path):
    code, out, err = run(capsys, "rejected", "--data-dir", str(with_rejections))

    assert (code, err) == (0, "")
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines[0] == ["client_id", "integration", "table", "count", "last_rejected_at", "reason"]
    assert [(table, count, reason) for _, _, table, count, _, reason in lines[1:]] == [
        ("users", "2", "Field _sdc_sequence collides with a system column"),
        ("users", "1", "Key column id changed type from integer to string"),
        ("x" * 64, "1", f"Table name {'x' * 64} is longer than 63 characters"),
    ]


def test_rejected_of_one_table_with_its_newest_records(capsys: Any, with_rejections: Path):
    code, out, _ = run(
        capsys, "rejected", "users", "--records", "2", "--data-dir", str(with_rejections)
    )

    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + 2 + 2  # header, two reasons, two records
    records = [json.loads(line) for line in lines[3:]]
    assert [r["record"]["data"]["id"] for r in records] == ["seven", 6]
    assert records[0]["reason"] == "Key column id changed type from integer to string"
    assert records[0]["table_name"] == "users" and records[0]["client_id"] == CLIENT_ID


def test_rejected_with_a_negative_record_count_is_a_usage_error(capsys: Any, tmp_path: Path):
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "rejected", "--records", "-1", "--data-dir", str(tmp_path))

    assert exit_.value.code == 2


@pytest.mark.parametrize("table", ["users", "orders__lines"])
def test_path_prints_the_file_that_holds_a_table(
    capsys: Any, loaded: Path, settings: Settings, table: str
):
    code, out, _ = run(capsys, "path", table, "--data-dir", str(loaded))

    assert code == 0
    assert out == f"{db_path(settings, table.split('__')[0])}\n"


@pytest.fixture
async def upper_case(api: Api, settings: Settings) -> Path:
    await api.push([record("Users", 1, {"id": 1})])
    return settings.data_dir


def test_path_of_a_table_with_upper_case_letters_is_its_encoded_file(capsys: Any, upper_case: Path):
    _, out, _ = run(capsys, "path", "Users", "--data-dir", str(upper_case))

    path = Path(out.strip())
    assert path.name == "%55sers.sqlite3" and path.is_file()
    with sqlite3.connect(path) as db:
        assert db.execute('SELECT id FROM "Users"').fetchall() == [(1,)]
    db.close()


def test_path_of_a_missing_table_is_an_error(capsys: Any, loaded: Path):
    code, out, err = run(capsys, "path", "nope", "--data-dir", str(loaded))

    assert (code, out) == (1, "")
    assert "no client has a table 'nope'" in err


def test_rows_prints_json_lines_without_a_client_id_when_one_client_has_the_table(
    capsys: Any, loaded: Path
):
    code, out, err = run(capsys, "rows", "users", "--data-dir", str(loaded))

    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["name"]) for r in rows] == [(1, "u1"), (2, "u2")]
    assert rows[0]["_sdc_sequence"] == 1


def test_rows_as_csv_of_a_subtable(capsys: Any, loaded: Path):
    code, out, _ = run(
        capsys,
        "rows",
        "orders__lines",
        "--format",
        "csv",
        "--client-id",
        str(CLIENT_ID),
        "--integration",
        "import_api",
        "--data-dir",
        str(loaded),
    )

    assert code == 0
    assert [r["sku"] for r in csv.DictReader(io.StringIO(out))] == ["a", "b"]


@pytest.fixture
async def two_clients(loaded: Path, api: Api, settings: Settings) -> Path:
    other = make_token(settings, client_id=42)
    await api.push([{**record("users", 1, {"id": 1}), "client_id": 42}], token=other)
    return loaded


def test_rows_of_a_table_two_clients_have_asks_for_a_client_id(capsys: Any, two_clients: Path):
    loaded = two_clients

    code, out, err = run(capsys, "rows", "users", "--data-dir", str(loaded))

    assert (code, out) == (1, "")
    assert "--client-id" in err and "42" in err


def test_rows_of_a_missing_table_fails(capsys: Any, loaded: Path):
    code, out, err = run(capsys, "rows", "nope", "--data-dir", str(loaded))

    assert (code, out) == (1, "") and err.startswith("importapi-lite: ")


# --- reset ---------------------------------------------------------------------------------------


def test_reset_one_table(capsys: Any, loaded: Path, settings: Settings):
    code, out, _ = run(capsys, "reset", "--table", "users", "--data-dir", str(loaded))

    assert code == 0 and "removed" in out
    assert not db_path(settings, "users").exists()
    assert db_path(settings, "orders").exists()


def test_reset_one_client_then_everything_keeps_tokens(
    capsys: Any, loaded: Path, settings: Settings
):
    code, _, _ = run(capsys, "reset", "--client-id", str(CLIENT_ID), "--data-dir", str(loaded))
    assert code == 0 and not (loaded / str(CLIENT_ID)).exists()

    code, out, _ = run(capsys, "reset", "--data-dir", str(loaded))

    assert code == 0 and "0 client(s)" in out
    assert (loaded / TOKENS_FILE).exists()


def test_reset_of_a_table_that_is_not_there_says_so(capsys: Any, loaded: Path):
    code, out, err = run(
        capsys, "reset", "--table", "ghost", "--client-id", "7723", "--data-dir", str(loaded)
    )

    assert code == 0 and out.startswith("nothing to remove")


# --- the new settings ----------------------------------------------------------------------------


def test_journal_size_and_admin_token_come_from_the_environment_and_flags_win():
    env = {"IMPORTAPI_LITE_JOURNAL_SIZE": "5", "IMPORTAPI_LITE_ADMIN_TOKEN": "from-env"}

    from_env = Settings.from_env(env)
    flagged = Settings.from_env(env, journal_size=7, admin_token="from-flag")

    assert (from_env.journal_size, from_env.admin_token) == (5, Secret("from-env"))
    assert (flagged.journal_size, flagged.admin_token) == (7, Secret("from-flag"))
    assert Settings().journal_size == 1000 and Settings().admin_token is None


def test_the_admin_token_never_shows_in_the_settings_repr():
    settings = Settings(admin_token="hunter2-hunter2")

    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("IMPORTAPI_LITE_JOURNAL_SIZE", "-1"), ("IMPORTAPI_LITE_JOURNAL_SIZE", "many")],
)
def test_a_bad_journal_size_names_the_variable(name: str, value: str):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_a_blank_admin_token_is_refused():
    with pytest.raises(ValueError, match="admin_token"):
        Settings(admin_token="  ")
