"""Disk full and a read-only data directory (``store/sqlite/disk.py``, end to end).

Pushes and batches answer a Stitch-shaped 503, no table is half-applied, ``/v2/import/status``
(and readyz) say why, and the server recovers by itself once the disk takes writes again; the
client's retry converges on a clean run's state.

The room or the right to write is taken away for real, never by mocking our store:

- a small tmpfs as the data directory, filled with a file: needs ``mount`` to work (root with
  CAP_SYS_ADMIN); elsewhere those tests skip and say so;
- a read-only bind mount stacked on the data directory (same need), or ``chmod 555`` when not
  root (root writes through it): each variant skips where it cannot work;
- a file size limit (``RLIMIT_FSIZE``) put on a server process of its own with ``prlimit``: needs
  no privilege, so the core behaviour is tested on every machine. SQLite reports the failed write
  as an I/O error rather than SQLITE_FULL, but the server's answer must be the same.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importapi_lite import Settings, create_app
from importapi_lite.admin.routes import ADMIN_PREFIX
from importapi_lite.store.admin_token import ensure_admin_token
from importapi_lite.store.sqlite.paths import integration_dir
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import (
    CLIENT_ID,
    Api,
    Reply,
    db_path,
    db_rows,
    free_port,
    make_token,
    record,
    rejected_rows,
)

resource = pytest.importorskip("resource")  # POSIX only: none of this runs on Windows

SERVICE_UNAVAILABLE = {"status": "ERROR", "message": "Service Unavailable"}
BIG = "x" * 300_000  # more than the file size limit below, and than the gap left on the tmpfs


# --- helpers -------------------------------------------------------------------------------------


def run_mount(*args: str) -> None:
    """Run ``mount``; skip the test, with mount's own words, where this machine forbids it."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command on this machine")
    if done.returncode != 0:
        pytest.skip(
            f"mount {' '.join(args)} is not permitted here (needs root with "
            f"CAP_SYS_ADMIN): {done.stderr.strip()}"
        )


def unmount(path: Path) -> None:
    done = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:  # still busy: detach it anyway, never leave a mount behind
        subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 8 MiB tmpfs, unmounted after the test (and after its server has closed)."""
    if sys.platform != "linux":
        pytest.skip("tmpfs is Linux's")
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    run_mount("-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount_point))
    try:
        yield mount_point
    finally:
        unmount(mount_point)


def fill(directory: Path, leave: int = 0) -> Path:
    """Write a file until the file system is full, then free ``leave`` bytes of it again."""
    path = directory / "filler"
    block = bytes(64 * 1024)
    with path.open("wb", buffering=0) as file:
        with pytest.raises(OSError) as full:
            while True:
                file.write(block)
    assert full.value.errno == errno.ENOSPC
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave))
    return path


async def server(aiohttp_client: Any, data_dir: Path, **settings: Any) -> tuple[Api, Settings]:
    config = Settings(data_dir=data_dir, port=0, **settings)
    return Api(await aiohttp_client(create_app(config)), make_token(config)), config


async def status(api: Api) -> Reply:
    return await api.request("GET", "/v2/import/status", token=None, content_type=None)


async def readyz(api: Api, settings: Settings) -> Reply:
    admin = ensure_admin_token(settings.data_dir)
    return await api.request("GET", ADMIN_PREFIX + "/readyz", token=admin, content_type=None)


async def wait_for_status(api: Api, code: int, timeout: float = 10) -> Reply:
    """Poll the status endpoint (and nothing else) until it answers ``code``: it looks at the
    disk at most once a second, unless a write has failed since."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await status(api)
        if reply.status == code or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


def assert_error_status(reply: Reply, *words: str) -> None:
    assert reply.status == 503, reply
    assert reply.body["name"] == "pipeline.gate" and reply.body["status"] == "ERROR"
    for word in words:
        assert word in reply.body["reason"], reply.body["reason"]


def stored_state(data_dir: Path) -> dict[tuple[str, str], Any]:
    """Every table of every database of the test client, read back with plain sqlite3: columns
    and rows, without the times (``*_at``) that differ between two runs. Each database must pass
    ``PRAGMA integrity_check``."""
    state = {}
    for path in sorted(integration_dir(data_dir, CLIENT_ID, DEFAULT_INTEGRATION).glob("*.sqlite3")):
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], path
            names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            for (name,) in names.fetchall():
                cursor = db.execute(f'SELECT * FROM "{name}" ORDER BY rowid')
                columns = [d[0] for d in cursor.description]
                keep = [i for i, c in enumerate(columns) if not c.endswith("_at")]
                rows = [tuple(row[i] for i in keep) for row in cursor]
                state[(path.name, name)] = ([columns[i] for i in keep], rows)
    return state


