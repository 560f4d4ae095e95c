"""The admin token: one secret per data directory, in ``<data_dir>/admin-token`` (mode 0600).

Unlike push tokens, the secret itself is kept, in a file only its owner can read, because
``importapi-lite admin-token`` must be able to print it again. The server keeps only its SHA-256
in memory (``AdminToken``) and compares digests in constant time. Neither creates the file before
it is needed, so a server that is never asked for admin routes leaves the data directory alone.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

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


def _create(path: Path) -> None:
    # Written in full under a temporary name, then linked into place: a server and a CLI starting
    # together never read a half-written file, and the first one to link wins.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink()


class AdminToken:
    """Checks presented secrets against the admin token; holds only its digest.

    The token is ``secret`` if given (``serve --admin-token``), else the data directory's, read
    (or created) on the first check: one small file, once, so reading it in the event loop is fine.
    """

    def __init__(self, data_dir: Path, secret: str | None = None) -> None:
        self._data_dir = data_dir
        self._digest = None if secret is None else hash_secret(secret)

    def __repr__(self) -> str:
        return "AdminToken(<hidden>)"

    def matches(self, presented: str) -> bool:
        if self._digest is None:
            self._digest = hash_secret(ensure_admin_token(self._data_dir))
        # SECURITY: compare digests in constant time, so timing says nothing about the secret.
        return hmac.compare_digest(hash_secret(presented), self._digest)
