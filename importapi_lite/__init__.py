"""importapi-lite: a small, fast, faithful stand-in for the Stitch Import API v2."""

from __future__ import annotations

__version__ = "0.1.0"

from .app import create_app  # noqa: E402  (after __version__, which handlers import)
from .errors import ImportApiError  # noqa: E402
from .settings import Settings  # noqa: E402

__all__ = ["ImportApiError", "Settings", "__version__", "create_app"]
