"""Every ``web.AppKey`` of the application, typed, in one place."""

from __future__ import annotations

from aiohttp import web

from .settings import Settings
from .storage import Store
from .storage.tokens import Token, TokenStore

settings_key = web.AppKey("settings", Settings)
store_key = web.AppKey("store", Store)
tokens_key = web.AppKey("tokens", TokenStore)

# Set by middleware for the handler (SPEC §3.3): who is asking, and the body as read.
received_at_key = web.RequestKey("received_at", str)
token_key = web.RequestKey("token", Token)
media_type_key = web.RequestKey("media_type", str)
body_key = web.RequestKey("body", bytes)
