"""What differs between databases, behind one small interface.

Each backend module (``sqlite``, ``postgres``) exposes ``make_backend(url) -> Backend``.
Everything else in the store is written once against ``Backend``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from router.store.errors import StoreError


@dataclass(slots=True)
class Backend:
    name: str
    engine: AsyncEngine
    # Engine for reads that need no transaction (same pool as ``engine``).
    reader: AsyncEngine
    # The dialect's ``insert`` (both support ``on_conflict_do_nothing/_update``).
    insert: Callable[..., Any]
    # Serializes write transactions within this process when the database allows only one
    # writer at a time (SQLite): waiting here is cheaper than spinning on busy_timeout.
    write_lock: asyncio.Lock | None
    # Called first in the migration transaction: holds off other processes migrating.
    lock_schema: Callable[[Connection], None]
    where: str  # the URL with the password hidden, for messages
    # Blocking set-up to run in a thread before first use (e.g. create the SQLite directory).
    prepare: Callable[[], None] | None = None
    # Run first in every write transaction; raises to refuse the write. High availability
    # (router/ha/leases.py) puts the leader's epoch check here, so a deposed leader's write
    # fails in the very transaction that would have stored it. None: no check.
    fence: Callable[[AsyncConnection], Awaitable[None]] | None = None
    # SQLite: ``await one_trip(fn, *args)`` runs ``fn(dbapi_connection, *args)`` in the
    # driver's thread as one write transaction, in one round trip (under write_lock;
    # committed when fn returns True, rolled back when it returns False or raises). The
    # group commit's fast path: a statement through the async engine costs several round
    # trips to that thread. None: not available (use ``write``).
    one_trip: Callable[..., Awaitable[bool]] | None = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: commits on exit, rolls back on any exception."""
        async with self.write_lock or nullcontext():
            async with self.engine.begin() as conn:
                if self.fence is not None:
                    await self.fence(conn)
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn


_DRIVERS = {"sqlite": "sqlite+aiosqlite", "sqlite+aiosqlite": "sqlite+aiosqlite",
            "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
            "postgresql+asyncpg": "postgresql+asyncpg"}


def parse_url(url: str) -> URL:
    """Accept the async URLs, and their driverless spellings for convenience."""
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy.exc.ArgumentError and friends
        raise StoreError(f"store URL {url!r} is not a database URL ({e}): use "
                         "sqlite+aiosqlite:///path/to/baton.db or "
                         "postgresql+asyncpg://user@host:5432/dbname") from e
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StoreError(f"store URL driver {parsed.drivername!r} is not supported: use "
                         "sqlite+aiosqlite:///path/to/baton.db or "
                         "postgresql+asyncpg://user@host:5432/dbname")
    return parsed.set(drivername=driver)


def make_backend(url: str) -> Backend:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        from router.store import sqlite as module
    else:
        from router.store import postgres as module
    return module.make_backend(parsed)
