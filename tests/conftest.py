"""Fixtures: a real server on a free port (``aiohttp_client``), real SQLite files under tmp_path.

``settings`` puts the data directory under tmp_path; ``client`` is that server; ``api`` talks
HTTP to it with a valid push ``token``, ``admin`` with the admin token. Helpers (``record``,
``db_rows``, ``Reply``...) are in helpers.py: import them from there, never from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from importapi_lite import Settings, create_app
from importapi_lite.store.admin_token import ensure_admin_token

from .helpers import Admin, Api, make_token


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", port=0)


@pytest.fixture
def token(settings: Settings) -> str:
    return make_token(settings)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def api(client: Any, token: str) -> Api:
    return Api(client, token)


@pytest.fixture
def admin(client: Any, settings: Settings) -> Admin:
    return Admin(client, ensure_admin_token(settings.data_dir))
