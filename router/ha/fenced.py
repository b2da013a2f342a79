"""The store view a partition's leader writes through: every write transaction starts with
the lease fence of its term (router/ha/leases.py), and restart recovery reads only the
partition's cases. It shares the main store's engine and connection pool; closing it is a
no-op (the main store owns the engine)."""

from __future__ import annotations

import dataclasses

from router.casestate import Case
from router.store import EventStore


class PartitionStore(EventStore):
    def __init__(self, store: EventStore, *, sites: frozenset[str], fence):
        super().__init__(dataclasses.replace(store._b, fence=fence))
        self.sites = sites

    async def open_cases(self) -> list[Case]:
        # Filtered here, not in SQL: recovery runs once per term and reads few open cases.
        return [c for c in await super().open_cases() if c.site in self.sites]

    async def close(self) -> None:
        self._closed = True  # the engine belongs to the main store

    aclose = close
