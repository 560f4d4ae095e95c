"""What the real-client tests share: the clients' venvs, running a client, Singer input and config.

Each official client lives in a venv of its own, built once per test session by ``install.sh``
(every venv in parallel, idempotent: nothing to do once built). The venvs sit beside the repo's
``.venv`` as ``.venv-clients`` and ``.venv-clients-<client>``; set ``IMPORTAPI_LITE_CLIENTS_VENV``
to put them elsewhere (the others are named after it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CLIENTS = Path(__file__).resolve().parent
REPO = CLIENTS.parents[1]
PREFIX = Path(os.environ.get("IMPORTAPI_LITE_CLIENTS_VENV", REPO / ".venv-clients"))

# install.sh's names; the first venv also holds stitchclient 1.0.1.
TARGET_STITCH_4 = "target-stitch-4.0.3"
TARGET_STITCH_1 = "target-stitch-1.9.1"
TARGET_STITCH_3 = "target-stitch-3.2.2"
PYTHON_STITCH_CLIENT_0_8 = "python-stitch-client-0.8.0.post1"
TAP_CSV_FOLDER = "tap-csv-folder-0.0.1a1"
CLIENT_NAMES = (
    TARGET_STITCH_4,
    TARGET_STITCH_1,
    TARGET_STITCH_3,
    PYTHON_STITCH_CLIENT_0_8,
    TAP_CSV_FOLDER,
)


@functools.cache
def install_clients() -> dict[str, Path]:
    """Build every client venv not built yet, all at once (once per test session): name -> bin."""
    result = subprocess.run(
        ["bash", str(CLIENTS / "install.sh"), str(PREFIX)], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
    assert result.returncode == 0, "installing the official clients failed"
    return {name: venv_dir(name) / "bin" for name in CLIENT_NAMES}


def venv_dir(name: str) -> Path:
    return PREFIX if name == TARGET_STITCH_4 else Path(f"{PREFIX}-{name}")


def client_env() -> dict[str, str]:
    """The environment for a client: no proxy variables (the server is on loopback)."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


async def run(*args: str | Path, stdin: str = "", timeout: float = 120) -> tuple[int, str, str]:
    """Run a client without blocking the event loop the server under test runs on."""
    process = await asyncio.create_subprocess_exec(
        *map(str, args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "target-config.json"
    path.write_text(json.dumps(config))
    return path


def batch_urls_config(batch_url: str, token: str, client_id: int) -> dict[str, Any]:
    """target-stitch 3.x and 4.x: every key they need (``client_id`` is checked, never sent)."""
    return {
        "client_id": client_id,
        "token": token,
        "small_batch_url": batch_url,
        "big_batch_url": batch_url,
        "batch_size_preferences": {},
        "disable_collection": True,  # no usage ping: all traffic stays on 127.0.0.1
    }


def stitch_url_config(stitch_url: str, token: str) -> dict[str, Any]:
    """target-stitch 1.x: one URL, used as is unless it ends in ``/import/push``, which becomes
    ``/import/batch``; no ``client_id``, no ``batch_size_preferences``."""
    return {"token": token, "stitch_url": stitch_url, "disable_collection": True}


ACCOUNTS_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}},
}


def singer_stream(version: int, ids: list[int], schema: dict[str, Any] | None = None) -> str:
    """A full-table sync of ``accounts`` as a tap sends it: ACTIVATE_VERSION around the RECORDs."""
    lines: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": "accounts",
            "schema": schema or ACCOUNTS_SCHEMA,
            "key_properties": ["id"],
        },
        {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version},
    ]
    lines += [
        {
            "type": "RECORD",
            "stream": "accounts",
            "record": {"id": i, "name": f"a{i}-v{version}"},
            "version": version,
            "time_extracted": "2026-11-01T00:00:00.000000Z",
        }
        for i in ids
    ]
    lines += [
        {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version},
        {"type": "STATE", "value": {"bookmarks": {"accounts": {"version": version}}}},
    ]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


# What stitchclient_push.py pushes (table "pc"), as it lands: typed by its Transit tags.
STITCHCLIENT_ROWS = [
    {
        "id": i,
        "at": "2026-01-02T03:04:05.000000Z",
        "price": "12.345",
        "big": 2**60 + i,
        "uid": f"00000000-0000-0000-0000-00000000000{i}",
        "ok": int(i % 2 == 0),
    }
    for i in range(3)
]
# Its subtable pc__nested__k: (_sdc_source_key_id, _sdc_level_0_id, value).
STITCHCLIENT_NESTED = [(i, n, n + 1) for i in range(3) for n in range(3)]
