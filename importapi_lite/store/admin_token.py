"""The admin token of the SQLite destination: one secret per data directory, in
``<data_dir>/admin-token`` (mode 0600).

Unlike push tokens, the secret itself is kept, in a file only its owner can read, because
``importapi-lite admin-token`` must be able to print it again. The server keeps only its SHA-256
in memory (``AdminToken``) and compares digests in constant time. Neither creates the file before
it is needed, so a server that is never asked for admin routes leaves the data directory alone.
(The PostgreSQL destination keeps only a digest, in the database: ``postgres.tokens``.)
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Protocol

from .tokens import hash_secret

ADMIN_TOKEN_FILE = "admin-token"  # a file name, not a secret  # nosec B105


def ensure_admin_token(data_dir: Path) -> str:
    """The data directory's admin token, created on first use."""
    path = data_dir / ADMIN_TOKEN_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _create(path)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # someone loosened it; the secret is for its owner only
    return path.read_text().strip()


def rotate_admin_token(data_dir: Path) -> str:
    """A new admin token for the data directory; the old one stops working (a running server
    notices the file changed on its next admin request)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _create(data_dir / ADMIN_TOKEN_FILE, replace=True)
    return ensure_admin_token(data_dir)


def _create(path: Path, *, replace: bool = False) -> None:
    # Written in full under a temporary name, then moved into place: a server and a CLI starting
    # together never read a half-written file, and (without ``replace``) the first one wins.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        if replace:
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)


class AdminCheck(Protocol):
    """What the admin API asks of its token."""

    def matches(self, presented: str) -> bool: ...


class AdminToken:
    """Checks presented secrets against the admin token; holds only its digest.

    The token is ``secret`` if given (``serve --admin-token``), else the data directory's, read
    (or created) on the first check and read again when the file changes (``admin-token
    --rotate``): one small file, so a stat per admin request in the event loop is fine.
    """

    def __init__(self, data_dir: Path, secret: str | None = None) -> None:
        self._path = data_dir / ADMIN_TOKEN_FILE
        self._given = None if secret is None else hash_secret(secret)
        self._saved: tuple[tuple[int, int] | None, str] | None = None  # (file identity, digest)

    def __repr__(self) -> str:
        return "AdminToken(<hidden>)"

    def matches(self, presented: str) -> bool:
        digest = self._given or self._saved_digest()
        # SECURITY: compare digests in constant time, so timing says nothing about the secret.
        return hmac.compare_digest(hash_secret(presented), digest)

    def _saved_digest(self) -> str:
        # A file gone (its directory removed under a running server) keeps the token it held.
        now = self._identity()
        if self._saved is None or (now is not None and now != self._saved[0]):
            digest = hash_secret(ensure_admin_token(self._path.parent))
            self._saved = (self._identity(), digest)
        return self._saved[1]

    def _identity(self) -> tuple[int, int] | None:
        """Which file holds the token now: a rotation moves a new file (a new inode) in."""
        try:
            found = self._path.stat()
        except FileNotFoundError:
            return None
        return (found.st_ino, found.st_mtime_ns)
