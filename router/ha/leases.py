"""Partition leadership by lease rows in PostgreSQL, with an epoch that fences writes.

A lease row (tables.leases) says who leads a partition, under which epoch, until when. Time
is PostgreSQL's clock (``clock_timestamp()``), never a router's. Rules:

- ``acquire``: take the row when it is expired (or already ours, a restart of the same
  instance); the epoch grows by one at every acquire, so the previous term is over.
- ``renew``: push the expiry forward only while the row still holds our (holder, epoch)
  and has not expired. A leader whose renewal fails has lost the partition, even if nobody
  took it yet: it must stop its core and acquire again (a new epoch, a rebuild).
- ``fence``: run first in every write transaction of the leader's store view
  (Backend.fence). It reads our row ``FOR SHARE`` and requires (holder, epoch) and an
  unexpired lease: a takeover's UPDATE waits for in-flight appends of the old term to
  commit, and every later write of the old term fails with ``Deposed`` in the transaction
  that would have stored it. That is what makes a leader paused past its lease (GC, SIGSTOP,
  a network cut) harmless when it resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from router.store import EventStore, StoreError
from router.store.errors import translating

_NOW = "extract(epoch from clock_timestamp())"

_ACQUIRE = text(f"""
INSERT INTO leases (partition, holder, epoch, expires_at, address)
VALUES (:p, :h, 1, {_NOW} + :ttl, :a)
ON CONFLICT (partition) DO UPDATE
   SET holder = excluded.holder, epoch = leases.epoch + 1, expires_at = excluded.expires_at,
       address = excluded.address
 WHERE leases.holder = excluded.holder OR leases.expires_at <= {_NOW}
RETURNING epoch""")

_RENEW = text(f"""
UPDATE leases SET expires_at = {_NOW} + :ttl
 WHERE partition = :p AND holder = :h AND epoch = :e AND expires_at > {_NOW}
RETURNING epoch""")

_RELEASE = text(f"""
UPDATE leases SET expires_at = {_NOW}
 WHERE partition = :p AND holder = :h AND epoch = :e""")

_FENCE = text(f"""
SELECT 1 FROM leases
 WHERE partition = :p AND holder = :h AND epoch = :e AND expires_at > {_NOW}
   FOR SHARE""")

# The partition's live leader and the address its instance row advertises (router/ha/
# forward.py); the holder is "router:<instance>", its instance row "instance/<instance>".
_LEADER = text(f"""
SELECT p.holder, p.epoch, i.address FROM leases p
  LEFT JOIN leases i ON i.partition = 'instance/' || substr(p.holder, 8)
                    AND i.holder = p.holder AND i.expires_at > {_NOW}
 WHERE p.partition = :p AND p.expires_at > {_NOW}""")

_ALL = text(f"SELECT partition, holder, epoch, expires_at - {_NOW} FROM leases "
            "ORDER BY partition")


class Deposed(StoreError):
    """A write of a leader whose term is over (its lease expired or another router took
    the partition): nothing was written. The router stops that partition's core."""

    reason = "deposed"

    def __init__(self, partition: str, holder: str, epoch: int):
        self.partition, self.holder, self.epoch = partition, holder, epoch
        super().__init__(f"router {holder!r} no longer leads partition {partition!r} (epoch "
                         f"{epoch} is over): the write was refused; the partition's current "
                         "leader takes the work")


@dataclass(frozen=True, slots=True)
class Lease:
    partition: str
    holder: str
    epoch: int
    remaining_s: float  # negative: expired


class LeaseBook:
    """The lease rows, through the store's PostgreSQL engine."""

    def __init__(self, store: EventStore):
        if store.backend != "postgresql":
            raise StoreError("high availability needs PostgreSQL (several routers share its "
                             "leases); the store is "
                             f"{store.backend}: use --db postgresql+asyncpg://user@host/db, "
                             "or run a single router without partitions")
        self._b = store._b

    async def acquire(self, partition: str, holder: str, ttl_s: float,
                      address: str | None = None) -> int | None:
        """The new epoch when we now lead ``partition``; None when another router does.
        ``address``: what the row advertises (instance rows: the router's base URL)."""
        with translating("lease " + partition, self._b.where):
            async with self._b.engine.begin() as conn:
                return await conn.scalar(_ACQUIRE, {"p": partition, "h": holder, "ttl": ttl_s,
                                                    "a": address})

    async def renew(self, partition: str, holder: str, epoch: int, ttl_s: float) -> bool:
        with translating("renew the lease of " + partition, self._b.where):
            async with self._b.engine.begin() as conn:
                return await conn.scalar(_RENEW, {"p": partition, "h": holder, "e": epoch,
                                                  "ttl": ttl_s}) is not None

    async def release(self, partition: str, holder: str, epoch: int) -> None:
        """Let the partition go now (a clean shutdown): others need not wait for expiry."""
        with translating("release the lease of " + partition, self._b.where):
            async with self._b.engine.begin() as conn:
                await conn.execute(_RELEASE, {"p": partition, "h": holder, "e": epoch})

    async def all(self) -> list[Lease]:
        with translating("read the leases", self._b.where):
            async with self._b.read() as conn:
                rows = await conn.execute(_ALL)
                return [Lease(p, h, int(e), float(r)) for p, h, e, r in rows]

    async def leader_of(self, partition: str) -> tuple[str, int, str | None] | None:
        """(holder, epoch, advertised address or None) of the partition's unexpired lease;
        None when nobody leads it now."""
        with translating("read the leader of " + partition, self._b.where):
            async with self._b.read() as conn:
                row = (await conn.execute(_LEADER, {"p": partition})).first()
        return None if row is None else (row[0], int(row[1]), row[2])

    @staticmethod
    def fence(partition: str, holder: str, epoch: int):
        """The Backend.fence of the leader's store view for this term."""
        params = {"p": partition, "h": holder, "e": epoch}

        async def check(conn: AsyncConnection) -> None:
            if await conn.scalar(_FENCE, params) is None:
                raise Deposed(partition, holder, epoch)

        return check
