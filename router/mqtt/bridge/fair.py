"""Fair intake: the bridge handles incoming device messages round-robin per device.

The transport hands messages over in arrival order; a device that bursts (an outbox
replaying 256 events after a reconnect, or a misbehaving one) would otherwise have all of its
messages parsed and validated before the next device's first one. Here every device has its
own queue and the dispatcher takes one message per device in turn, so a message waits behind
at most one message of each other busy device, whatever the others have queued. Order within
a device is kept (the bridge's seq rules need it).

Bounded per device: beyond ``max_per_device`` a device's messages are refused (``put``
returns False; the caller counts them). Nothing is lost by that for events: an edge keeps
what was not acked and sends it again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class FairIntake(Generic[T]):
    """``put(key, item)`` from the event loop; ``run()`` (a task the owner cancels) calls
    ``handle(item)`` round-robin over keys. ``handle`` is synchronous and must not raise
    (the bridge's handlers dead-letter what is wrong); an exception is passed to
    ``on_error`` and the next item goes on."""

    def __init__(self, handle: Callable[[T], None], *, max_per_device: int = 10_000,
                 slice_items: int = 64,
                 on_error: Callable[[BaseException], None] | None = None):
        self._handle, self._on_error = handle, on_error
        self._max, self._slice = max_per_device, slice_items
        self._queues: dict[Hashable, deque[T]] = {}
        self._ready: deque[Hashable] = deque()  # keys with items, each at most once
        self._wake = asyncio.Event()
        self.handled = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def put(self, key: Hashable, item: T) -> bool:
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
        elif len(q) >= self._max:
            return False
        if not q:
            self._ready.append(key)
        q.append(item)
        self._wake.set()
        return True

    def step(self) -> bool:
        """Handle the next item in round-robin order; False when there is none."""
        if not self._ready:
            return False
        key = self._ready.popleft()
        q = self._queues[key]
        item = q.popleft()
        if q:
            self._ready.append(key)
        else:
            del self._queues[key]  # devices come and go: keep only the busy ones
        self.handled += 1
        try:
            self._handle(item)
        except Exception as exc:  # noqa: BLE001 - reported, the intake goes on
            if self._on_error is None:
                raise
            self._on_error(exc)
        return True

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            n = 0
            while self.step():
                n += 1
                if n % self._slice == 0:
                    # Let the transport read more (other devices' messages join the turn).
                    await asyncio.sleep(0)
