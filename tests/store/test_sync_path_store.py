"""The store's side of the sync path (issue 17): grouped id lookups, the batched
compare-and-set, and the durability setting of the SQLite URL."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import event

from router.store import open_store
from router.store.errors import StoreError
from router.store.lookups import GroupedLookup


async def test_lookups_that_arrive_together_share_a_query():
    asked: list[list[str]] = []
    gate = asyncio.Event()

    async def fetch(keys):
        asked.append(list(keys))
        await gate.wait()
        return {k: k.upper() for k in keys if k != "missing"}

    lookup = GroupedLookup(fetch)
    first = asyncio.create_task(lookup.get("a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(lookup.get(k)) for k in ("b", "c", "missing", "b")]
    await asyncio.sleep(0)
    gate.set()
    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", "C", None, "B"]
    assert asked[0] == ["a"] and sorted(asked[1]) == ["b", "c", "missing"]
    assert lookup.queries == 2


async def test_a_failed_query_fails_its_callers_and_the_next_ones_still_run():
    calls = 0

    async def fetch(keys):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise RuntimeError("database gone")
        return {k: 1 for k in keys}

    lookup = GroupedLookup(fetch)
    first = asyncio.create_task(lookup.get("a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(lookup.get("b"))
    with pytest.raises(RuntimeError, match="database gone"):
        await first
    assert await second == 1


async def test_a_cancelled_leader_hands_the_turn_on():
    started = asyncio.Event()

    async def fetch(keys):
        started.set()
        await asyncio.sleep(0.05)
        return {k: k for k in keys}

    lookup = GroupedLookup(fetch)
    leader = asyncio.create_task(lookup.get("a"))
    await started.wait()
    follower = asyncio.create_task(lookup.get("b"))
    await asyncio.sleep(0)
    leader.cancel()
    assert await asyncio.wait_for(follower, 2) == "b"


async def test_event_stored_at_answers_concurrent_asks(tmp_path):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    try:
        answers = await asyncio.gather(*(store.event_stored_at(f"e{i}") for i in range(50)))
        assert answers == [None] * 50
    finally:
        await store.close()


@pytest.mark.parametrize("query,level", [("", 1), ("?synchronous=normal", 1),
                                         ("?synchronous=FULL", 2)])
async def test_durability_is_set_by_the_url(tmp_path, query, level):
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}{query}")
    try:
        async with store._b.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == level
    finally:
        await store.close()
    sqlite3.connect(tmp_path / "r.db").close()


async def test_a_bad_durability_says_what_to_use(tmp_path):
    with pytest.raises(StoreError, match="use normal .* or full"):
        await open_store(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}?synchronous=off")


# --- the id index and the one-trip group commit (issue 17) ---------------------------------


def test_the_bloom_set_never_forgets_and_seldom_imagines():
    from router.store.ids import BloomSet

    ids = BloomSet(capacity=1000)  # grows past its first layer below
    added = [f"dev-{i}-{i * 7919}" for i in range(20_000)]
    for i in added:
        ids.add(i)
    assert all(i in ids for i in added) and len(ids) == 20_000
    false = sum(f"other-{i}" in ids for i in range(20_000))
    assert false < 20_000 * 0.03, f"{false} false positives in 20000"


async def test_stored_ids_are_answered_from_memory_once_loaded(tmp_path):
    from tests.store.test_event_store import World

    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    w = World()
    store = await open_store(url)
    try:
        await store.append_many([w.open("c1", 100.0), w.turn("c1", 101.0)])
    finally:
        await store.close()
    store = await open_store(url)  # a restart: the index loads what is stored
    try:
        assert await store.event_stored_at("k1-2") == ("k1", 2)  # before the load: a query
        for _ in range(100):
            if store._ids.ready:
                break
            await asyncio.sleep(0.01)
        assert store._ids.ready and store._ids.loaded == 2
        queries = store._id_lookup.queries
        assert await store.event_stored_at("k1-1") == ("k1", 1)  # "maybe": asked
        assert await asyncio.gather(*(store.event_stored_at(f"new-{i}")
                                      for i in range(200))) == [None] * 200
        assert store._id_lookup.queries - queries <= 1 + 200 * 0.03
        await store.append_many([w.turn("c1", 102.0)])  # added as it is stored
        assert await store.event_stored_at("k1-3") == ("k1", 3)
    finally:
        await store.close()


async def test_unknown_case_ids_are_answered_from_memory_once_loaded(tmp_path):
    """A caller-given case id on open is checked against the store; once the case-id index
    has loaded, an id it never saw costs no query, and every stored case is still found —
    those stored before this process opened the store (the load) and after (as stored)."""
    from tests.store.test_event_store import World

    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    w = World()
    store = await open_store(url)
    try:
        await store.append_many([w.open(f"c{i}", 100.0 + i) for i in range(30)])
    finally:
        await store.close()
    store = await open_store(url)  # a restart: the index loads what is stored
    try:
        assert (await store.get_case("c7")).id == "c7"  # before the load: a query
        for _ in range(200):
            if store._case_ids.ready:
                break
            await asyncio.sleep(0.01)
        assert store._case_ids.ready and store._case_ids.loaded == 30
        reads = 0

        def count(conn, cursor, statement, *args):
            nonlocal reads
            reads += "FROM cases" in statement

        event.listen(store._b.engine.sync_engine, "before_cursor_execute", count)
        assert [await store.get_case(f"new-{i}") for i in range(200)] == [None] * 200
        assert reads <= 200 * 0.03, f"{reads} reads for 200 unknown ids"
        assert [(await store.get_case(f"c{i}")).id for i in range(30)] == [f"c{i}" for i in range(30)]
        await store.append_many([w.open("c-later", 200.0)])  # added as it is stored
        assert (await store.get_case("c-later")).id == "c-later"
    finally:
        await store.close()


async def test_the_one_trip_commit_falls_back_when_an_id_is_taken(tmp_path):
    from router.store import SeqConflict
    from tests.store.test_event_store import World

    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    calls = 0
    one_trip = store._b.one_trip

    async def counting(*args):
        nonlocal calls
        calls += 1
        return await one_trip(*args)

    store._b.one_trip = counting
    try:
        w = World()
        first = [w.open("c1", 100.0), w.open("c2", 100.5, device="k2"), w.turn("c1", 101.0)]
        await store.append_many(first)
        assert calls == 1 and await store.high_water("k1") == 2
        event, case = w.turn("c1", 102.0)
        reused = event.model_copy(update={"event_id": "k2-1"})
        with pytest.raises(SeqConflict):  # the item-by-item path says what is wrong
            await store.append_many([w.turn("c2", 103.0, origin="k2"), (reused, case)])
        assert calls == 2
        assert await store.high_water("k1") == 2 and await store.high_water("k2") == 1
        assert [e.event_id for e in await store.case_events("c1")] == ["k1-1", "k1-2"]
    finally:
        await store.close()
