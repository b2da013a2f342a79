"""Leases and epoch fencing on a real PostgreSQL (router/ha/leases.py, fenced.py)."""

from __future__ import annotations

import asyncio

import pytest

from router.ha.fenced import PartitionStore
from router.ha.leases import Deposed, LeaseBook
from router.store import StoreError, open_store
from tests.store.test_event_store import World

pytestmark = pytest.mark.postgres
TTL = 0.6


async def test_one_leader_per_partition_and_a_deposed_leader_cannot_write(pg_url):
    store = await open_store(pg_url)
    try:
        book = LeaseBook(store)
        e1 = await book.acquire("city", "router:a", TTL)
        assert e1 == 1
        assert await book.acquire("city", "router:b", TTL) is None  # a holds it
        assert await book.acquire("north", "router:b", TTL) == 1  # partitions are apart
        a = PartitionStore(store, sites=frozenset({"s1"}),
                           fence=LeaseBook.fence("city", "router:a", e1))
        world = World()
        await a.append(*world.open("c1", 1.0, device="router:a:city"))
        # a stops renewing (paused past its lease); b takes over with a new epoch.
        await asyncio.sleep(TTL + 0.2)
        e2 = await book.acquire("city", "router:b", TTL)
        assert e2 == e1 + 1
        assert not await book.renew("city", "router:a", e1, TTL)
        with pytest.raises(Deposed) as refused:
            await a.append(*world.turn("c1", 2.0, origin="router:a:city"))
        assert refused.value.reason == "deposed"
        assert await store.high_water("router:a:city") == 1  # nothing written
        assert [e.seq for e in await store.case_events("c1")] == [1]
        b = PartitionStore(store, sites=frozenset({"s1"}),
                           fence=LeaseBook.fence("city", "router:b", e2))
        await b.append(*world.turn("c1", 3.0, origin="router:b:city"))
        assert [(e.origin, e.seq) for e in await store.case_events("c1")] == [
            ("router:a:city", 1), ("router:b:city", 1)]
        leases = {lease.partition: lease for lease in await book.all()}
        assert (leases["city"].holder, leases["city"].epoch) == ("router:b", 2)
    finally:
        await store.close()


async def test_an_expired_lease_refuses_writes_even_before_anyone_takes_it(pg_url):
    store = await open_store(pg_url)
    try:
        book = LeaseBook(store)
        epoch = await book.acquire("city", "router:a", TTL)
        a = PartitionStore(store, sites=frozenset({"s1"}),
                           fence=LeaseBook.fence("city", "router:a", epoch))
        await asyncio.sleep(TTL + 0.2)
        with pytest.raises(Deposed):
            await a.append(*World().open("c1", 1.0, device="router:a:city"))
        # Renewal of the expired term fails; acquiring again opens a new term.
        assert not await book.renew("city", "router:a", epoch, TTL)
        assert await book.acquire("city", "router:a", TTL) == epoch + 1
    finally:
        await store.close()


async def test_a_takeover_waits_for_the_old_terms_in_flight_append(pg_url):
    """The fence reads the lease FOR SHARE: the old term's transaction commits before the new
    term begins, so the new leader's rebuild sees it."""
    store = await open_store(pg_url)
    try:
        book = LeaseBook(store)
        epoch = await book.acquire("city", "router:a", TTL)
        a = PartitionStore(store, sites=frozenset({"s1"}),
                           fence=LeaseBook.fence("city", "router:a", epoch))
        world = World()
        event, case = world.open("c1", 1.0, device="router:a:city")
        held = asyncio.Event()
        release = asyncio.Event()

        async def slow_append():
            async with a._b.write() as conn:  # the fence ran: the share lock is held
                held.set()
                await release.wait()
                await a._appender.append(conn, event, case)

        writer = asyncio.create_task(slow_append())
        await held.wait()
        await asyncio.sleep(TTL + 0.2)  # the lease expired while the append is in flight
        takeover = asyncio.create_task(book.acquire("city", "router:b", TTL))
        await asyncio.sleep(0.3)
        assert not takeover.done()  # waits for the in-flight transaction
        release.set()
        await writer
        assert await takeover == epoch + 1
        assert await store.high_water("router:a:city") == 1
    finally:
        await store.close()


async def test_leases_need_postgresql(tmp_path):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        with pytest.raises(StoreError, match="needs PostgreSQL"):
            LeaseBook(store)
    finally:
        await store.close()
