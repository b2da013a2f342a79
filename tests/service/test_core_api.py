"""The core's public face: bounded event subscriptions with a resync on overflow, no store
I/O under the core's lock, and the KPIs read in one query."""

from __future__ import annotations

import asyncio
import functools

from sqlalchemy import event as sa_event

from router.kpis import compute_kpis
from router.service.core.events import CaseChanged, EventBus, Resync, StepChanged
from tests.service.conftest import auth
from tests.service.test_conversation import say

WRITER_TASK = "baton-router-writer"  # the group commit: outside the lock by design


async def _take(sub, n: int) -> list:
    out = []
    async for item in sub:
        out.append(item)
        if len(out) == n:
            break
    return out


def test_a_subscriber_that_falls_behind_gets_one_resync_marker_and_then_events_again():
    async def run():
        bus = EventBus()
        slow, fast = bus.subscribe("slow", maxsize=3), bus.subscribe("fast", maxsize=100)
        steps = [StepChanged(f"c{i}", "s") for i in range(10)]
        bus.publish(steps[:3])
        assert slow.pending() == 3 and slow.overflows == 0
        bus.publish(steps[3:6])  # overflow: queued ones dropped, one marker in their place
        # 3 queued + the one that overflowed, then 2 more behind the marker
        assert slow.pending() == 1 and slow.overflows == 1 and slow.dropped == 6
        got = await _take(slow, 1)
        assert isinstance(got[0], Resync)
        bus.publish(steps[6:8])  # after the marker was taken: delivered again
        assert await _take(slow, 2) == steps[6:8]
        assert slow.dropped == 6 and slow.overflows == 1
        assert await _take(fast, 8) == steps[:8]  # the other subscriber lost nothing
        await slow.aclose()
        bus.publish(steps[8:])
        assert slow.pending() == 0 and "slow" not in bus.subscribers()
        ended = asyncio.create_task(_take(fast, 99))
        await asyncio.sleep(0)
        await bus.aclose()
        assert await ended == steps[8:]  # closing ends the iteration, after what was queued
    asyncio.run(run())


def test_the_sockets_feed_and_the_core_publish_only_durable_changes(router):
    seen = []

    async def watch():
        sub = router.core.subscribe("test", maxsize=1000)
        router.test_sub = sub

    router.call(watch)
    case = router.open_case(language="en", escalate=False)

    async def drain():
        while router.test_sub.pending():
            seen.append(await anext(router.test_sub))

    router.call(drain)
    changed = [e for e in seen if isinstance(e, CaseChanged)]
    assert changed and changed[-1].case.id == case["id"]
    assert changed[-1].case.state.value == "ai_active"
    assert router.core.subscribers()["test"]["overflows"] == 0


def test_no_store_io_happens_under_the_core_lock(router):
    """Every store call made while the core's lock is held, outside start-up and the
    writer (which commits outside the lock), is a finding."""
    core, under_lock = router.core, []

    def spy(name, fn):
        @functools.wraps(fn)
        async def wrapped(*a, **kw):
            task = asyncio.current_task()
            if core.lock.locked() and (task is None or task.get_name() != WRITER_TASK):
                under_lock.append(name)
            return await fn(*a, **kw)
        return wrapped

    store = core.store
    for name in dir(type(store)):
        fn = getattr(store, name)
        if not name.startswith("_") and asyncio.iscoroutinefunction(fn):
            setattr(store, name, spy(name, fn))
    # A presence change, a repeat contact's escalation by a resident's turn, an accept, a
    # device event, a close: the paths that used to read or write under the lock.
    router.available("emma")
    first = router.open_case(language="en", escalate=False, resident="res-1")
    given = router.open_case(language="en", escalate=False, case_id="c-given-1")
    assert given["id"] == "c-given-1"  # a caller's id is checked in the store, not under it
    say(router, first["id"], "I want to talk to a human right now.")
    router.advance(46)
    offer = router.case(first["id"])["case"]["pending_offer"]
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("emma"))
    assert r.status_code == 200, r.text
    r = router.client.post(f"/v1/cases/{first['id']}/close", headers=auth("emma"),
                           json={"status": "resolved"})
    assert r.status_code == 200, r.text
    again = router.open_case(language="en", escalate=False, resident="res-1")
    say(router, again["id"], "I want to talk to a human right now.")
    assert router.case(again["id"])["case"]["preferred_worker"] == "emma"
    r = router.client.put("/v1/workers/emma/presence", json={"presence": "away"},
                          headers=auth("emma"))
    assert r.status_code == 200, r.text
    event = {"event_id": "k1-9", "case_id": again["id"], "origin": "kiosk-1", "seq": 1,
             "ts": router.clock.now(), "type": "turn",
             "payload": {"speaker": "resident", "language": "en", "text": "still here"}}
    r = router.client.post("/v1/events", json=event, headers=auth("kiosk-1"))
    assert r.status_code == 200, r.text
    assert under_lock == [], f"store calls under the core's lock: {under_lock}"
    # ...and the presence was written (by the writer, with its unit).
    stored = router.call(store.worker_presence)
    assert stored["emma"][0] == "away"


