"""Names to file paths: the only place a client-supplied name reaches the filesystem.

Layout under the data directory::

    <client_id>/<integration>/<table>.sqlite3       one database per top-level table
    <client_id>/<integration>/_sdc_rejected.sqlite3 records that could not load

Encoding (``encode_name``; ``decode_name`` reverses it): the characters ``a-z 0-9 _ -`` stand for
themselves; every other character, upper-case letters included, becomes ``%XX`` per UTF-8 byte
(upper-case too so that ``Users`` and ``users`` stay apart on case-insensitive filesystems). No
encoded name contains ``/``, ``.``, NUL or a drive letter, so none can leave its folder. Windows
device names (``con``, ``nul``, ``com1`` …) get their last character encoded as well. A name whose
encoding exceeds ``MAX_FILE_NAME_BYTES`` cannot be stored: ``NameTooLong``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import unquote

from ...plan.names import table_name_problem

DB_SUFFIX = ".sqlite3"
MAX_FILE_NAME_BYTES = 240  # under the 255 of ext4/APFS/NTFS, with room for -wal and -shm
REJECTED_TABLE = "_sdc_rejected"

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_WINDOWS_DEVICE = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])", re.ASCII)


class NameTooLong(ValueError):
    pass


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def encode_name(name: str) -> str:
    """A file-name-safe, reversible spelling of ``name`` (see the module docstring)."""
    encoded = "".join(c if c in _SAFE else _escape(c) for c in name)
    if _WINDOWS_DEVICE.fullmatch(encoded):
        encoded = encoded[:-1] + _escape(encoded[-1])
    if not encoded or len(encoded) + len(DB_SUFFIX) + len("-wal") > MAX_FILE_NAME_BYTES:
        raise NameTooLong(f"name of {len(name)} characters is too long to store")
    return encoded


def decode_name(encoded: str) -> str:
    return unquote(encoded, encoding="utf-8", errors="surrogatepass")


def integration_dir(data_dir: Path, client_id: int, integration: str) -> Path:
    return data_dir / str(int(client_id)) / encode_name(integration)


def rejected_path(data_dir: Path, client_id: int, integration: str) -> Path:
    """The database file of an integration's ``_sdc_rejected`` table."""
    return integration_dir(data_dir, client_id, integration) / (REJECTED_TABLE + DB_SUFFIX)


@functools.lru_cache(maxsize=1024)  # the encoding is pure and costs more than a request's SQL
def table_path(data_dir: Path, client_id: int, integration: str, table_name: str) -> Path:
    """The database file of a top-level table (its subtables live in the same file)."""
    return integration_dir(data_dir, client_id, integration) / (encode_name(table_name) + DB_SUFFIX)


def table_name_of(path: Path) -> str:
    """The table a database file holds: the inverse of ``table_path`` for the last component."""
    return decode_name(path.name.removesuffix(DB_SUFFIX))


def table_problem(data_dir: Path, client_id: int, integration: str, table_name: str) -> str | None:
    """Why this destination cannot hold a table of this name, or None: the loading model's
    rules (``plan.names``), then the length of its file name. Every load asks this before it
    opens a table's file, so no name reaches a file it must not (``_sdc_rejected``, say)."""
    problem = table_name_problem(table_name)
    if problem is not None:
        return problem
    try:
        table_path(data_dir, client_id, integration, table_name)
    except NameTooLong:
        return "Table name is too long to store"
    return None
