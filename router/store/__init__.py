"""The event store: append-only case events with per-origin sequence rules, the case
projection, worker presence and dead letters. SQLite (WAL) by default, PostgreSQL when
several routers share the work, through the same code.

    store = await open_store("sqlite+aiosqlite:///var/baton.db")
    status = await store.append(event, case)   # AppendStatus.applied | .duplicate
    await store.close()
"""

from __future__ import annotations

import asyncio
import logging

from router.store.backend import make_backend
from router.store.errors import SeqConflict, SeqGap, StoreError, StoreUnavailable, translating
from router.store.events import EventStore
from router.store.migrate import migrate
from router.store.status import AppendStatus

__all__ = ["AppendStatus", "EventStore", "SeqConflict", "SeqGap", "StoreError",
           "StoreUnavailable", "open_store"]

log = logging.getLogger(__name__)


async def open_store(url: str) -> EventStore:
    """Connect, bring the schema to the latest revision (a no-op when it is there) and
    return the store. URLs: ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...``
    (``sqlite://`` and ``postgresql://`` are accepted as aliases)."""
    backend = make_backend(url)
    try:
        with translating("open the store", backend.where):
            if backend.prepare is not None:
                await asyncio.to_thread(backend.prepare)
            revision = await migrate(backend)
    except BaseException:
        await backend.engine.dispose()
        raise
    log.info("store open", extra={"backend": backend.name, "revision": revision})
    return EventStore(backend)
