"""HA tests need a real PostgreSQL: one fresh database per test (tests/store/conftest.py's
server helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.ha_cluster import create_database, drop_database
from tests.store.conftest import new_db_name, pg_server  # noqa: F401  (fixture re-export)


@pytest.fixture
async def pg_url(pg_server) -> AsyncIterator[str]:  # noqa: F811
    server, _ = pg_server
    name = new_db_name()
    url = await server.create(name)
    try:
        yield url
    finally:
        await server.drop(name)


@pytest.fixture
async def db(pg_server) -> AsyncIterator[tuple[str, str]]:  # noqa: F811
    """(name, url) of a fresh database for a cluster of `baton router` processes
    (sandbox/ha_cluster.py), dropped after the test."""
    name, url = await create_database("baton_ha")
    try:
        yield name, url
    finally:
        await drop_database(name)
