"""Where data and tokens live: destinations behind one small interface (SQLite files, PostgreSQL),
the token store, disk health. The only code that speaks SQL."""

from __future__ import annotations

from ..settings import Settings
from .admin_token import AdminCheck, AdminToken, ensure_admin_token, rotate_admin_token
from .destination import Destination
from .sqlite import SqliteDestination
from .sqlite.tokens import SqliteTokenStore
from .tokens import TokenStore


def open_destination(settings: Settings) -> Destination:
    """The destination the settings name: SQLite files under ``data_dir``, or PostgreSQL."""
    if settings.destination.is_postgresql:
        from .postgres import PostgresDestination  # psycopg only when PostgreSQL is named

        return PostgresDestination(str(settings.destination))
    return SqliteDestination(
        settings.data_dir,
        max_open_tables=settings.max_open_tables,
        durability=settings.durability,
        cache_mib=settings.cache_mib,
        shared=settings.processes > 1,
    )


def open_tokens(settings: Settings) -> TokenStore:
    """The token store beside that destination."""
    if settings.destination.is_postgresql:
        from .postgres.tokens import PostgresTokenStore

        return PostgresTokenStore(str(settings.destination))
    return SqliteTokenStore(settings.data_dir)


def admin_token(settings: Settings, tokens: TokenStore) -> AdminCheck:
    """What checks the admin API's token: the one given in the settings, or the saved one
    (PostgreSQL: in the database, beside ``tokens``)."""
    secret = None if settings.admin_token is None else settings.admin_token.reveal()
    if settings.destination.is_postgresql:
        from .postgres.tokens import PostgresAdminToken, PostgresTokenStore

        assert isinstance(tokens, PostgresTokenStore)
        return PostgresAdminToken(tokens, secret)
    return AdminToken(settings.data_dir, secret)


def new_admin_secret(settings: Settings, *, rotate: bool) -> str | None:
    """The admin token's secret to show: SQLite keeps it in a file and shows it again;
    PostgreSQL keeps only its digest, so it is shown once, when made (None: one exists already).
    ``rotate`` makes a new one either way; the old one stops working."""
    if settings.destination.is_postgresql:
        from .postgres.tokens import PostgresTokenStore

        tokens = PostgresTokenStore(str(settings.destination))
        try:
            return tokens.make_admin_token(replace=rotate)
        finally:
            tokens.close()
    if rotate:
        return rotate_admin_token(settings.data_dir)
    return ensure_admin_token(settings.data_dir)
