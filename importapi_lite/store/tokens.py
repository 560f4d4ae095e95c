"""Push tokens and integrations: the record of a token, and what a token store must do.

A token is 32 random bytes shown once, as hex; a store keeps only its SHA-256 (a fast hash is
right for high-entropy secrets: there is nothing to brute-force). ``sqlite.tokens`` is the one
store today. A lookup is on every request's path, so it is synchronous: a store answers it from
memory or from a read that costs microseconds, and notices another process's changes (a token
revoked by the CLI) on its next lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

DEFAULT_INTEGRATION = "import_api"
MAX_ACTIVE_TOKENS = 2  # per integration, for rotation (SPEC §2)
INTEGRATION_STATES = ("active", "paused", "deleted")


class TokenError(ValueError):
    """A token or integration command that cannot be carried out (shown to the CLI user)."""


@dataclass(frozen=True, slots=True)
class Token:
    """A token's record. It never holds the secret, so its repr is safe to log."""

    id: str
    client_id: int
    integration: str
    region: str
    created_at: str
    revoked_at: str | None
    integration_state: str

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def require_integration_name(integration: str) -> None:
    """Every token store's first rule for a new token's integration: it has a name."""
    if not integration.strip():
        raise TokenError("the integration name must not be blank")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore(Protocol):
    def lookup(self, secret: str) -> Token | None:
        """The token for a presented secret, revoked ones included; None if unknown."""
        ...

    def create(
        self, client_id: int, integration: str = ..., region: str = ...
    ) -> tuple[Token, str]:
        """A new token and its secret (shown once). Creates the integration on first use."""
        ...

    def tokens(self) -> list[Token]: ...

    def integrations(self) -> list[tuple[int, str, str]]:
        """Every integration as ``(client_id, name, state)``, by client then name."""
        ...

    def revoke(self, token_or_id: str) -> Token:
        """Revoke by token id or by secret. Revoking twice keeps the first time."""
        ...

    def set_integration_state(self, client_id: int, integration: str, state: str) -> None: ...

    async def start(self) -> None:
        """In a server, before serving: keep fresh what lookups read (a no-op where a lookup
        reads the store itself)."""
        ...

    def close(self) -> None: ...
