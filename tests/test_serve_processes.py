"""``importapi-lite serve --processes N``: N server processes on one port, sharing the SQLite
files or one PostgreSQL database.

Senders push concurrently with interleaved sequences, new columns and two tables in either order;
the processes must converge exactly as one would (newest sequence wins, every column made once),
every answer a 2xx. A process that dies is started again. A token revoked (by the CLI, another
process) stops working in every process within a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from importapi_lite import Settings
from importapi_lite.cli import main

from .helpers import (
    BOTH_DESTINATIONS,
    CLIENT_ID,
    children_of,
    db_rows,
    make_token,
    rejected_rows,
    serving,
)

pytestmark = [pytest.mark.serve, BOTH_DESTINATIONS]

TABLES = ("shared", "second")
SENDERS = 6
ROUNDS = 15
KEYS = 12


def push(url: str, token: str, records: list[dict[str, object]]) -> int:
    request = urllib.request.Request(
        url + "/v2/import/push",
        data=json.dumps(records).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, str, Settings, subprocess.Popen[bytes]]]:
    token = make_token(settings)
    # From the environment, as documented.
    env = {"IMPORTAPI_LITE_PROCESSES": "2", "IMPORTAPI_LITE_DESTINATION": settings.destination}
    args = ["--workers", "0", "--durability", "fast"]
    with serving(settings.data_dir, *args, env=env) as server:
        yield server.url, token, settings, server.process


def test_two_processes_converge_exactly_under_interleaved_senders_and_new_columns(
    served: tuple[str, str, Settings, subprocess.Popen[bytes]],
) -> None:
    url, token, settings, process = served
    assert len(children_of(process.pid)) == 2
    statuses: list[int] = []
    expected: dict[int, tuple[int, dict[str, object]]] = {}  # key -> (sequence, data)
    lock = threading.Lock()

    def sender(index: int) -> None:
        for round_ in range(ROUNDS):
            sequence = round_ * SENDERS + index  # interleaved: every sender's are distinct
            records = []
            for key in range(KEYS):
                # Each round brings a column no one sent before, from whichever sender is first.
                data = {"id": key, "v": sequence, f"c{round_}": index, "s": f"r{round_}"}
                records += [record(table, sequence, data) for table in TABLES]
                with lock:
                    if key not in expected or expected[key][0] < sequence:
                        expected[key] = (sequence, data)
            if index % 2:
                records.reverse()  # the two tables in either order: no deadlock either way
            status = push(url, token, records)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(statuses) == {201}
    columns = {"id", "v", "s", *(f"c{n}" for n in range(ROUNDS))}
    for table in TABLES:
        rows = db_rows(settings, table, order_by="id")
        assert set(rows[0]) == columns  # each column made once, by one of the processes
        assert rows == [
            {c: expected[key][1].get(c) for c in sorted(columns, key=list(rows[0]).index)}
            for key in range(KEYS)
        ]
    assert rejected_rows(settings) == []


def record(table: str, sequence: int, data: dict[str, object]) -> dict[str, object]:
    return {
        "client_id": CLIENT_ID,
        "table_name": table,
        "sequence": sequence,
        "action": "upsert",
        "key_names": ["id"],
        "data": data,
    }


def test_a_token_revoked_elsewhere_stops_working_in_every_process_within_a_second(
    served: tuple[str, str, Settings, subprocess.Popen[bytes]],
) -> None:
    url, token, settings, _ = served
    assert push(url, token, [record("t", 1, {"id": 1})]) == 201
    environ = {"IMPORTAPI_LITE_DESTINATION": settings.destination}
    revoke = ["tokens", "revoke", token, "--data-dir", str(settings.data_dir)]
    assert main(revoke, environ=environ) == 0

    time.sleep(1.0)

    # A new connection each: whichever process the kernel hands it to.
    assert [push(url, token, [record("t", 2, {"id": 1})]) for _ in range(10)] == [401] * 10


@pytest.mark.crash
def test_a_server_process_that_dies_is_started_again(
    served: tuple[str, str, Settings, subprocess.Popen[bytes]],
) -> None:
    url, token, _, process = served
    first, second = children_of(process.pid)

    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while first in children_of(process.pid) or len(children_of(process.pid)) < 2:
        assert time.monotonic() < deadline, "no new process"
        time.sleep(0.1)

    assert second in children_of(process.pid)
    for _ in range(10):  # whichever process the kernel hands each connection to
        assert push(url, token, [record("t", 1, {"id": 1})]) == 201
