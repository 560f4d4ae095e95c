"""Push tokens, integrations and the admin token in PostgreSQL (schema ``_importapi``), shared by
every server process on the database. Secrets are never stored: only their SHA-256.

Every change (a token created or revoked, an integration paused, the admin token made) moves
the counter ``_importapi.changes.version`` in the same transaction. A server process keeps a
copy of every token and polls the counter every ``POLL_S`` seconds, reloading the copy when it
moved: a revocation counts in every process within that time, and a lookup, on every request's
path, never waits for the database. Without a running loop (the CLI), the copy is read again
whenever it is older than ``POLL_S``.

An integration is a schema of the destination, which one client owns: a second client asking
for a token of the same integration name is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg

from ...errors import ServiceUnavailable
from ...settings import DestinationUrl
from ..destination import DestinationUnavailable
from ..tokens import (
    DEFAULT_INTEGRATION,
    INTEGRATION_STATES,
    MAX_ACTIVE_TOKENS,
    Token,
    TokenError,
    hash_secret,
    require_integration_name,
)
from .sql import METADATA_DDL, OURS

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_S = 0.5
MISS_RECHECK_S = 0.05
# Schemas PostgreSQL keeps for itself, and ours: no integration may be named so.
_RESERVED_SCHEMA = re.compile(r"pg_.*|information_schema|_importapi", re.IGNORECASE | re.DOTALL)

_SELECT = f"""
SELECT t.id, t.client_id, t.integration, t.region, t.created_at, t.revoked_at, i.state,
       t.secret_sha256
