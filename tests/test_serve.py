"""``importapi-lite serve`` as a user runs it: a real process, the printed curl pasted into bash."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from importapi_lite.store.sqlite import SCRATCH_DIR
from importapi_lite.store.sqlite.paths import table_path

from .helpers import free_port

pytestmark = pytest.mark.serve


def wait_until_serving(port: str) -> None:
    """The banner is printed just before the socket is bound: wait for the status endpoint."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/import/status") as response:
                assert response.status == 200
                return
        except OSError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)


# With its worker processes (one per core, the default) and with none.
@pytest.fixture(params=["-1", "0"], ids=["workers", "no-workers"])
def server(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], list[str], Path]]:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    env["IMPORTAPI_LITE_PORT"] = str(free_port())  # from the environment, as documented
    env["IMPORTAPI_LITE_WORKERS"] = request.param
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importapi_lite",
            "serve",
            "--dev-token",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    while not any(line.strip().endswith("}}]'") for line in lines):
        line = process.stdout.readline()
        assert line, "server exited early:\n" + "".join(lines)
        lines.append(line)
    wait_until_serving(env["IMPORTAPI_LITE_PORT"])
    yield process, lines, data_dir
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    process.stdout.close()


def test_serve_prints_url_data_dir_and_a_curl_that_pushes_with_the_dev_token(server: tuple) -> None:
    process, lines, data_dir = server
    text = "".join(lines)
    assert "http://127.0.0.1:" in text  # loopback unless told otherwise
    assert f"data directory: {data_dir}" in text
    curl = text[text.index("curl") :]
    token = (data_dir / "dev-token").read_text().strip()
    assert token not in text  # the secret stays in its file
    assert (data_dir / "dev-token").stat().st_mode & 0o077 == 0
    result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True)
    assert result.stdout == '{"status":"OK","message":"Batch Accepted!"}'
    path = table_path(data_dir, 7723, "import_api", "customers")
    with sqlite3.connect(path) as db:
        assert db.execute('SELECT id, name FROM "customers"').fetchall() == [(1, "Finn")]
    db.close()


def test_serve_reuses_the_saved_dev_token_and_stops_cleanly_on_sigterm(
    server: tuple, tmp_path: Path
) -> None:
    process, _, data_dir = server
    token = (data_dir / "dev-token").read_text()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    again = subprocess.run(
        [sys.executable, "-m", "importapi_lite", "tokens", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.count("\t7723\t") == 1
    from importapi_lite.cli import ensure_dev_token
    from importapi_lite.settings import Settings

    ensure_dev_token(Settings(data_dir=data_dir))
    assert (data_dir / "dev-token").read_text() == token


def test_serve_announces_the_admin_api_whose_token_the_cli_prints(server: tuple) -> None:
    _, lines, data_dir = server
    text = "".join(lines)
    url = text[text.index("admin API: ") + len("admin API: ") :].split()[0]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/_importapi/v1/")
    printed = subprocess.run(
        [sys.executable, "-m", "importapi_lite", "admin-token", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    request = urllib.request.Request(
        url + "clients", headers={"Authorization": "Bearer " + printed.stdout.strip()}
    )
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
    assert body["clients"][0]["client_id"] == 7723


def test_serve_loads_a_body_big_enough_for_its_workers(server: tuple) -> None:
    _, lines, data_dir = server
    text = "".join(lines)
    url = text[text.index("http://127.0.0.1:") :].split()[0]
    records = [
        {
            "client_id": 7723,
            "table_name": "big",
            "sequence": i,
            "action": "upsert",
            "key_names": ["id"],
            "data": {"id": i, "text": "x" * 100, "tags": [i]},
        }
        for i in range(3000)
    ]
    body = json.dumps(records).encode()
    assert len(body) > 262_144  # --offload-bytes: a worker's, where there are workers
    request = urllib.request.Request(
        url + "/v2/import/push",
        data=body,
        headers={
            "Authorization": "Bearer " + (data_dir / "dev-token").read_text().strip(),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
    with sqlite3.connect(table_path(data_dir, 7723, "import_api", "big")) as db:
        assert db.execute('SELECT count(*) FROM "big"').fetchone() == (3000,)
        assert db.execute('SELECT count(*) FROM "big__tags"').fetchone() == (3000,)
    db.close()
    assert not list((data_dir / SCRATCH_DIR).iterdir())


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_idle_kept_alive_connections_do_not_hold_their_last_body(server: tuple) -> None:
    # aiohttp keeps a connection's last request until the next one arrives; a body left on
    # it stayed in memory for as long as the client kept the connection open.
    process, lines, data_dir = server
    text = "".join(lines)
    port = int(text[text.index("http://127.0.0.1:") :].split()[0].rsplit(":", 1)[1])
    headers = {
        "Authorization": "Bearer " + (data_dir / "dev-token").read_text().strip(),
        "Content-Type": "application/json",
    }

    def validate(connection: http.client.HTTPConnection, pad: str) -> None:
        record = {"client_id": 7723, "table_name": "t", "sequence": 1, "action": "upsert"}
        body = json.dumps([{**record, "key_names": ["id"], "data": {"id": 1, "pad": pad}}])
        connection.request("POST", "/v2/import/validate", body.encode(), headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200

    warm = http.client.HTTPConnection("127.0.0.1", port)
    validate(warm, "w" * 4_000_000)
    before = _rss_bytes(process.pid)
    connections = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(24)]
    for i, connection in enumerate(connections):  # each left open, idle, after its answer
        validate(connection, chr(ord("a") + i) * 4_000_000)
    grown = _rss_bytes(process.pid) - before
    for connection in [warm, *connections]:
        connection.close()
    assert grown < 40 * 2**20, f"24 idle connections after 4 MB bodies: +{grown / 2**20:.0f} MiB"


def test_serve_logs_a_warning_when_it_rejects_records(server: tuple) -> None:
    process, lines, data_dir = server
    text = "".join(lines)
    url = text[text.index("http://127.0.0.1:") :].split()[0]
    token = (data_dir / "dev-token").read_text().strip()
    record = {"client_id": 7723, "table_name": "people", "sequence": 1, "action": "upsert"}
    record |= {"key_names": ["id"], "data": {"id": 1, "_sdc_received_at": "now"}}
    request = urllib.request.Request(
        url + "/v2/import/push",
        data=json.dumps([record]).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201  # as Stitch: accepted, then not loaded

    line = process.stdout.readline()

    assert (
        " WARNING importapi_lite.observe.rejection_log: rejected 1 record(s) of table 'people'"
        in line
    )
    assert "'Field _sdc_received_at collides with a system column'" in line
    assert '"now"' not in line and token not in line  # never the record, never the token


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return found
    for child in map(int, children):
        found |= {child, *_descendants(child)}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


@pytest.mark.crash
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_killed_server_leaves_no_worker_processes_behind(server: tuple) -> None:
    process, _, _ = server
    time.sleep(2)  # its worker processes started (warm_up)
    workers = _descendants(process.pid)
    assert process.poll() is None

    process.kill()
    process.wait(timeout=10)

    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in workers if _alive(pid)]
    assert not left, f"orphaned processes: {left}"
