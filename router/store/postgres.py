"""PostgreSQL backend (asyncpg), for several routers sharing one database.

No in-process write lock: concurrent appends use separate pooled connections, and the
per-origin compare-and-set in the append transaction keeps sequence rules exact across
processes. Reads run in autocommit (no BEGIN/ROLLBACK round trips).
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import create_async_engine

from router.store.backend import Backend

ADVISORY_LOCK_KEY = 0x6261746F6E  # "baton"
POOL_SIZE = 10
MAX_OVERFLOW = 10


def _lock_schema(conn: Connection) -> None:
    # Routers starting together: one migrates, the others wait here, then find head.
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")


def make_backend(url: URL) -> Backend:
    engine = create_async_engine(url, hide_parameters=True, pool_size=POOL_SIZE,
                                 max_overflow=MAX_OVERFLOW)
    return Backend(name="postgresql", engine=engine,
                   reader=engine.execution_options(isolation_level="AUTOCOMMIT"),
                   insert=insert, write_lock=None, lock_schema=_lock_schema,
                   where=url.render_as_string(hide_password=True))
