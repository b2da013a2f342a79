"""Ticks a device driver from asyncio so that its watchdog fires on time without a caller.

The runner owns one task; ``aclose()`` (or leaving ``async with``) stops the device and
cancels and awaits the task. ``on_state`` is called on the loop after every tick (keep it
cheap: hand work off, don't block).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from edge.device.base import DeviceDriver, DeviceState
from edge.device.commands import CommandResult, apply_command

log = logging.getLogger(__name__)


class DeviceRunner:
    def __init__(self, driver: DeviceDriver, tick_s: float = 0.05,
                 on_state: Callable[[DeviceState], None] | None = None):
        if tick_s <= 0:
            raise ValueError("tick_s must be > 0")
        self.driver = driver
        self.tick_s = tick_s
        self.on_state = on_state
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> DeviceRunner:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="device-tick")

    def execute(self, data: Any) -> CommandResult:
        """Validate and run one command (dict or model) now."""
        return apply_command(self.driver, data)

    async def _run(self) -> None:
        while True:
            try:
                state = self.driver.tick()
                if self.on_state is not None:
                    self.on_state(state)
            except Exception:  # a bad callback must not stop the watchdog
                log.exception("device tick failed")
            await asyncio.sleep(self.tick_s)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        with contextlib.suppress(Exception):
            self.driver.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