async def clean_run(aiohttp_client: Any, data_dir: Path, *requests: Any) -> Any:
    """The state the same requests (a list: a push; a dict: a batch) leave on a fresh server
    when every one succeeds the first time."""
    api, _ = await server(aiohttp_client, data_dir)
    for body in requests:
        reply = await (api.push(body) if isinstance(body, list) else api.batch(body))
        assert reply.status == 201, reply
    return stored_state(data_dir)


def rows_of(state: dict[tuple[str, str], Any], key: tuple[str, str]) -> list[Any]:
    return state[key][1] if key in state else []


def users(*ids: int, sequence: int = 1) -> list[dict[str, Any]]:
    return [record("users", sequence, {"id": i, "name": f"user {i}"}) for i in ids]


# --- a full tmpfs --------------------------------------------------------------------------------


async def test_a_full_disk_answers_503_reports_it_on_status_and_recovers_by_itself(
    aiohttp_client: Any, tmpfs: Path, tmp_path: Path
) -> None:
    api, settings = await server(aiohttp_client, tmpfs / "data")
    first = users(1, 2)
    assert (await api.push(first)).status == 201
    assert (await status(api)).status == 200
    # Existing table, and a new one: its CREATE TABLE (even its database file) meets the full disk.
    second = [*users(3, sequence=2), record("orders", 2, {"id": 1, "total": 9.5})]
    batch = {
        "table_name": "accounts",
        "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "key_names": ["id"],
        "messages": [{"action": "upsert", "sequence": 3, "data": {"id": 1}}],
    }
    admin = ensure_admin_token(settings.data_dir)  # while it still can be written
    ready_before = await readyz(api, settings)
    filler = fill(tmpfs)

    full_status = await wait_for_status(api, 503)  # no write has failed yet: statvfs tells
    ready = await readyz(api, settings)
    pushed = await api.push(second)
    batched = await api.batch(batch)

    assert ready_before.status == 200
    assert_error_status(full_status, "disk full", str(settings.data_dir))
    assert (ready.status, ready.body["error"]) == (503, "not_ready")
    assert "disk full" in ready.body["message"]
    assert (pushed.status, pushed.body) == (503, SERVICE_UNAVAILABLE)
    assert (batched.status, batched.body) == (503, SERVICE_UNAVAILABLE)
    assert_error_status(await status(api), "disk full", "the last write failed at")
    # orders' database was not half-created: what is stored still lists (it would 500 if so).
    assert not db_path(settings, "orders").exists()
    listing = await api.request("GET", ADMIN_PREFIX + "/clients", token=admin, content_type=None)
    assert listing.status == 200

    filler.unlink()
    recovered = await wait_for_status(api, 200)  # no push, no restart: the status call alone
    assert (recovered.status, recovered.body["reason"]) == (200, None)
    assert (await readyz(api, settings)).status == 200
    assert (await api.push(second)).status == 201  # what a Stitch client does: retry as sent
    assert (await api.batch(batch)).status == 201
    assert db_rows(settings, "users") == [{"id": i, "name": f"user {i}"} for i in (1, 2, 3)]
    clean = await clean_run(aiohttp_client, tmp_path / "clean", first, second, batch)
    assert stored_state(settings.data_dir) == clean


async def test_a_push_whose_tables_run_out_of_space_midway_leaves_each_table_whole(
    aiohttp_client: Any, tmpfs: Path, tmp_path: Path
) -> None:
    api, settings = await server(aiohttp_client, tmpfs / "data")
    first = [*users(1), record("docs", 1, {"id": 1, "body": "short"})]
    assert (await api.push(first)).status == 201
    before = stored_state(settings.data_dir)
    # Room for a row or two, not for the big document: which tables commit depends on which
    # transaction takes the last pages first, so check only that each table is all or nothing.
    second = [
        *users(2, 3, sequence=2),
        record("docs", 2, {"id": 2, "body": BIG}),
        record("orders", 2, {"id": 1, "total": 9.5}),
    ]
    filler = fill(tmpfs, leave=128 * 1024)

    reply = await api.push(second)

    assert (reply.status, reply.body) == (503, SERVICE_UNAVAILABLE)
    filler.unlink()
    midway = stored_state(settings.data_dir)
    after_ok = await clean_run(aiohttp_client, tmp_path / "clean", first, second)
    for key in midway.keys() | after_ok.keys():
        assert rows_of(midway, key) in (rows_of(before, key), rows_of(after_ok, key)), key
    assert (await api.push(second)).status == 201
    assert stored_state(settings.data_dir) == after_ok


