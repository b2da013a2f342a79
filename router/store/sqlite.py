"""SQLite backend (aiosqlite): one file, WAL, one writer at a time.

- WAL lets readers run while one writer commits. Durability is the URL's ``synchronous``
  (docs/decisions/0016-sync-durability.md): ``normal`` (default) fsyncs the WAL only at
  checkpoints: a committed event survives the router process crashing or being killed, and
  a power cut or kernel crash may lose the commits since the last checkpoint (never corrupt
  the file); ``full`` fsyncs the WAL at every commit: a committed (and so acked) event
  survives a power cut too. The group commit makes that one fsync per batch of events.
- sqlite3's own transaction handling is kept with isolation_level "IMMEDIATE": it emits
  BEGIN IMMEDIATE inside the first INSERT/UPDATE of a transaction (no extra round trip to
  aiosqlite's thread), so another process waits on busy_timeout up front instead of failing
  on a lock upgrade. SELECTs open no transaction: each sees the latest commit.
- sqlite3 does not begin a transaction for DDL, so a migration begins one explicitly
  (``lock_schema``) to stay atomic.
- WAL is a property of the file, switched on once at open (``_prepare``, in a thread): the
  switch needs the file to itself and SQLite fails it at once, without waiting on
  busy_timeout, when another connection is busy, so it is retried there, not per connect.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import create_async_engine

from router.store.backend import Backend
from router.store.errors import StoreError, StoreUnavailable

BUSY_TIMEOUT_MS = 5000
# Per-connection settings (journal_mode=WAL is per file: see _prepare).
PRAGMAS = (f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}", "PRAGMA foreign_keys=ON")
SYNCHRONOUS = ("normal", "full")


def _connect_hook(synchronous: str):
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in (*PRAGMAS, f"PRAGMA synchronous={synchronous.upper()}"):
                cursor.execute(pragma)
        finally:
            cursor.close()
        dbapi_connection.isolation_level = "IMMEDIATE"
    return _on_connect


def synchronous_of(url: URL) -> str:
    value = str(url.query.get("synchronous", "normal")).lower()
    if value not in SYNCHRONOUS:
        raise StoreError(f"synchronous={value!r} in the store URL: use normal (an acked event "
                         "survives a router crash) or full (it survives a power cut too, one "
                         "fsync per group commit)")
    return value


def _prepare(path: Path) -> None:
    """Create the directory and put the file in WAL mode. Blocking: run it in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise StoreUnavailable(f"cannot open SQLite file {path} ({e}): check that the "
                                       "path is right and its directory is writable") from e
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"SQLite file {path} stayed locked while switching it "
                                       "to WAL: stop the other program using it, then retry"
                                       ) from e
            time.sleep(0.01)
    if mode.lower() != "wal":
        raise StoreError(f"SQLite file {path} refused WAL mode (journal_mode is {mode}): put "
                         "it on a local file system that supports shared memory")


def _on_reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
    # Replaces the pool's rollback-on-return, which would cost a round trip to aiosqlite's
    # thread after every commit: roll back only when sqlite3 says a transaction is open.
    if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def _in_transaction(db: sqlite3.Connection, fn: Any, *args: Any) -> bool:
    """In aiosqlite's thread: ``fn`` as one transaction (sqlite3 begins it at the first
    write: isolation_level IMMEDIATE). A unique or check constraint that fails is a misfit
    (False, rolled back), like ``fn`` returning False."""
    try:
        ok = fn(db, *args)
    except sqlite3.IntegrityError:
        ok = False
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    if ok:
        db.commit()
    elif db.in_transaction:
        db.rollback()
    return bool(ok)


def _one_trip(engine: Any, write_lock: asyncio.Lock):
    async def one_trip(fn: Any, *args: Any) -> bool:
        async with write_lock:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection  # aiosqlite.Connection
                try:
                    # aiosqlite runs every call on its connection through this queue to its
                    # thread (0.22: Connection._execute); one call here, one round trip.
                    return await driver._execute(_in_transaction, driver._conn, fn, *args)
                except sqlite3.OperationalError as e:
                    raise StoreUnavailable(f"SQLite: {e}; retry") from e
                except sqlite3.Error as e:
                    raise StoreError(f"SQLite: {e}") from e
    return one_trip


def _lock_schema(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def database_path(url: URL) -> str:
    path = url.database or ""
    if "uri" in url.query:
        raise StoreError(f"SQLite URI file names ({url}) are not supported: give a plain path, "
                         "e.g. sqlite+aiosqlite:///var/baton.db")
    if path in ("", ":memory:") or url.query.get("mode") == "memory":
        raise StoreError(f"in-memory SQLite ({url}) is not supported: each connection would "
                         "see its own empty database; use a file, e.g. "
                         "sqlite+aiosqlite:///tmp/baton.db")
    return path


def make_backend(url: URL) -> Backend:
    synchronous = synchronous_of(url)
    url = url.difference_update_query(["synchronous"])
    path = Path(database_path(url))
    # LIFO: the connection used last is used next, so the group commit keeps finding its
    # pages in that connection's cache. FIFO rotates through the pool, and a connection
    # that another one committed after re-reads what it touches (sync path: 45k → 2.6k
    # pread calls per 3,600 events).
    engine = create_async_engine(url, hide_parameters=True, pool_reset_on_return=None,
                                 pool_use_lifo=True)
    event.listen(engine.sync_engine, "connect", _connect_hook(synchronous))
    event.listen(engine.sync_engine, "reset", _on_reset)
    write_lock = asyncio.Lock()
    return Backend(name="sqlite", engine=engine, reader=engine,
                   insert=insert, write_lock=write_lock, lock_schema=_lock_schema,
                   where=url.render_as_string(hide_password=True),
                   prepare=lambda: _prepare(path),
                   one_trip=_one_trip(engine, write_lock))
