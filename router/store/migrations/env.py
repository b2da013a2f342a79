"""Alembic environment for the store.

At run time ``router.store.migrate`` passes its own connection in
``config.attributes["connection"]`` and nothing else happens here (no logging set-up, no
engine). From the command line (see ../alembic.ini) the URL comes from ``-x url=...`` or
BATON_STORE_URL, and the store's own backend (pragmas, locking) is used.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from router.store.backend import make_backend, parse_url
from router.store.migrate import VERSION_TABLE
from router.store.tables import metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def cli_url() -> str:
    url = (context.get_x_argument(as_dictionary=True).get("url")
           or os.environ.get("BATON_STORE_URL"))
    if not url:
        raise SystemExit("give the store URL: alembic -x url=sqlite+aiosqlite:///path ... "
                         "or set BATON_STORE_URL")
    return url


async def run_cli(url: str) -> None:
    backend = make_backend(url)
    if backend.prepare is not None:
        await asyncio.to_thread(backend.prepare)
    try:
        async with backend.write() as conn:
            await conn.run_sync(backend.lock_schema)
            await conn.run_sync(run_on)
    finally:
        await backend.engine.dispose()


shared = context.config.attributes.get("connection")
if shared is not None:
    run_on(shared)
else:
    if context.config.config_file_name is not None:
        fileConfig(context.config.config_file_name)
    if context.is_offline_mode():
        context.configure(url=parse_url(cli_url()), target_metadata=metadata,
                          version_table=VERSION_TABLE, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_cli(cli_url()))