# --- a read-only data directory ------------------------------------------------------------------


class ReadOnly:
    """Take the right to write in a data directory away, and give it back."""

    def __init__(self, how: str, data_dir: Path) -> None:
        self.how = how
        self.data_dir = data_dir
        self.is_on = False

    def on(self) -> None:
        if self.how == "bind mount":
            # Stacked on the directory: files the server holds open stay writable (as they would
            # not on a real remount; remounting read-only is refused while files are open for
            # writing), but nothing new can be created: databases, their -wal and -shm, probes.
            run_mount("--bind", str(self.data_dir), str(self.data_dir))
            self.is_on = True
            run_mount("-o", "remount,bind,ro", str(self.data_dir))
        else:
            for folder in self._folders():
                folder.chmod(0o555)
            self.is_on = True

    def off(self) -> None:
        if not self.is_on:
            return
        if self.how == "bind mount":
            unmount(self.data_dir)
        else:
            for folder in self._folders():
                folder.chmod(0o755)
        self.is_on = False

    def _folders(self) -> list[Path]:
        return [self.data_dir, *(p for p in self.data_dir.rglob("*") if p.is_dir())]


def writes_through_chmod(folder: Path) -> bool:
    folder.mkdir(mode=0o555)
    try:
        (folder / "file").touch()
    except PermissionError:
        return False
    finally:
        folder.chmod(0o755)
    return True


@pytest.fixture(params=["bind mount", "chmod"])
def read_only(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadOnly]:
    if request.param == "bind mount" and sys.platform != "linux":
        pytest.skip("the read-only bind mount variant is Linux's")
    if request.param == "chmod" and writes_through_chmod(tmp_path / "probe"):
        pytest.skip(
            "this user writes through chmod 555 (root: CAP_DAC_OVERRIDE); "
            "the bind mount variant tests read-only instead"
        )
    switch = ReadOnly(request.param, tmp_path / "data")
    try:
        yield switch
    finally:
        switch.off()


async def test_a_read_only_data_directory_answers_503_and_recovers_once_writable(
    aiohttp_client: Any, read_only: ReadOnly, tmp_path: Path
) -> None:
    # One open database at a time: pushing orders closes users, whose -wal and -shm then go.
    api, settings = await server(aiohttp_client, read_only.data_dir, max_open_tables=1)
    first = users(1)
    orders = [record("orders", 1, {"id": 1, "total": 9.5})]
    assert (await api.push(first)).status == 201
    assert (await api.push(orders)).status == 201
    assert not Path(f"{db_path(settings, 'users')}-shm").exists()
    again = users(2, sequence=2)  # to the WAL database whose -shm cannot be created now
    new = [record("events", 1, {"id": 1})]  # a table whose database cannot be created now
    read_only.on()

    replies = [await api.push(again), await api.push(new)]
    status_reply = await status(api)

    assert [(r.status, r.body) for r in replies] == [(503, SERVICE_UNAVAILABLE)] * 2
    assert_error_status(status_reply, "read-only" if read_only.how == "bind mount" else "not writ")
    read_only.off()
    assert (await wait_for_status(api, 200)).status == 200
    assert [(await api.push(again)).status, (await api.push(new)).status] == [201, 201]
    clean = await clean_run(aiohttp_client, tmp_path / "clean", first, orders, again, new)
    assert stored_state(settings.data_dir) == clean


