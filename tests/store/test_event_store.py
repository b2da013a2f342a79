"""The event store on SQLite and PostgreSQL (fixtures in conftest.py): sequence rules,
the case projection and its queries, presence, dead letters, migrations, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from protocol.models import CaseEvent
from router.casestate import Case, apply
from router.store import (
    AppendStatus,
    EventStore,
    SeqConflict,
    SeqGap,
    StoreError,
    StoreUnavailable,
    open_store,
)
from router.store.migrate import VERSION_TABLE, head_revision
from router.store.tables import metadata
from tests.helpers import free_port

EVENT = TypeAdapter(CaseEvent)


class World:
    """Mints events like the real origins do (consecutive seq per origin) and folds them
    into cases with router.casestate, so every append gets the case it produced."""

    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}
        self.cases: dict[str, Case] = {}

    def emit(self, origin: str, case_id: str, type_: str, payload: dict[str, Any], ts: float,
             event_id: str | None = None) -> tuple[Any, Case]:
        seq = self.seqs.get(origin, 0) + 1
        self.seqs[origin] = seq
        event = EVENT.validate_python({
            "event_id": event_id or f"{origin}-{seq}", "case_id": case_id, "origin": origin,
            "seq": seq, "ts": ts, "type": type_, "payload": payload})
        case = apply(self.cases.get(case_id), event)
        self.cases[case_id] = case
        return event, case

    def open(self, case_id: str, ts: float, *, site: str = "s1", device: str = "k1",
             resident: str | None = "r1") -> tuple[Any, Case]:
        return self.emit(device, case_id, "opened", {"site": site, "device": device,
                                                     "resident": resident, "language": "en"}, ts)

    def turn(self, case_id: str, ts: float, text: str = "hello", origin: str = "k1"):
        return self.emit(origin, case_id, "turn",
                         {"speaker": "resident", "language": "en", "text": text}, ts)

    def connect_worker(self, case_id: str, worker: str, ts: float) -> list[tuple[Any, Case]]:
        offer = {"offer_id": f"o-{case_id}-{worker}", "case_id": case_id, "worker_id": worker,
                 "created_at": ts, "expires_at": ts + 30, "step": "any"}
        return [
            self.emit("router", case_id, "decision",
                      {"decision": {"decision": "escalate", "reasons": ["asked"]}}, ts),
            self.emit("router", case_id, "queued", {"requirement": {"language": "en"}}, ts),
            self.emit("router", case_id, "offer", {"offer": offer}, ts + 1),
            self.emit("router", case_id, "offer_result", {
                "offer_id": offer["offer_id"], "worker_id": worker, "status": "accepted"}, ts + 2),
        ]

    def close(self, case_id: str, ts: float, status: str = "resolved"):
        return self.emit("router", case_id, "outcome", {"status": status}, ts)


async def append_all(store: EventStore, items: list[tuple[Any, Case]]) -> None:
    for event, case in items:
        assert await store.append(event, case) == AppendStatus.applied


async def handled_case(store: EventStore, world: World, case_id: str, *, resident: str,
                       worker: str | None, ts: float, status: str = "resolved",
                       handback: bool = False) -> None:
    """Open, (escalate to ``worker``, maybe hand back to the AI), close."""
    items = [world.open(case_id, ts, resident=resident)]
    if worker:
        items += world.connect_worker(case_id, worker, ts + 1)
        if handback:
            items.append(world.emit("router", case_id, "handback", {
                "worker_id": worker, "reason": "routine_remaining"}, ts + 5))
    items.append(world.close(case_id, ts + 10, status))
    await append_all(store, items)


# --- sequence rules -----------------------------------------------------------------------


async def test_append_stores_event_and_projection(store: EventStore) -> None:
    w = World()
    event, case = w.open("c1", 100.0)
    assert await store.append(event, case) == AppendStatus.applied
    assert await store.case_events("c1") == [event]
    assert await store.get_case("c1") == case
    assert await store.high_water("k1") == 1
    assert await store.high_water("nobody") == 0
    assert await store.get_case("nope") is None


async def test_duplicate_is_a_noop(store: EventStore) -> None:
    w = World()
    first = w.open("c1", 100.0)
    second = w.turn("c1", 101.0)
    await append_all(store, [first, second])
    # The same events again (an edge replaying its outbox), with the cases they once made.
    assert await store.append(*first) == AppendStatus.duplicate
    assert await store.append(*second) == AppendStatus.duplicate
    assert await store.case_events("c1") == [first[0], second[0]]
    assert (await store.get_case("c1")).revision == 2  # the projection did not go back
    assert await store.high_water("k1") == 2


async def test_same_seq_other_event_id_is_a_conflict(store: EventStore) -> None:
    w = World()
    event, case = w.open("c1", 100.0)
    await store.append(event, case)
    impostor = event.model_copy(update={"event_id": "other-id"})
    with pytest.raises(SeqConflict) as info:
        await store.append(impostor, case)
    assert "'k1' seq 1" in str(info.value) and "'other-id'" in str(info.value)
    assert info.value.held_by == event.event_id
    assert await store.case_events("c1") == [event]


async def test_event_id_reused_at_another_seq_writes_nothing(store: EventStore) -> None:
    w = World()
    await append_all(store, [w.open("c1", 100.0)])
    event, case = w.turn("c1", 101.0)
    reused = event.model_copy(update={"event_id": "k1-1"})  # the id of seq 1
    with pytest.raises(SeqConflict) as info:
        await store.append(reused, case)
    assert info.value.stored_at == ("k1", 1)
    assert "event_id 'k1-1' is already stored as origin 'k1' seq 1" in str(info.value)
    # The high-water mark advanced inside the failed transaction and was rolled back.
    assert await store.high_water("k1") == 1
    assert await store.append(event, case) == AppendStatus.applied
    assert await store.high_water("k1") == 2


async def test_gap_is_refused_and_nothing_written(store: EventStore) -> None:
    w = World()
    await append_all(store, [w.open("c1", 100.0)])
    skipped = w.turn("c1", 101.0)
    later = w.turn("c1", 102.0)
    with pytest.raises(SeqGap) as info:
        await store.append(*later)
    assert (info.value.origin, info.value.expected, info.value.got) == ("k1", 2, 3)
    assert "expected seq 2, got 3" in str(info.value) and "replay" in str(info.value)
    assert await store.high_water("k1") == 1
    assert len(await store.case_events("c1")) == 1
    await append_all(store, [skipped, later])
    assert await store.high_water("k1") == 3


async def test_first_event_of_an_origin_must_be_seq_1(store: EventStore) -> None:
    w = World()
    w.seqs["k9"] = 4
    with pytest.raises(SeqGap) as info:
        await store.append(*w.open("c1", 100.0, device="k9"))
    assert (info.value.expected, info.value.got) == (1, 5)
    assert await store.high_waters() == {}


async def test_event_must_match_its_case(store: EventStore) -> None:
    w = World()
    event, _ = w.open("c1", 100.0)
    _, other = w.open("c2", 100.0, device="k2")
    with pytest.raises(StoreError, match="pass the case"):
        await store.append(event, other)


async def test_append_many_is_all_or_nothing(store: EventStore) -> None:
    w = World()
    opened = w.open("c1", 100.0)
    ok = [w.turn("c1", 101.0), w.turn("c1", 102.0)]
    assert await store.append_many([opened, *ok]) == ["applied"] * 3
    turn = w.turn("c1", 103.0)
    w.seqs["k1"] += 1  # the next one skips a seq
    gap = w.turn("c1", 104.0)
    with pytest.raises(SeqGap):
        await store.append_many([turn, gap])
    assert await store.high_water("k1") == 3
    assert len(await store.case_events("c1")) == 3
    # Duplicates inside a batch are reported per item and skipped.
    assert await store.append_many([ok[1], turn]) == [AppendStatus.duplicate,
                                                      AppendStatus.applied]
    assert await store.append_many([]) == []


async def test_events_come_back_in_append_order(store: EventStore) -> None:
    w = World()
    items = [w.open("c1", 100.0), w.open("c2", 100.5, device="k2")]
    items += w.connect_worker("c1", "wk1", 101.0)
    items += [w.turn("c1", 99.0, text="late clock \x00 ünïcode ☃", origin="k1"),
              w.turn("c2", 103.0, origin="k2")]
    items += [w.emit("wk1", "c1", "note", {"author": "wk1", "text": "called back"}, 104.0),
              w.emit("router", "c1", "action", {"tool": "lookup", "args": {"n": 1.25},
                                                "result": {"ok": [1, None]}}, 105.0),
              w.close("c1", 106.0)]
    await append_all(store, items)
    assert await store.case_events("c1") == [e for e, _ in items if e.case_id == "c1"]
    assert await store.case_events("c2") == [e for e, _ in items if e.case_id == "c2"]
    assert await store.high_waters() == {"k1": 2, "k2": 2, "router": 6, "wk1": 1}
    assert await store.case_events("none") == []


# --- projection ---------------------------------------------------------------------------


async def test_list_cases_filters_and_order(store: EventStore) -> None:
    w = World()
    await append_all(store, [w.open("a", 100.0, site="s1", resident="r1"),
                             w.open("b", 200.0, site="s2", resident="r2", device="k2"),
                             w.open("c", 300.0, site="s1", resident="r1", device="k3")])
    await append_all(store, w.connect_worker("b", "wk1", 201.0))
    await append_all(store, [*w.connect_worker("c", "wk2", 301.0), w.close("c", 310.0)])

    def ids(cases: list[Case]) -> list[str]:
        return [c.id for c in cases]

    assert ids(await store.list_cases()) == ["c", "b", "a"]  # newest first
    assert ids(await store.list_cases(site="s1")) == ["c", "a"]
    assert ids(await store.list_cases(resident="r2")) == ["b"]
    assert ids(await store.list_cases(worker="wk2")) == ["c"]  # kept after resolving
    assert ids(await store.list_cases(states=["connected", "ai_active"])) == ["b", "a"]
    assert ids(await store.list_cases(states=["resolved"], site="s1")) == ["c"]
    assert ids(await store.list_cases(case_ids=["a", "c", "zz"])) == ["c", "a"]
    assert ids(await store.list_cases(states=[])) == []
    assert ids(await store.list_cases(limit=2)) == ["c", "b"]
    assert ids(await store.list_cases(limit=2, offset=2)) == ["a"]
    assert (await store.list_cases(case_ids=["b"]))[0] == w.cases["b"]
    with pytest.raises(ValueError):
        await store.list_cases(limit=-1)


async def test_open_cases_are_the_non_terminal_ones(store: EventStore) -> None:
    w = World()
    await handled_case(store, w, "done", resident="r1", worker="wk1", ts=50.0)
    await handled_case(store, w, "gone", resident="r1", worker=None, ts=60.0,
                       status="abandoned")
    await append_all(store, [w.open("new", 100.0), w.open("old", 90.0, device="k2")])
    await append_all(store, w.connect_worker("new", "wk1", 101.0))
    assert [c.id for c in await store.open_cases()] == ["old", "new"]
    assert {c.state for c in await store.open_cases()} == {"ai_active", "connected"}


async def test_projection_never_goes_back(store: EventStore) -> None:
    w = World()
    first = w.open("c1", 100.0)
    second = w.turn("c1", 101.0)
    await append_all(store, [first, second])
    await store.put_case(first[1])  # an older revision, e.g. from a stale router
    assert await store.get_case("c1") == second[1]
    newer = second[1].model_copy(update={"revision": 3, "intent": "parking"})
    await store.put_case(newer)
    assert await store.get_case("c1") == newer


async def test_resident_last_worker(store: EventStore) -> None:
    w = World()
    await handled_case(store, w, "c1", resident="r1", worker="wk1", ts=100.0)  # closed 110
    await handled_case(store, w, "c2", resident="r1", worker="wk2", ts=200.0)  # closed 210
    await handled_case(store, w, "c3", resident="r1", worker=None, ts=300.0)  # AI only
    await handled_case(store, w, "c4", resident="r1", worker="wk4", ts=400.0,
                       status="abandoned")
    await handled_case(store, w, "c5", resident="r2", worker="wk5", ts=500.0)
    await append_all(store, [w.open("c6", 600.0, resident="r1")])  # still open
    await append_all(store, w.connect_worker("c6", "wk6", 601.0))
    assert await store.resident_last_worker("r1", 0.0) == "wk2"
    assert await store.resident_last_worker("r1", 210.0) == "wk2"  # at the boundary
    assert await store.resident_last_worker("r1", 150.0) == "wk2"
    assert await store.resident_last_worker("r1", 210.5) is None
    assert await store.resident_last_worker("r2", 0.0) == "wk5"
    assert await store.resident_last_worker("r3", 0.0) is None


async def test_resident_last_worker_after_a_handback(store: EventStore) -> None:
    w = World()
    await handled_case(store, w, "c1", resident="r1", worker="wk1", ts=100.0, handback=True)
    assert (await store.get_case("c1")).assigned_worker is None  # handback cleared it
    assert await store.resident_last_worker("r1", 0.0) == "wk1"  # the last accepted handoff


# --- presence and dead letters --------------------------------------------------------------


async def test_worker_presence(store: EventStore) -> None:
    assert await store.worker_presence() == {}
    await store.set_worker_presence("wk1", "available", 10.0)
    await store.set_worker_presence("wk2", "away", 11.0)
    await store.set_worker_presence("wk1", "offline", 12.0)
    await store.set_worker_presence("wk1", "available", 5.0)  # older report: ignored
    assert await store.worker_presence() == {"wk1": ("offline", 12.0), "wk2": ("away", 11.0)}


async def test_dead_letters_keep_bad_input(store: EventStore) -> None:
    await store.dead_letter("baton/v1/s1/k1/events", "invalid JSON", "{not json", 1.0)
    nasty = "bad\x00byte \udcff lone surrogate " + "x" * 100_000
    await store.dead_letter("ws:agent", "oversized", nasty, 2.0)
    letters = await store.dead_letters()
    assert [d["source"] for d in letters] == ["ws:agent", "baton/v1/s1/k1/events"]
    assert letters[1] | {"id": 0} == {"id": 0, "source": "baton/v1/s1/k1/events",
                                      "reason": "invalid JSON", "raw": "{not json",
                                      "raw_size": 9, "ts": 1.0}
    assert letters[0]["raw"].startswith("bad\\x00byte \\udcff lone surrogate xxx")
    assert letters[0]["raw_size"] == len(nasty) and len(letters[0]["raw"]) < len(nasty)
    await store.dead_letter("mqtt", "not UTF-8", b"\xff\xfeok", 3.0)
    assert (await store.dead_letters(limit=1))[0]["raw"] == "\\xff\\xfeok"
    assert len(await store.dead_letters(limit=1)) == 1


async def test_refused_seqs_and_dead_letter_pages(store: EventStore) -> None:
    from router.store.sync import SyncStore

    sync = SyncStore(store)
    assert await sync.skip_seq("k9", 1, source="mqtt:baton/v1/s/k9/events",
                               reason="not_allowed: no", raw="{}", ts=1.0, event_id="k9-1")
    assert await sync.skip_seq("k9", 2, source="rest:/v1/events", reason="schema: no",
                               raw="x", ts=2.0)
    assert not await sync.skip_seq("k9", 2, source="rest:/v1/events", reason="again",
                                   raw="x", ts=3.0)  # consumed already
    assert await store.held_at("k9", 1) == ("refused", "k9-1")
    assert await store.held_at("k9", 2) == ("refused", None)
    assert await store.held_at("k9", 3) is None
    assert await store.high_water("k9") == 2
    await store.dead_letters_many([(f"mqtt:baton/v1/s/k{i % 2}/events", "malformed_json: x",
                                    b"\xff", 10.0 + i) for i in range(25)])
    pages, before = [], None
    while True:
        page = await store.dead_letters(10, before_id=before, source_prefix="mqtt:")
        if not page:
            break
        pages.append(page)
        before = page[-1]["id"]
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == 26 == len(set(ids)) and ids == sorted(ids, reverse=True)
    only = await store.dead_letters(100, source_prefix="mqtt:baton/v1/s/k1/")
    assert len(only) == 12


# --- lifecycle and migrations -------------------------------------------------------------


async def _schema_diff(url: str) -> tuple[list, list]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            def diff(sync_conn):
                return compare_metadata(MigrationContext.configure(sync_conn), metadata)
            changes = await conn.run_sync(diff)
            versions = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")))
            return [c for c in changes if VERSION_TABLE not in repr(c)], versions.scalars().all()
    finally:
        await engine.dispose()


async def test_reopen_keeps_data_and_migrating_again_is_a_noop(fresh_url: str) -> None:
    w = World()
    store = await open_store(fresh_url)
    await handled_case(store, w, "c1", resident="r1", worker="wk1", ts=100.0)
    await store.set_worker_presence("wk1", "available", 1.0)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.high_waters()

    async with await open_store(fresh_url) as again:
        assert await again.get_case("c1") == w.cases["c1"]
        assert len(await again.case_events("c1")) == 6
        assert await again.high_waters() == {"k1": 1, "router": 5}
        assert await again.worker_presence() == {"wk1": ("available", 1.0)}
        await append_all(again, [w.open("c2", 200.0)])
    changes, versions = await _schema_diff(fresh_url)
    assert changes == []  # the migrations build exactly tables.py
    assert versions == [head_revision()]


async def test_stores_opening_together_migrate_once(fresh_url: str) -> None:
    stores = await asyncio.gather(*(open_store(fresh_url) for _ in range(3)))
    try:
        w = World()
        await append_all(stores[0], [w.open("c1", 1.0)])
        assert await stores[2].high_water("k1") == 1
    finally:
        for s in stores:
            await s.close()


# --- concurrency --------------------------------------------------------------------------


async def test_many_concurrent_appends(store: EventStore) -> None:
    w = World()
    origins, per_origin = 8, 40

    async def device(n: int) -> None:
        await store.append(*w.open(f"c{n}", 100.0 + n, device=f"k{n}"))
        for i in range(per_origin - 1):
            await store.append(*w.turn(f"c{n}", 101.0 + i, text=f"t{i}", origin=f"k{n}"))

    async def reader() -> None:
        for _ in range(20):
            await store.high_waters()
            await store.list_cases(limit=5)
            await asyncio.sleep(0)

    await asyncio.gather(*(device(n) for n in range(origins)), reader(), reader())
    assert await store.high_waters() == {f"k{n}": per_origin for n in range(origins)}
    for n in range(origins):
        events = await store.case_events(f"c{n}")
        assert [e.seq for e in events] == list(range(1, per_origin + 1))
        assert (await store.get_case(f"c{n}")).revision == per_origin


async def test_concurrent_copies_of_one_event_apply_once(store: EventStore) -> None:
    w = World()
    first = w.open("c1", 1.0)
    second = w.turn("c1", 2.0)
    for item in (first, second):  # seq 1 (origin row created) and seq 2 (row advanced)
        results = await asyncio.gather(*(store.append(*item) for _ in range(10)))
        assert sorted(results) == ["applied"] + ["duplicate"] * 9
    assert len(await store.case_events("c1")) == 2


async def test_two_stores_on_one_database(url: str) -> None:
    """Two routers (or processes) sharing a database: the sequence rules still hold."""
    a, b = await open_store(url), await open_store(url)
    try:
        w = World()
        items = [w.open("c1", 1.0)] + [w.turn("c1", 2.0 + i) for i in range(30)]
        for i, item in enumerate(items):  # alternate writers on one origin
            assert await (a if i % 2 else b).append(*item) == AppendStatus.applied
        racing = w.turn("c1", 50.0)
        results = await asyncio.gather(*(s.append(*racing) for s in (a, b, a, b)))
        assert sorted(results) == ["applied"] + ["duplicate"] * 3
        impostor = racing[0].model_copy(update={"event_id": "impostor"})
        with pytest.raises(SeqConflict):
            await b.append(impostor, racing[1])
        w.seqs["k1"] += 1
        with pytest.raises(SeqGap):
            await a.append(*w.turn("c1", 60.0))
        assert await a.high_water("k1") == await b.high_water("k1") == 32
    finally:
        await a.close()
        await b.close()


# --- errors -------------------------------------------------------------------------------


async def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreUnavailable, match="cannot reach .*check that the database is"):
        await open_store(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite+aiosqlite://", "nonsense"])
async def test_unsupported_urls_say_what_to_use(url: str) -> None:
    with pytest.raises(StoreError, match="sqlite\\+aiosqlite:///"):
        await open_store(url)


async def test_a_row_that_no_longer_parses_is_a_store_error(store: EventStore, url: str) -> None:
    w = World()
    await append_all(store, [w.open("c1", 1.0)])
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE cases SET data = :d"), {"d": '{"id": "c1"}'})
    finally:
        await engine.dispose()
    with pytest.raises(StoreError, match="rebuild the projection"):
        await store.get_case("c1")
