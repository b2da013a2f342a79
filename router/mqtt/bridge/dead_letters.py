"""Dead letters: input the bridge refuses, counted by class and kept with its reason.

Contract: ``put`` never blocks and never raises (it runs on the intake path). Storage is
rate-limited per device and in all (``Bucket``), so one device's flood cannot crowd out
another's dead letters nor load the store; what is over the limit is only counted
(``dead_letters_not_stored``). ``run`` writes them in batches, one transaction each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from protocol import topics
from router.mqtt.bridge.settings import BridgeSettings
from router.service.core import RouterCore

log = logging.getLogger("baton.bridge")


class Bucket:
    """A token bucket: ``rate`` per second, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate, self.burst = rate, burst or rate
        self.tokens, self.at = self.burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class DeadLetters:
    def __init__(self, core: RouterCore, settings: BridgeSettings, stats: Counter[str],
                 site_of: dict[str, str]):
        self.core, self.settings, self.stats, self.site_of = core, settings, stats, site_of
        self.by_class: Counter[str] = Counter()
        self._queue: asyncio.Queue = asyncio.Queue(1000)
        self._all = Bucket(settings.dead_letters_total_per_s)
        self._per_device: dict[str, Bucket] = {}

    def count(self, cls: str) -> None:
        """Counted as a dead letter without storing the input (refused seqs: the core
        already recorded them)."""
        self.by_class[cls] += 1
        self.stats["dead_letters"] += 1

    def put(self, cls: str, topic: str, reason: str, raw: bytes) -> None:
        self.count(cls)
        parsed = topics.parse(topic)
        key = parsed.device if parsed is not None and parsed.device in self.site_of else ""
        bucket = self._per_device.get(key)
        if bucket is None:
            per_s = self.settings.dead_letters_per_s
            bucket = self._per_device[key] = Bucket(per_s, burst=4 * per_s)
        if not bucket.take() or not self._all.take():
            self.stats["dead_letters_not_stored"] += 1
            return
        try:
            self._queue.put_nowait((cls, topic, reason, raw, self.core.clock.now()))
        except asyncio.QueueFull:
            self.stats["dead_letters_not_stored"] += 1

    async def run(self) -> None:
        """Dead letters in batches, one transaction each: a flood of bad input costs the
        store a few writes per second, not one per message."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            try:
                await self.core.store.dead_letters_many([
                    (f"mqtt:{topic}", f"{cls}: {reason}", raw, ts)
                    for cls, topic, reason, raw, ts in batch])
            except Exception as exc:  # noqa: BLE001 - counted; the store may come back
                self.stats["dead_letters_not_stored"] += len(batch)
                log.warning("could not store dead letters", extra={"error": str(exc)})
            await asyncio.sleep(1.0)  # let the queue gather the next batch
