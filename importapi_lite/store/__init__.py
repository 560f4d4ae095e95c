"""Where data and tokens live: destinations behind one small interface (SQLite files today),
the token store, disk health. The only code that speaks SQL."""

from __future__ import annotations

from ..settings import Settings
from .admin_token import AdminToken
from .destination import Destination
from .sqlite import SqliteDestination
from .sqlite.tokens import SqliteTokenStore
from .tokens import TokenStore


def open_destination(settings: Settings) -> Destination:
    """The destination the settings name: the SQLite files under ``data_dir``."""
    return SqliteDestination(
        settings.data_dir,
        max_open_tables=settings.max_open_tables,
        durability=settings.durability,
        cache_mib=settings.cache_mib,
        shared=settings.processes > 1,
    )


def open_tokens(settings: Settings) -> TokenStore:
    """The token store beside that destination."""
    return SqliteTokenStore(settings.data_dir)


def admin_token(settings: Settings) -> AdminToken:
    """What checks the admin API's token: the one given in the settings, or the saved one."""
    secret = None if settings.admin_token is None else settings.admin_token.reveal()
    return AdminToken(settings.data_dir, secret)
