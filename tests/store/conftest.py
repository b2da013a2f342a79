"""Every store test runs against SQLite (a temp file) and PostgreSQL.

PostgreSQL: 127.0.0.1:5432, trust auth, user ``postgres`` or ``root``, maintenance database
``test``. One uniquely named database is created per test session (tables emptied before
each test) and dropped at the end. Without PostgreSQL the PostgreSQL variants skip with the
reason; with CI=true they fail (tests.helpers.require).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from router.store import EventStore, open_store
from router.store.tables import metadata
from tests.helpers import require

PG_HOST, PG_PORT, PG_ADMIN_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")


@dataclass(frozen=True)
class PgServer:
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{PG_HOST}:{PG_PORT}/{database}"

    async def admin(self, sql: str, database: str = PG_ADMIN_DB) -> list:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=self.user,
                                     database=database, timeout=5)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    async def create(self, name: str) -> str:
        await self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    async def drop(self, name: str) -> None:
        await self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def empty_tables(self, name: str) -> None:
        rows = await self.admin("SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                                name)
        ours = {t.name for t in metadata.sorted_tables} & {r["tablename"] for r in rows}
        if ours:
            await self.admin(f"TRUNCATE {', '.join(sorted(ours))} RESTART IDENTITY", name)


def _run(coro):
    """Run a coroutine on a private loop (session fixtures live outside the tests' loops)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _find_user() -> tuple[str | None, str]:
    errors = []
    for user in PG_USERS:
        try:
            await PgServer(user).admin("SELECT 1")
            return user, ""
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as e:
            errors.append(f"as {user}: {type(e).__name__}: {e}")
    return None, "; ".join(errors)


def new_db_name() -> str:
    return f"baton_store_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[PgServer, str]]:
    user, why = _run(_find_user())
    require(user is not None, f"PostgreSQL on {PG_HOST}:{PG_PORT} is required and was not "
            f"reachable ({why})", f"start PostgreSQL on {PG_HOST}:{PG_PORT} with trust auth "
            f"for user postgres or root and a database named {PG_ADMIN_DB!r} "
            "(e.g. docker compose up -d postgres)")
    server = PgServer(user)
    name = new_db_name()
    _run(server.create(name))
    try:
        yield server, name
    finally:
        _run(server.drop(name))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store database (schema may already be there)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"
    server, name = request.getfixturevalue("pg_server")
    await server.empty_tables(name)
    return server.url(name)


@pytest.fixture
async def fresh_url(backend: str, request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[str]:
    """A database no store has opened yet (PostgreSQL: created for this test)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'baton.db'}"
        return
    server, _ = request.getfixturevalue("pg_server")
    name = new_db_name()
    url = await server.create(name)
    try:
        yield url
    finally:
        await server.drop(name)


@pytest.fixture
async def store(url: str) -> AsyncIterator[EventStore]:
    s = await open_store(url)
    try:
        yield s
    finally:
        await s.close()
