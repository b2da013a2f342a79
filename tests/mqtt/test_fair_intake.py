"""Fair intake (router/mqtt/bridge/fair.py): one device's burst cannot queue ahead of the others."""

from __future__ import annotations

import asyncio

from router.mqtt.bridge.fair import FairIntake


def test_round_robin_per_device_keeps_each_devices_order():
    handled: list[tuple[str, int]] = []
    intake = FairIntake(handled.append)
    for i in range(100):
        intake.put("burst", ("burst", i))
    intake.put("quiet-1", ("quiet-1", 0))
    intake.put("quiet-2", ("quiet-2", 0))
    while intake.step():
        pass
    # The quiet devices' messages wait behind one of the burst's, not a hundred.
    assert handled.index(("quiet-1", 0)) == 1 and handled.index(("quiet-2", 0)) == 2
    assert [i for d, i in handled if d == "burst"] == list(range(100))
    assert len(intake) == 0


def test_a_device_over_its_bound_is_refused_alone():
    intake = FairIntake(lambda item: None, max_per_device=3)
    assert all(intake.put("a", i) for i in range(3))
    assert not intake.put("a", 3)
    assert intake.put("b", 0)


async def test_run_handles_what_arrives_and_survives_a_failing_handler():
    handled, errors = [], []

    def handle(item):
        if item == "bad":
            raise ValueError("bad input")
        handled.append(item)

    intake = FairIntake(handle, on_error=errors.append, slice_items=2)
    task = asyncio.create_task(intake.run())
    try:
        for item in ("x", "bad", "y"):
            intake.put("dev", item)
        intake.put("other", "z")
        for _ in range(50):
            if len(handled) == 3:
                break
            await asyncio.sleep(0.01)
        assert handled == ["x", "z", "y"] and [str(e) for e in errors] == ["bad input"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
