"""Push tokens and integrations, stored in ``<data_dir>/tokens.sqlite3``. Secrets are never stored.

A token is 32 random bytes shown once, as hex; only its SHA-256 is kept (a fast hash is right for
high-entropy secrets: there is nothing to brute-force). The server and the CLI share this file: a
token created or revoked by the CLI takes effect in a running server on its next request, because
``TokenStore.lookup`` re-reads whenever ``PRAGMA data_version`` says another connection committed.

Synchronous ``sqlite3`` on purpose: a lookup is one indexed read of a tiny table (microseconds),
cheaper in the event loop than a round trip to a worker thread.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..tokens import (
    DEFAULT_INTEGRATION,
    INTEGRATION_STATES,
    MAX_ACTIVE_TOKENS,
    Token,
    TokenError,
    hash_secret,
    require_integration_name,
)

TOKENS_FILE = "tokens.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS integrations (
    client_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL,
    PRIMARY KEY (client_id, name)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    client_id INTEGER NOT NULL,
    integration TEXT NOT NULL,
    region TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    FOREIGN KEY (client_id, integration) REFERENCES integrations (client_id, name)
);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_SELECT = """
SELECT t.id, t.client_id, t.integration, t.region, t.created_at, t.revoked_at, i.state,
       t.secret_sha256
FROM tokens t JOIN integrations i ON i.client_id = t.client_id AND i.name = t.integration
"""


class SqliteTokenStore:
    """The ``tokens.TokenStore`` of ``<data_dir>/tokens.sqlite3``: all token and integration
    reads and writes. One instance per process and data directory."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / TOKENS_FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self.path.chmod(0o600)
        self._cache: dict[str, Token] = {}
        self._cache_version = -1

    async def start(self) -> None:
        """Nothing to keep fresh: a lookup notices another connection's commit itself."""

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        # data_version only moves for other connections' commits; forget what ours changed.
        self._cache.clear()

    def lookup(self, secret: str) -> Token | None:
        """The token for a presented secret, revoked ones included; None if unknown."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version
        digest = hash_secret(secret)
        token = self._cache.get(digest)
        if token is None:
            row = self._db.execute(_SELECT + "WHERE t.secret_sha256 = ?", (digest,)).fetchone()
            # SECURITY: the index finds the row by digest; compare again in constant time so
            # no timing difference depends on how much of a guess matched.
            if row is None or not hmac.compare_digest(row[7], digest):
                return None
            token = Token(*row[:7])
            if len(self._cache) < 10_000:
                self._cache[digest] = token
        return token

    def create(
        self,
        client_id: int,
        integration: str = DEFAULT_INTEGRATION,
        region: str = "north-america",
    ) -> tuple[Token, str]:
        """A new token and its secret (shown once). Creates the integration on first use."""
        require_integration_name(integration)
        secret = secrets.token_hex(32)
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO integrations (client_id, name, created_at) VALUES (?, ?, ?)",
                (client_id, integration, now),
            )
            (active,) = db.execute(
                "SELECT count(*) FROM tokens WHERE client_id = ? AND integration = ?"
                " AND revoked_at IS NULL",
                (client_id, integration),
            ).fetchone()
            if active >= MAX_ACTIVE_TOKENS:
                raise TokenError(
                    f"integration {integration!r} of client {client_id} already has "
                    f"{MAX_ACTIVE_TOKENS} active tokens; revoke one first"
                )
            token_id = "tok_" + secrets.token_hex(6)
            db.execute(
                "INSERT INTO tokens (id, secret_sha256, client_id, integration, region, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, hash_secret(secret), client_id, integration, region, now),
            )
        token = self.lookup(secret)
        assert token is not None
        return token, secret

    def tokens(self) -> list[Token]:
        rows = self._db.execute(_SELECT + "ORDER BY t.created_at, t.id").fetchall()
        return [Token(*row[:7]) for row in rows]

    def integrations(self) -> list[tuple[int, str, str]]:
        """Every integration as ``(client_id, name, state)``, by client then name."""
        rows = self._db.execute(
            "SELECT client_id, name, state FROM integrations ORDER BY client_id, name"
        ).fetchall()
        return [(int(c), str(n), str(s)) for c, n, s in rows]

    def revoke(self, token_or_id: str) -> Token:
        """Revoke by token id or by secret. Revoking twice keeps the first time."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?)"
                " WHERE id = ? OR secret_sha256 = ?",
                (_now(), token_or_id, hash_secret(token_or_id)),
            )
            if cursor.rowcount == 0:
                raise TokenError("no such token")
            row = db.execute(
                _SELECT + "WHERE t.id = ? OR t.secret_sha256 = ?",
                (token_or_id, hash_secret(token_or_id)),
            ).fetchone()
        return Token(*row[:7])

    def set_integration_state(self, client_id: int, integration: str, state: str) -> None:
        if state not in INTEGRATION_STATES:
            raise TokenError(f"state must be one of {', '.join(INTEGRATION_STATES)}")
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE integrations SET state = ? WHERE client_id = ? AND name = ?",
                (state, client_id, integration),
            )
            if cursor.rowcount == 0:
                raise TokenError(f"client {client_id} has no integration {integration!r}")