def test_a_callers_case_id_is_refused_when_taken_in_memory_or_only_in_the_store(
        make_router, tmp_path):
    router = make_router()
    router.open_case(language="en", escalate=False, case_id="c-dup")
    r = router.client.post("/v1/cases", headers=auth("kiosk-1"), json={
        "site": "city-office", "device": "kiosk-1", "language": "en", "escalate": False,
        "case_id": "c-dup"})
    assert r.status_code == 409, r.text
    router.client.__exit__(None, None, None)
    again = make_router(db=tmp_path / "router.db")  # a new core: the case is in the store only
    r = again.client.post("/v1/cases", headers=auth("kiosk-1"), json={
        "site": "city-office", "device": "kiosk-1", "language": "en", "escalate": False,
        "case_id": "c-dup"})
    assert r.status_code == 409, r.text


def test_the_packet_of_an_open_case_is_built_from_memory_as_the_store_would(router):
    """An accept's packet comes from the core's events of the case (no store read); it is
    the packet the store's events give, for a case with turns, an escalation and an accept,
    and a closed case's packet still comes from the store."""
    from router.packet import full_packet

    core = router.core
    router.available("emma")
    case = router.open_case(language="en", escalate=False)
    for text in ("Where do I renew my residence card?", "I want to talk to a human now."):
        r = say(router, case["id"], text)
        assert r.status_code == 200, r.text
    offer = None
    for _ in range(10):  # the workflow's steps widen the pool over time
        router.advance(46)
        offer = router.case(case["id"])["case"]["pending_offer"]
        if offer is not None and offer["worker_id"] == "emma":
            break
    assert offer is not None and offer["worker_id"] == "emma", router.case(case["id"])
    reads = []
    store_events = core.store.case_events

    async def counted(case_id):
        reads.append(case_id)
        return await store_events(case_id)

    core.store.case_events = counted
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("emma"))
    assert r.status_code == 200, r.text
    assert reads == []  # the accept's packet came from memory
    from_store = router.call(functools.partial(full_packet, core, case["id"]))
    assert reads == [case["id"]]
    assert r.json()["packet"] == from_store
    assert router.call(core.packet, case["id"]) == from_store
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("emma"),
                           json={"status": "resolved"})
    assert r.status_code == 200, r.text
    router.call(core.packet, case["id"])
    assert reads == [case["id"]] * 2  # a closed case: read from the store, as before


def test_kpis_are_read_in_one_query_whatever_the_number_of_cases(router):
    router.available("emma")
    for n in range(6):
        case = router.open_case(language="en", escalate=False, resident=f"r{n % 2}")
        say(router, case["id"], "What time does the office close today?")
        r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("supervisor"),
                               json={"status": "resolved", "ai_verdict": "right"})
        assert r.status_code == 200, r.text
    engine = router.core.store._b.engine.sync_engine  # the store's SQLAlchemy engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        k = router.client.get("/v1/kpis", headers=auth("supervisor"))
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert k.status_code == 200, k.text
    assert len(statements) == 1, statements
    # The same figures as the fold over each case's events read one by one.

    async def slow_way():
        cases = await router.core.store.list_cases(limit=1000)
        return [(c, await router.core.store.case_events(c.id)) for c in cases]

    want = compute_kpis(router.call(slow_way), repeat_window_days=30).model_dump(mode="json")
    assert k.json() == want
    assert k.json()["cases"] == 6 and k.json()["repeat_contact_rate"] is not None
