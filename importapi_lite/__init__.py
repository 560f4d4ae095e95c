"""importapi-lite: a small, fast, faithful stand-in for the Stitch Import API v2."""

from __future__ import annotations

from .app import create_app
from .errors import ImportApiError
from .settings import Settings
from .version import __version__

__all__ = ["ImportApiError", "Settings", "__version__", "create_app"]
