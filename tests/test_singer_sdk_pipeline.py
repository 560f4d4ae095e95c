"""A Singer SDK tap reading local CSV files, piped into target-stitch 4.0.3, against a real
``importapi-lite serve`` process; rows read back from its SQLite files.

The tap is tap-csv-folder 0.0.1a1, built on singer-sdk 0.41's filesystem support: every record
carries ``_sdc_path`` (the file), ``_sdc_modified_at`` (its mtime) and ``_sdc_line_number``, and
the stream's key is (``_sdc_path``, ``_sdc_line_number``). Those ``_sdc_*`` fields are data, not
Stitch's system columns, so they must land as ordinary columns (SPEC §13.8). The pipeline runs as
a user runs it, ``tap-csv-folder --config tap.json | target-stitch -c target.json``, twice: the
second time with the first run's STATE and a changed CSV (a row changed, a row added).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from importapi_lite import Settings

from .clients.harness import (
    TAP_CSV_FOLDER,
    TARGET_STITCH_4,
    batch_urls_config,
    client_env,
    install_clients,
)
from .helpers import CLIENT_ID, db_rows, rejected_rows, serving, table_meta

pytestmark = [pytest.mark.clients, pytest.mark.serve]

SYSTEM_COLUMNS = {
    "_sdc_sequence",
    "_sdc_table_version",
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_extracted_at",
}


@pytest.fixture(scope="session")
def bins() -> dict[str, Path]:
    return install_clients()


@dataclass
class Server:
    url: str
    token: str
    settings: Settings  # only its data_dir: for the readers in helpers.py


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``importapi-lite serve --dev-token`` on a free port, as documented; stopped with SIGTERM."""
    data_dir = tmp_path / "data"
    with serving(data_dir, "--dev-token") as served:
        token = (data_dir / "dev-token").read_text().strip()
        yield Server(served.url, token, Settings(data_dir=data_dir))


def run_pipeline(
    bins: dict[str, Path], tap_config: Path, target_config: Path, state: Path | None
) -> str:
    """``tap-csv-folder --config tap.json [--state state.json] | target-stitch -c target.json``:
    both must exit 0; target-stitch's stdout (the STATE it confirms) is returned."""
    tap_args = [bins[TAP_CSV_FOLDER] / "tap-csv-folder", "--config", tap_config]
    if state is not None:
        tap_args += ["--state", state]
    tap_log = tap_config.with_suffix(".log")
    with tap_log.open("wb") as tap_err:
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_err, env=client_env())
    assert tap.stdout is not None
    target = subprocess.Popen(
        [bins[TARGET_STITCH_4] / "target-stitch", "-c", target_config],
        stdin=tap.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=client_env(),
    )
    tap.stdout.close()  # target-stitch holds the read end now
    try:
        out, err = target.communicate(timeout=120)
        tap_code = tap.wait(timeout=30)
    finally:
        for process in (tap, target):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert tap_code == 0, tap_log.read_text()
    assert target.returncode == 0, err.decode()
    return out.decode()


def write_csv(path: Path, rows: list[tuple[str, str, str]], modified_at: dt.datetime) -> None:
    """The file, with its mtime set so ``_sdc_modified_at`` is known exactly."""
    lines = ["id,name,tier", *(",".join(row) for row in rows)]
    path.write_text("\r\n".join(lines) + "\r\n")
    os.utime(path, (modified_at.timestamp(), modified_at.timestamp()))


def bookmark(path: Path, modified_at: dt.datetime) -> dict[str, Any]:
    """The STATE singer-sdk writes after reading the one file, as target-stitch echoes it."""
    partition = {
        "context": {"_sdc_path": str(path)},
        "replication_key": "_sdc_modified_at",
        "replication_key_value": modified_at.isoformat(),
    }
    return {"bookmarks": {"accounts": {"partitions": [partition]}}}


def test_tap_csv_folder_into_target_stitch_upserts_changed_rows_with_their_sdc_columns(
    server: Server, bins: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    csv_file = folder / "accounts.csv"  # one stream per file: "accounts"
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps({"path": str(folder), "read_mode": "one_stream_per_file"}))
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps(batch_urls_config(server.url + "/v2/import/batch", server.token, CLIENT_ID))
    )
    state = tmp_path / "state.json"
    first = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
    second = dt.datetime(2026, 11, 3, 9, 30, 15, tzinfo=dt.UTC)

    write_csv(csv_file, [("1", "Ann", "gold"), ("2", "Bob", "silver"), ("3", "Cy", "gold")], first)
    out = run_pipeline(bins, tap_config, target_config, state=None)
    # The tap's first STATE is empty, and target-stitch echoes no empty STATE.
    assert [json.loads(line) for line in out.splitlines()] == [bookmark(csv_file, first)]
    state.write_text(out)

    # Bob becomes Bea on the same line; Dee is a new line. Run again from the saved STATE.
    rows = [("1", "Ann", "gold"), ("2", "Bea", "bronze"), ("3", "Cy", "gold"), ("4", "Dee", "tin")]
    write_csv(csv_file, rows, second)
    out = run_pipeline(bins, tap_config, target_config, state=state)
    # The tap repeats the STATE it was given before reading; target-stitch echoes both.
    assert [json.loads(line) for line in out.splitlines()] == [
        bookmark(csv_file, first),
        bookmark(csv_file, second),
    ]

    loaded = db_rows(server.settings, "accounts", system=True, order_by="_sdc_line_number")
    assert [{k: v for k, v in r.items() if k not in SYSTEM_COLUMNS} for r in loaded] == [
        {
            "id": id_,
            "name": name,
            "tier": tier,
            "_sdc_path": str(csv_file),
            "_sdc_line_number": line,
            "_sdc_modified_at": "2026-11-03T09:30:15.000000Z",  # every row read again
        }
        for line, (id_, name, tier) in enumerate(rows, start=2)
    ]
    assert SYSTEM_COLUMNS <= set(loaded[0])
    assert all(r["_sdc_table_version"] is None for r in loaded)  # no ACTIVATE_VERSION sent
    assert all(r["_sdc_extracted_at"] is not None for r in loaded)  # the tap's time_extracted
    meta = table_meta(server.settings, "accounts")
    assert json.loads(meta["key_names"]) == ["_sdc_path", "_sdc_line_number"]
    assert json.loads(meta["bookmark_names"]) == ["_sdc_modified_at"]
    assert rejected_rows(server.settings) == []
