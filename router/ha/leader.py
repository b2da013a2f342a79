"""Leadership of partitions: take, keep and lose them through the lease rows, and run one
RouterCore per led partition (its term), rebuilt from the store at every gain.

Every ``poll_s`` the loop renews this router's instance row and each term's lease (a failed
renewal ends the term at once: the core stops, its writes are fenced anyway), then tries to
acquire partitions nobody holds, up to this router's fair share (partitions / live routers,
rounded up; live routers are those whose instance row is unexpired). A dead leader's
partitions are free ``ttl_s`` after its last renewal; a live router then takes them, so
failover takes at most ttl_s + poll_s + the rebuild.

Each term writes as origin ``router:<instance>:<partition>``: no two terms of different
routers, nor two partitions of one router, ever share a sequence.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from router.config import BatonConfig
from router.ha.fenced import PartitionStore
from router.ha.leases import LeaseBook
from router.ha.partitions import PartitionsFile, partition_config
from router.service.core import RouterCore
from router.store import EventStore, StoreError

log = logging.getLogger(__name__)

INSTANCE_PREFIX = "instance/"  # lease rows that only say "this router is alive"
STOP_TIMEOUT_S = 5.0


@dataclass
class Term:
    partition: str
    epoch: int
    core: RouterCore
    store: PartitionStore
    started_at: float = field(default_factory=time.time)
    renewed: float = field(default_factory=time.monotonic)  # last confirmed renewal
    extras: dict = field(default_factory=dict)  # what the web side attaches (hub, feed)


def origin_of(instance: str, partition: str) -> str:
    return f"router:{instance}:{partition}"


class Leadership:
    def __init__(self, cfg: BatonConfig, store: EventStore, instance: str,
                 partitions: PartitionsFile, *, ttl_s: float = 3.0, poll_s: float = 0.5,
                 clock=None, autotick: bool = True,
                 on_gain: Callable[[Term], Awaitable[None]] | None = None,
                 on_lose: Callable[[Term], Awaitable[None]] | None = None,
                 address: str | None = None):
        if not 0 < poll_s * 2 < ttl_s:
            raise ValueError(f"poll_s ({poll_s}) must be under half of ttl_s ({ttl_s}): a "
                             "leader must renew well before its lease runs out")
        origin = origin_of(instance, max((p.id for p in partitions.partitions), key=len))
        if len(origin) > 64 or not instance.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"instance name {instance!r}: use letters, digits, - and _, short "
                             f"enough that {origin!r} is at most 64 characters")
        self.cfg, self.store, self.instance = cfg, store, instance
        self.partitions = partitions
        self.ttl_s, self.poll_s = ttl_s, poll_s
        self.clock, self.autotick = clock, autotick
        self.book = LeaseBook(store)
        self.terms: dict[str, Term] = {}
        self.on_gain, self.on_lose = on_gain, on_lose
        self.address = address  # advertised base URL (router/ha/forward.py)
        self.gained = 0  # terms started (metrics)
        self.lost = 0  # terms ended by a failed renewal (metrics)
        self.live_routers = 1
        self._task: asyncio.Task | None = None
        self._instance_epoch: int | None = None

    @property
    def holder(self) -> str:
        return f"router:{self.instance}"

    async def start(self) -> None:
        await self.round()
        self._task = asyncio.create_task(self._loop(), name="baton-ha-leadership")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for pid in list(self.terms):
            term = await self._end(pid)
            try:
                await self.book.release(pid, self.holder, term.epoch)
            except StoreError:
                log.warning("could not release the lease", extra={"partition": pid})
        if self._instance_epoch is not None:
            try:
                await self.book.release(INSTANCE_PREFIX + self.instance, self.holder,
                                        self._instance_epoch)
            except StoreError:
                pass

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.round()
            except StoreError as exc:
                # Terms whose renewal could not be confirmed end when their lease would.
                log.warning("leadership round failed", extra={"error": str(exc)[:300]})
                await self._expire_unconfirmed()

    async def round(self) -> None:
        """One pass: renew (or lose), then take free partitions up to the fair share."""
        await self._heartbeat()
        for pid, term in list(self.terms.items()):
            if await self.book.renew(pid, self.holder, term.epoch, self.ttl_s):
                term.renewed = time.monotonic()
            else:
                log.warning("lost the lease", extra={"partition": pid, "epoch": term.epoch})
                self.lost += 1
                await self._end(pid)
        leases = await self.book.all()
        now_live = {lease.holder for lease in leases
                    if lease.partition.startswith(INSTANCE_PREFIX) and lease.remaining_s > 0}
        self.live_routers = max(1, len(now_live))
        share = math.ceil(len(self.partitions.partitions) / self.live_routers)
        held = {lease.partition for lease in leases if lease.remaining_s > 0}
        for p in self.partitions.partitions:
            if len(self.terms) >= share:
                break
            if p.id in self.terms or p.id in held:
                continue
            epoch = await self.book.acquire(p.id, self.holder, self.ttl_s)
            if epoch is not None:
                await self._begin(p.id, epoch)

    async def _heartbeat(self) -> None:
        key = INSTANCE_PREFIX + self.instance
        if self._instance_epoch is None or not await self.book.renew(
                key, self.holder, self._instance_epoch, self.ttl_s):
            self._instance_epoch = await self.book.acquire(key, self.holder, self.ttl_s,
                                                           address=self.address)

    async def _expire_unconfirmed(self) -> None:
        now = time.monotonic()
        for pid, term in list(self.terms.items()):
            if now - term.renewed >= self.ttl_s:
                self.lost += 1
                await self._end(pid)

    async def _begin(self, pid: str, epoch: int) -> None:
        partition = self.partitions.get(pid)
        store = PartitionStore(self.store, sites=frozenset(partition.sites),
                               fence=LeaseBook.fence(pid, self.holder, epoch))
        core = RouterCore(partition_config(self.cfg, partition), store, clock=self.clock,
                          origin=origin_of(self.instance, pid), autotick=self.autotick)
        t0 = time.monotonic()
        await core.start()  # rebuild: cases, queue order, offers re-timed, presence
        term = Term(pid, epoch, core, store, renewed=t0)
        self.terms[pid] = term
        self.gained += 1
        log.info("leading partition", extra={"partition": pid, "epoch": epoch,
                                             "rebuild_s": round(time.monotonic() - t0, 3)})
        if self.on_gain is not None:
            await self.on_gain(term)

    async def _end(self, pid: str) -> Term:
        term = self.terms.pop(pid)
        if self.on_lose is not None:
            await self.on_lose(term)
        try:
            await asyncio.wait_for(term.core.aclose(), STOP_TIMEOUT_S)
        except (asyncio.TimeoutError, Exception):
            log.exception("stopping the partition's core failed", extra={"partition": pid})
        await term.store.close()
        log.info("stopped leading partition", extra={"partition": pid, "epoch": term.epoch})
        return term
