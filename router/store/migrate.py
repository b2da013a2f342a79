"""Schema migrations, run by ``open_store``: Alembic ``upgrade head`` on the store's own
async engine (connection sharing), so no second engine and no blocking driver.

A database already at head costs one read of the version table. Otherwise the upgrade runs
in one write transaction that starts with the backend's ``lock_schema`` (BEGIN IMMEDIATE on
SQLite, an advisory lock on PostgreSQL), so processes starting together migrate once and
the others find head.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from router.store.backend import Backend

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Own name, so the store can share a PostgreSQL database with other Alembic users.
VERSION_TABLE = "baton_store_version"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def head_revision() -> str | None:
    """Reads the revision files: call it in a thread."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _upgrade(conn: Connection, cfg: Config, backend: Backend) -> None:
    # Runs in the event loop's thread (greenlet); Alembic reads its small revision files
    # here, which happens only when the schema is behind.
    backend.lock_schema(conn)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


async def migrate(backend: Backend) -> str | None:
    """Bring the schema to head; return the head revision."""
    head = await asyncio.to_thread(head_revision)
    async with backend.read() as conn:
        current = await conn.run_sync(_current_revision)
    if current != head:
        async with backend.write() as conn:
            await conn.run_sync(_upgrade, alembic_config(), backend)
    return head
