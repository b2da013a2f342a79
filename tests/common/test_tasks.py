"""common/tasks.py: the one task owner. Real asyncio, no mocks: a task that raises is logged
with its context and does not disturb its siblings; a kept loop is started again; aclose
cancels and awaits everything and refuses new work."""

from __future__ import annotations

import asyncio
import logging

import pytest

from common.tasks import Supervisor, SupervisorClosed


async def test_a_failing_task_is_logged_with_context_and_spares_its_siblings(caplog):
    caplog.set_level(logging.ERROR, logger="baton.tasks")
    sup = Supervisor("station", context={"device": "robot-1"})
    sibling_ran = asyncio.Event()

    async def boom():
        raise RuntimeError("peer close failed")

    async def sibling():
        await asyncio.sleep(0.05)
        sibling_ran.set()
        await asyncio.sleep(3600)

    sup.spawn(sibling(), "sibling")
    failing = sup.spawn(boom(), "end-video", case_id="case-1")
    await asyncio.wait([failing])
    await asyncio.wait_for(sibling_ran.wait(), 2)
    assert sup.failures == 1 and isinstance(sup.last_failure, RuntimeError)
    [rec] = [r for r in caplog.records if r.name == "baton.tasks"]
    assert rec.levelno == logging.ERROR and rec.exc_info is not None
    assert (rec.owner, rec.task, rec.device, rec.case_id) == (
        "station", "end-video", "robot-1", "case-1")
    assert "peer close failed" in rec.error
    await sup.aclose()
    assert not sup.tasks


async def test_a_kept_loop_is_started_again_after_it_raises(caplog):
    caplog.set_level(logging.ERROR, logger="baton.tasks")
    sup = Supervisor("router")
    runs = []

    async def loop():
        runs.append(1)
        if len(runs) < 3:
            raise ValueError(f"run {len(runs)} failed")
        await asyncio.sleep(3600)

    sup.keep("sessions", loop, restart_s=0.01)
    for _ in range(200):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(runs) == 3 and sup.failures == 2
    msgs = [r.getMessage() for r in caplog.records if r.name == "baton.tasks"]
    assert msgs == ["task failed; starting it again"] * 2
    await sup.aclose()


async def test_aclose_cancels_and_awaits_everything_and_refuses_new_work(caplog):
    sup = Supervisor("peer")
    cleaned = asyncio.Event()

    async def holds():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself awaits still completes
            cleaned.set()

    task = sup.spawn(holds(), "holds")
    await asyncio.sleep(0)
    await sup.aclose()
    assert task.cancelled() and cleaned.is_set() and not sup.tasks
    assert sup.failures == 0  # a cancellation is not a failure
    assert not [r for r in caplog.records if r.name == "baton.tasks"]

    async def late():
        pass

    with pytest.raises(SupervisorClosed, match="peer is closed"):
        sup.spawn(late(), "late")


async def test_a_returning_kept_loop_ends():
    sup = Supervisor("node")
    done = []

    async def once():
        done.append(1)

    task = sup.keep("once", once, restart_s=0.01)
    await asyncio.wait_for(task, 1)
    assert done == [1] and sup.failures == 0
    await sup.aclose()
