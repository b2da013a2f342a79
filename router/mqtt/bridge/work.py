"""Ordered background work: store writes and alerts that the intake path must not wait for
(presence rows, receipts, alerts), run one at a time in the order they were queued.

Contract: ``put`` never blocks; when the queue is full the coroutine is closed unrun, counted
(``work_dropped``) and logged. A failing item is logged and the next one runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("baton.bridge")


class Work:
    def __init__(self, stats: Counter[str], maxsize: int = 10_000):
        self.stats = stats
        self._queue: asyncio.Queue[Coroutine[Any, Any, Any]] = asyncio.Queue(maxsize)

    def put(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            self._queue.put_nowait(coro)
        except asyncio.QueueFull:
            coro.close()
            self.stats["work_dropped"] += 1
            log.error("bridge work queue full; dropped a background write")

    async def run(self) -> None:
        while True:
            coro = await self._queue.get()
            try:
                await coro
            except Exception:
                log.exception("bridge work failed")
