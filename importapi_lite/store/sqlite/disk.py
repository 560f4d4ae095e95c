"""Disk health of the data directory: faults of writes turned into 503s and remembered, and the
live check behind ``/v2/import/status`` and readyz. No aiohttp; only the SQLite destination uses it.

A failed write (SQLite full, read-only, I/O error, cannot open; or an ``OSError``) is remembered
with its kind and time until a write that began after it commits, or until the live check passes.
The live check looks at the directory, ``statvfs`` (read-only flag, free space) and writes a real
probe file, because ``os.access`` says yes to root even on a read-only or full file system. It is
rate-limited, except that a newly remembered fault is always checked again: so the status turns
ERROR at once and back to OK by itself once space returns, with no restart and no push.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ...errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# SQLite primary result codes that mean "the disk or database cannot take writes right now",
# with what they say about the disk; None: contention (busy, locked), not a fault of the disk.
_SQLITE_KINDS: dict[int, str | None] = {
    3: "not writable",  # SQLITE_PERM
    5: None,  # SQLITE_BUSY
    6: None,  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR (an EFBIG from a file size limit comes out as this too)
    13: "disk full",  # SQLITE_FULL
    14: "cannot open its files",  # SQLITE_CANTOPEN: usually a directory it cannot write to
}
_OS_KINDS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk full",
    errno.EFBIG: "disk full",  # past a file size limit (RLIMIT_FSIZE): no room all the same
    errno.EROFS: "read-only",
    errno.EACCES: "not writable",
    errno.EPERM: "not writable",
}

# Below this much free space the disk counts as full: a push of a few thousand rows needs about
# that much WAL, and a status that says OK just before every push fails helps nobody.
MIN_FREE_BYTES = 1024 * 1024
# The probe writes one page normally; to clear a remembered fault it must write MIN_FREE_BYTES,
# so "space returned" is shown, not guessed (a quota or file size limit is invisible to statvfs).
_PROBE_BYTES = 4096
PROBE_INTERVAL_S = 1.0  # status is unauthenticated: at most one probe file per second
PROBE_PREFIX = ".importapi-lite-probe-"


@dataclass(frozen=True)
class DiskFault:
    kind: str  # "disk full", "read-only", "not writable", …
    detail: str  # the error's own words
    at: str  # UTC, ISO 8601
    serial: int  # faults remembered so far, this one included


class DiskHealth:
    """One per ``SqliteDestination``: wraps its writes (``guard``) and answers ``problem()``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.fault: DiskFault | None = None
        self._serial = 0
        self._lock = asyncio.Lock()
        self._checked_at = -PROBE_INTERVAL_S
        self._checked_serial = 0
        self._live: str | None = None

    @contextmanager
    def guard(self, *, commits: bool = True) -> Iterator[None]:
        """Around a write: a fault of the disk or database is remembered and raised as
        ``ServiceUnavailable`` (503); anything else is a bug and propagates. If ``commits``,
        a write that completes clears a fault remembered before it began."""
        started = self._serial
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in _SQLITE_KINDS:
                raise
            name = getattr(exc, "sqlite_errorname", "")
            self._remember(_SQLITE_KINDS[code], f"{exc} ({name})" if name else str(exc))
            raise ServiceUnavailable() from exc
        except OSError as exc:
            self._remember(_OS_KINDS.get(exc.errno or 0, "write failed"), str(exc))
            raise ServiceUnavailable() from exc
        if commits and self.fault is not None and self.fault.serial <= started:
            logger.warning("storage recovered: a write committed after %s", self.fault.kind)
            self.fault = None

    def _remember(self, kind: str | None, detail: str) -> None:
        logger.warning("storage unavailable: %s", detail)
        if kind is None:
            return
        self._serial += 1
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        self.fault = DiskFault(kind, detail, at, self._serial)

    async def problem(self) -> str | None:
        """Why the data directory cannot take writes now, or None."""
        async with self._lock:
            fault = self.fault
            is_due = time.monotonic() - self._checked_at >= PROBE_INTERVAL_S
            if is_due or (fault is not None and fault.serial > self._checked_serial):
                self._checked_serial = self._serial
                probe_bytes = _PROBE_BYTES if fault is None else MIN_FREE_BYTES
                self._live = await asyncio.to_thread(check_data_dir, self.data_dir, probe_bytes)
                self._checked_at = time.monotonic()
                if self._live is None and fault is not None and self.fault is fault:
                    logger.warning("storage recovered: the data directory takes writes again")
                    self.fault = None
            if self._live is None:
                return None
            if self.fault is None:
                return self._live
            return f"{self._live}; the last write failed at {self.fault.at}: {self.fault.detail}"


def check_data_dir(data_dir: Path, probe_bytes: int) -> str | None:
    """Why ``data_dir`` cannot take writes, found by looking and by writing a probe file; None
    if it can. Blocking: run it in a thread."""
    if not data_dir.is_dir():
        return f"data directory {data_dir} does not exist"
    if hasattr(os, "statvfs"):
        fs = os.statvfs(data_dir)
        if fs.f_flag & os.ST_RDONLY:
            return f"data directory {data_dir}: read-only (the file system is mounted read-only)"
        # Root may also fill the blocks ext4 reserves for it; everyone else only f_bavail.
        is_root = getattr(os, "geteuid", lambda: -1)() == 0
        free = (fs.f_bfree if is_root else fs.f_bavail) * fs.f_frsize
        if free < MIN_FREE_BYTES:
            return f"data directory {data_dir}: disk full ({free} bytes free)"
    failure = _write_probe(data_dir, probe_bytes)
    if failure is not None:
        kind = _OS_KINDS.get(failure.errno or 0, "write failed")
        return f"data directory {data_dir}: {kind} ({failure.strerror or failure})"
    return None


def _write_probe(data_dir: Path, size: int) -> OSError | None:
    path = data_dir / f"{PROBE_PREFIX}{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            block = bytes(min(size, 64 * 1024))
            written = 0
            while written < size:
                written += os.write(fd, block[: size - written])
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    return None