FROM {OURS}.tokens t JOIN {OURS}.integrations i ON i.name = t.integration
"""


def unreachable(url: str, exc: BaseException) -> str:
    """Why PostgreSQL at ``url`` (its password hidden) cannot be reached, in one line."""
    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot reach PostgreSQL at {DestinationUrl(url).shown()}: {why}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PostgresTokenStore:
    """The ``tokens.TokenStore`` of a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self._url = url
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError as exc:
            raise DestinationUnavailable(unreachable(url, exc)) from None
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('importapi-lite', 0))")
            for statement in METADATA_DDL:
                db.execute(statement)
        self._tokens: dict[str, Token] = {}  # by secret_sha256
        self._integrations: list[tuple[int, str, str]] = []
        self.admin_digest: str | None = None
        self._version = -1
        self._read_at = 0.0
        self._miss_checked_at = 0.0
        self._poller: asyncio.Task[None] | None = None
        self._reload()

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self._db.close()

    # --- the copy, kept fresh -----------------------------------------------------------------

    async def start(self) -> None:
        """In a server: poll for changes in the background, so lookups never wait."""
        self._poller = asyncio.create_task(self._poll(), name="importapi-lite tokens")

    async def _poll(self) -> None:
        connection: psycopg.AsyncConnection[Any] | None = None
        while True:
            await asyncio.sleep(POLL_S)
            try:
                if connection is None or connection.closed:
                    connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                cursor = await connection.execute(f"SELECT version FROM {OURS}.changes")
                row = await cursor.fetchone()
                if row is not None and row[0] != self._version:
                    await asyncio.to_thread(self._reload)
            except psycopg.Error as exc:  # PostgreSQL away: keep the copy, try again
                logger.warning("tokens not refreshed: %s", str(exc).strip().splitlines()[:1])
                connection = None

    def _reload_if_changed(self) -> None:
        self._miss_checked_at = time.monotonic()
        try:
            version = self._read(lambda db: db.execute(f"SELECT version FROM {OURS}.changes"))
            if (version.fetchone() or (0,))[0] != self._version:
                self._reload()
        except psycopg.OperationalError as exc:
            # An unknown token, and no way to learn whether it was just made: not a 401.
            raise ServiceUnavailable() from exc

    def _fresh(self) -> None:
        if self._poller is None and time.monotonic() - self._read_at > POLL_S:
            self._reload()

    def _reload(self) -> None:
        version, rows, integrations, admin = self._read(self._read_all)
        self._tokens = {row[7]: Token(*row[:7]) for row in rows}
        self._integrations = [(int(c), str(n), str(s)) for c, n, s in integrations]
        self.admin_digest = None if admin is None else str(admin[0])
        self._version = version
        self._read_at = time.monotonic()

    @staticmethod
    def _read_all(db: psycopg.Connection[Any]) -> tuple[int, list[Any], list[Any], Any]:
        with db.transaction():
            (version,) = db.execute(f"SELECT version FROM {OURS}.changes").fetchone() or (0,)
            rows = db.execute(_SELECT).fetchall()
            integrations = db.execute(
                f"SELECT client_id, name, state FROM {OURS}.integrations ORDER BY 1, 2"
            ).fetchall()
            admin = db.execute(f"SELECT secret_sha256 FROM {OURS}.admin_token").fetchone()
        return int(version), rows, integrations, admin

    def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` (reads only), once more on a new connection if PostgreSQL restarted since
        the last."""
        try:
            return work(self._db)
        except psycopg.OperationalError:
            self._db.close()
            self._db = psycopg.connect(self._url, autocommit=True, connect_timeout=2)
            return work(self._db)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._db.transaction():
            yield self._db

    def _changed(self, db: psycopg.Connection[Any]) -> None:
        db.execute(f"UPDATE {OURS}.changes SET version = version + 1")

    # --- the TokenStore -----------------------------------------------------------------------

    def lookup(self, secret: str) -> Token | None:
        self._fresh()
        # SECURITY: looked up by the secret's SHA-256, so the lookup's timing depends on the
        # digest, which says nothing of the secret.
        digest = hash_secret(secret)
        token = self._tokens.get(digest)
        if token is None and time.monotonic() - self._miss_checked_at > MISS_RECHECK_S:
            # Unknown here: perhaps made a moment ago by the CLI. One look at the counter (not
            # more often than MISS_RECHECK_S, however many unknown tokens arrive).
            self._reload_if_changed()
            token = self._tokens.get(digest)
        return token

    def create(
        self,
        client_id: int,
        integration: str = DEFAULT_INTEGRATION,
        region: str = "north-america",
    ) -> tuple[Token, str]:
        require_integration_name(integration)
        if _RESERVED_SCHEMA.fullmatch(integration) or len(integration.encode()) > 63:
            raise TokenError(
                f"{integration!r} cannot name an integration here: it is a PostgreSQL schema "
                "(at most 63 bytes, not pg_*, information_schema or _importapi)"
            )
        secret = secrets.token_hex(32)
        now = _now()
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO {OURS}.integrations (name, client_id, created_at) "
                "VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (integration, client_id, now),
            )
            owner = db.execute(
                f"SELECT client_id FROM {OURS}.integrations WHERE name = %s FOR UPDATE",
                (integration,),
            ).fetchone()
            if owner is None or int(owner[0]) != client_id:
                raise TokenError(
                    f"integration {integration!r} belongs to another client: its schema holds "
                    "that client's tables; choose another name"
                )
            (active,) = db.execute(
                f"SELECT count(*) FROM {OURS}.tokens WHERE integration = %s AND revoked_at IS NULL",
                (integration,),
            ).fetchone() or (0,)
            if active >= MAX_ACTIVE_TOKENS:
                raise TokenError(
                    f"integration {integration!r} of client {client_id} already has "
                    f"{MAX_ACTIVE_TOKENS} active tokens; revoke one first"
                )
            token_id = "tok_" + secrets.token_hex(6)
            db.execute(
                f"INSERT INTO {OURS}.tokens (id, secret_sha256, client_id, integration, region, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (token_id, hash_secret(secret), client_id, integration, region, now),
            )
            self._changed(db)
        self._reload()
        token = self._tokens[hash_secret(secret)]
        return token, secret

    def tokens(self) -> list[Token]:
        self._fresh()
        return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def integrations(self) -> list[tuple[int, str, str]]:
        self._fresh()
        return list(self._integrations)

    def revoke(self, token_or_id: str) -> Token:
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE {OURS}.tokens SET revoked_at = coalesce(revoked_at, %s) "
                "WHERE id = %s OR secret_sha256 = %s",
                (_now(), token_or_id, hash_secret(token_or_id)),
            )
            if cursor.rowcount == 0:
                raise TokenError("no such token")
            row = db.execute(
                _SELECT + "WHERE t.id = %s OR t.secret_sha256 = %s",
                (token_or_id, hash_secret(token_or_id)),
            ).fetchone()
            self._changed(db)
        self._reload()
        assert row is not None
        return Token(*row[:7])

    def set_integration_state(self, client_id: int, integration: str, state: str) -> None:
        if state not in INTEGRATION_STATES:
            raise TokenError(f"state must be one of {', '.join(INTEGRATION_STATES)}")
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE {OURS}.integrations SET state = %s WHERE client_id = %s AND name = %s",
                (state, client_id, integration),
            )
            if cursor.rowcount == 0:
                raise TokenError(f"client {client_id} has no integration {integration!r}")
            self._changed(db)
        self._reload()

    # --- the admin token ----------------------------------------------------------------------

    def make_admin_token(self, *, replace: bool) -> str | None:
        """A new admin token's secret, shown once (only its SHA-256 is kept); None if there is
        one already and ``replace`` is false."""
        secret = secrets.token_hex(32)
        with self._transaction() as db:
            conflict = (
                "DO UPDATE SET secret_sha256 = excluded.secret_sha256, "
                "created_at = excluded.created_at"
                if replace
                else "DO NOTHING"
            )
            cursor = db.execute(
                f"INSERT INTO {OURS}.admin_token VALUES (1, %s, %s) ON CONFLICT (id) {conflict}",
                (hash_secret(secret), _now()),
            )
            if cursor.rowcount == 0:
                return None
            self._changed(db)
        self._reload()
        return secret


class PostgresAdminToken:
    """Checks presented secrets against the admin token kept (as a digest) in PostgreSQL, or
    against the one given in the settings."""

    def __init__(self, tokens: PostgresTokenStore, secret: str | None = None) -> None:
        self._tokens = tokens
        self._given = None if secret is None else hash_secret(secret)

    def __repr__(self) -> str:
        return "PostgresAdminToken(<hidden>)"

    def matches(self, presented: str) -> bool:
        digest = self._given or self._tokens.admin_digest
        if digest is None:
            return False  # none made yet: `importapi-lite admin-token` makes one
        # SECURITY: compare digests in constant time, so timing says nothing about the secret.
        return hmac.compare_digest(hash_secret(presented), digest)
