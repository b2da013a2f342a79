"""The store's side of the sync path (issue 17): grouped id lookups, the batched
compare-and-set, and the durability setting of the SQLite URL."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

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
