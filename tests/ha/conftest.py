"""HA tests need a real PostgreSQL: one fresh database per test (tests/store/conftest.py's
server helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
