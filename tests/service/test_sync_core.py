"""The core's side of the sync path (issue 17): an event id is refused while another event
holding it is staged but not yet durable (answered from a map, not a scan of the writer's
queue), and from the store once it is; commands do not wake the timer loop unless they made
the engine's next deadline earlier."""

from __future__ import annotations

import asyncio
from pathlib import Path

from router.service.core import RouterCore
from router.store import open_store
from tests.fuzz.test_properties import CFG, DEVICE, SITE, device_events
from tests.service.conftest import ManualClock


async def _core(tmp_path: Path, **kw) -> RouterCore:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    core = RouterCore(CFG, store, clock=ManualClock(), **kw)
    await core.start()
    return core


async def _close(core: RouterCore) -> None:
    await core.aclose()
    await core.store.close()


async def test_an_id_staged_but_not_durable_is_refused_then_from_the_store(tmp_path):
    core = await _core(tmp_path, autotick=False)
    try:
        events = device_events(3, core.clock.now())
        gate = asyncio.Event()
        append_many = core.store.append_many

        async def slow(items):  # hold the first commit until the second event is checked
            await gate.wait()
            return await append_many(items)

        core.store.append_many = slow
        take = dict(device=DEVICE, site=SITE, may_open=True, source="test", raw="")
        first = asyncio.create_task(core.take_external(events[0], **take))
        await asyncio.sleep(0.05)  # staged; its commit waits on the gate
        reused = events[1].model_copy(update={"event_id": events[0].event_id})
        second = asyncio.create_task(core.take_external(reused, **take))
        await asyncio.sleep(0.05)
        gate.set()
        assert (await first).status == "applied"
        result = await second
        assert (result.status, result.cls) == ("refused", "event_id_reused")
        assert "not yet durable" in result.reason
        # Durable now: the same reuse at the next seq is refused from the store's answer.
        again = events[2].model_copy(update={"event_id": events[0].event_id})
        result = await core.take_external(again, **take)
        assert (result.status, result.cls) == ("refused", "event_id_reused")
        assert "not yet durable" not in result.reason and f"{DEVICE} seq 1" in result.reason
    finally:
        await _close(core)


async def test_a_command_wakes_the_timer_loop_only_for_an_earlier_deadline(tmp_path):
    core = await _core(tmp_path)  # autotick: the timer loop runs
    try:
        runs = 0
        run_timers = core.run_timers

        async def counted(sweep: bool = True):
            nonlocal runs
            runs += 1
            return await run_timers(sweep)

        core.run_timers = counted
        await asyncio.sleep(0.05)
        runs = 0
        take = dict(device=DEVICE, site=SITE, may_open=True, source="test", raw="")
        for event in device_events(6, core.clock.now()):
            assert (await core.take_external(event, **take)).status == "applied"
        await asyncio.sleep(0.05)
        assert runs == 0  # device turns set no deadline: the loop slept through them
    finally:
        await _close(core)