async def test_rejections_that_cannot_be_logged_answer_503_and_are_logged_once_on_retry(
    aiohttp_client: Any, read_only: ReadOnly, tmp_path: Path
) -> None:
    api, settings = await server(aiohttp_client, read_only.data_dir)
    first = users(1)
    assert (await api.push(first)).status == 201  # users stays open, so it can still commit
    # id and ID are one SQLite column: that record goes to _sdc_rejected, a new database.
    second = [*users(2, sequence=2), record("users", 2, {"id": 3, "ID": 3})]
    read_only.on()

    reply = await api.push(second)

    assert (reply.status, reply.body) == (503, SERVICE_UNAVAILABLE)
    read_only.off()
    assert [r["id"] for r in db_rows(settings, "users")] == [1, 2]  # committed before the log
    assert rejected_rows(settings) == []
    assert (await wait_for_status(api, 200)).status == 200
    assert (await api.push(second)).status == 201
    assert [r["reason"] for r in rejected_rows(settings)] == ["Field collision on ID"]
    clean = await clean_run(aiohttp_client, tmp_path / "clean", first, second)
    assert stored_state(settings.data_dir) == clean


# --- a file size limit on a server process: runs everywhere --------------------------------------

LIMIT = 256 * 1024


@contextmanager
def server_process(data_dir: Path, log: Path) -> Iterator[tuple[int, str]]:
    """``importapi-lite serve`` in a process of its own: its pid and its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    command = [sys.executable, "-m", "importapi_lite", "serve", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/v2/import/status", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield process.pid, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class LimitedServer(Api):
    """A server process whose file size limit the test lowers (``limit``) and restores
    (``lift``), as a full disk takes room away and gives it back."""

    def __init__(self, session: Any, token: str, settings: Settings, pid: int) -> None:
        super().__init__(session, token)
        self.settings = settings
        self.pid = pid
        self.original = resource.prlimit(pid, resource.RLIMIT_FSIZE)

    def limit(self) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (LIMIT, self.original[1]))

    def lift(self) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.original)


@pytest.fixture
async def limited(tmp_path: Path) -> Any:
    if not hasattr(resource, "prlimit"):
        pytest.skip("setting another process's limits (prlimit) is Linux's")
    settings = Settings(data_dir=tmp_path / "data", port=0)
    token = make_token(settings)
    with server_process(settings.data_dir, tmp_path / "server.log") as (pid, url):
        async with aiohttp.ClientSession(base_url=url) as session:
            yield LimitedServer(session, token, settings, pid)


@pytest.mark.serve  # `limited`: a server process under prlimit
async def test_running_out_of_room_in_one_table_keeps_the_others_commit_and_retry_converges(
    limited: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    first = users(1)
    assert (await limited.push(first)).status == 201
    second = [*users(2, sequence=2), record("docs", 2, {"id": 1, "body": BIG})]
    limited.limit()
    ok_before = await status(limited)

    reply = await limited.push(second)
    after = await status(limited)

    assert ok_before.status == 200  # small writes still fit: nothing has failed yet
    assert (reply.status, reply.body) == (503, SERVICE_UNAVAILABLE)
    assert_error_status(after, "disk full", "the last write failed at")
    # users committed its row; docs, new, has not half of one: its table was never created.
    assert [r["id"] for r in db_rows(limited.settings, "users")] == [1, 2]
    assert db_rows(limited.settings, "docs") == []
    assert_error_status(await status(limited), "disk full")  # still: nothing has changed
    limited.lift()
    assert (await wait_for_status(limited, 200)).status == 200
    assert (await limited.push(second)).status == 201
    clean = await clean_run(aiohttp_client, tmp_path / "clean", first, second)
    assert stored_state(limited.settings.data_dir) == clean


@pytest.mark.serve  # `limited`: a server process under prlimit
async def test_a_rejection_log_that_cannot_grow_answers_503_and_logs_once_on_retry(
    limited: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    first = users(1)
    assert (await limited.push(first)).status == 201
    second = [*users(2, sequence=2), record("users", 2, {"id": 3, "ID": 3, "body": BIG})]
    limited.limit()

    reply = await limited.push(second)

    assert (reply.status, reply.body) == (503, SERVICE_UNAVAILABLE)
    assert [r["id"] for r in db_rows(limited.settings, "users")] == [1, 2]
    assert rejected_rows(limited.settings) == []
    limited.lift()
    assert (await wait_for_status(limited, 200)).status == 200
    assert (await limited.push(second)).status == 201
    assert [r["reason"] for r in rejected_rows(limited.settings)] == ["Field collision on ID"]
    clean = await clean_run(aiohttp_client, tmp_path / "clean", first, second)
    assert stored_state(limited.settings.data_dir) == clean
