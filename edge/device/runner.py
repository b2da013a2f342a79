"""Ticks a device driver from asyncio so that its watchdog fires on time without a caller.

The runner owns one task; ``aclose()`` (or leaving ``async with``) stops the device and
cancels and awaits the task. ``on_state`` is called on the loop after every tick (keep it
cheap: hand work off, don't block).

``on_estop`` hears every change of the emergency stop, whatever caused it: a command run
through ``execute`` (``by`` says who asked, e.g. the worker on the WebRTC data channel) or
the device itself (a bumper, a button: seen at the next tick, ``by="device"``). A repeated
e-stop while latched, or a reset while clear, changes nothing and is not reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from common.tasks import Supervisor
from edge.device.base import DeviceDriver, DeviceState
from edge.device.commands import CommandResult, apply_command

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EstopChange:
    latched: bool  # True: the e-stop latched; False: it was reset
    reason: str | None  # the latch's reason (for a reset: the one it cleared)
    by: str  # who asked: a worker id, or "device"
    source: Literal["data_channel", "device"]
    at: float  # wall clock (seconds since the epoch), for the case record


class DeviceRunner:
    def __init__(self, driver: DeviceDriver, tick_s: float = 0.05,
                 on_state: Callable[[DeviceState], None] | None = None,
                 on_estop: Callable[[EstopChange], None] | None = None):
        if tick_s <= 0:
            raise ValueError("tick_s must be > 0")
        self.driver = driver
        self.tick_s = tick_s
        self.on_state = on_state
        self.on_estop = on_estop
        self._tasks: Supervisor | None = None  # one per start(): the watchdog's tick
        first = driver.state()
        self._estop, self._estop_reason = first.estop, first.estop_reason

    async def __aenter__(self) -> DeviceRunner:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._tasks is None:
            self._tasks = Supervisor("device", logger=log)
            self._tasks.keep("tick", self._run, restart_s=self.tick_s)

    def execute(self, data: Any, *, by: str = "device",
                source: Literal["data_channel", "device"] = "device") -> CommandResult:
        """Validate and run one command (dict or model) now; ``by``/``source``: who sent it,
        for ``on_estop``."""
        result = apply_command(self.driver, data)
        self._check_estop(self.driver.state(), by, source)
        return result

    def _check_estop(self, state: DeviceState, by: str,
                     source: Literal["data_channel", "device"]) -> None:
        cleared = self._estop_reason  # a press while latched may have renamed it
        self._estop_reason = state.estop_reason
        if state.estop == self._estop:
            return
        self._estop = state.estop
        if self.on_estop is None:
            return
        try:
            self.on_estop(EstopChange(latched=state.estop,
                                      reason=state.estop_reason if state.estop else cleared,
                                      by=by, source=source, at=time.time()))
        except Exception:  # reporting must never stand between a command and its result
            log.exception("e-stop callback failed")

    async def _run(self) -> None:
        while True:
            try:
                state = self.driver.tick()
                self._check_estop(state, "device", "device")
                if self.on_state is not None:
                    self.on_state(state)
            except Exception:  # a bad callback must not stop the watchdog
                log.exception("device tick failed")
            await asyncio.sleep(self.tick_s)

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, None
        with contextlib.suppress(Exception):
            self.driver.stop()
        if tasks is not None:
            await tasks.aclose()
