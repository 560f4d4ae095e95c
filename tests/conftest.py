"""Fixtures: a real server on a free port (``aiohttp_client``), real SQLite files under tmp_path
or a real PostgreSQL database.

``settings`` puts the data directory under tmp_path, and the data in it or, where a module
parametrizes ``destination`` with ``postgresql``, in a database of its own on the session's
PostgreSQL cluster (``pg_cluster.py``); ``client`` is that server; ``api`` talks HTTP to it with a
valid push ``token``, ``admin`` with the admin token. Helpers (``record``, ``db_rows``,
``Reply``...) are in helpers.py: import them from there, never from here.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from importapi_lite import Settings, create_app
from importapi_lite.settings import Secret
from importapi_lite.store.admin_token import ensure_admin_token

from .helpers import Admin, Api, make_token
from .pg_cluster import Cluster, require_binaries

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One PostgreSQL server for the session; each test gets a database of its own."""
    cluster = Cluster(require_binaries())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite"])
def destination(request: pytest.FixtureRequest) -> str:
    """Where ``settings`` put the data: ``sqlite``, or ``postgresql`` where a module says
    ``pytestmark = BOTH_DESTINATIONS``."""
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, destination: str, request: pytest.FixtureRequest) -> Settings:
    if destination == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database(f"test_{next(_databases)}")
        admin = Secret(secrets.token_hex(16))
        return Settings(data_dir=tmp_path / "data", port=0, destination=url, admin_token=admin)
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
    if settings.admin_token is not None:
        return Admin(client, settings.admin_token.reveal())
    return Admin(client, ensure_admin_token(settings.data_dir))
