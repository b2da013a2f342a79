"""Domain events out of the core, and the bounded subscriptions that carry them.

Contract (every subscriber relies on it; change it only with the subscribers):

1. What is published. The core publishes a unit's events once the unit is durable (its
   events are in the store), in the order the units were committed; a refused or failed
   unit publishes nothing. Events are immutable values (frozen dataclasses) carrying the
   state *after* the change: a ``CaseChanged`` holds the whole case, so applying the
   latest one is enough and applying one twice changes nothing. Adapters may publish
   transient notices (``DeviceChanged``, ``WorkerSignal``) through ``RouterCore.publish``;
   they are not stored and a snapshot does not bring them back.
2. Who gets it. Every subscription gets every event; the subscriber picks what concerns it.
   Publishing never blocks and never waits for a subscriber: the core's write path does not
   slow down for anybody.
3. Bounded queues and the overflow policy. Each subscription has its own queue of
   ``maxsize`` events. When an event finds the queue full, the subscription *overflows*:
   the queued events are dropped, a single ``Resync`` marker is queued in their place, and
   the events published until the subscriber takes that marker are dropped too (counted in
   ``Subscription.dropped``). The marker tells the subscriber that it missed events and must
   rebuild what it derives from them from the core's snapshot queries (``open_cases``,
   ``case``, ``offers_of``, ``presence_of``, ``recent_alerts``) — taken *after* it received
   the marker, so the snapshot covers everything that was dropped. Nothing is lost silently:
   a subscriber sees either every event or a ``Resync``. Events that follow the marker may
   repeat what the snapshot already shows; they are idempotent (rule 1).
4. Lifetime. ``subscribe`` returns a ``Subscription``: an async iterator of events and
   markers, ended by ``aclose()`` (or by the core closing, which ends every iteration).
   A subscriber runs its own task; a subscriber that raises must log and continue (or
   resubscribe): the core does not watch it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Union

from router.casestate import Case
from protocol.models import Offer, Presence

log = logging.getLogger("baton.events")

DEFAULT_MAXSIZE = 10_000


@dataclass(frozen=True, slots=True)
class CaseChanged:
    """A case's state after a unit that changed it. ``step`` is its current routing step
    (None when not waiting); ``previous_worker`` is who had it before this unit, when
    that person no longer does (they hear of the change too)."""

    case: Case
    step: str | None = None
    previous_worker: str | None = None


@dataclass(frozen=True, slots=True)
class OfferMade:
    offer: Offer
    case: Case


@dataclass(frozen=True, slots=True)
class OfferClosed:
    """An offer left its worker's desk: accepted (taken for them), timed_out, withdrawn."""

    offer_id: str
    worker_id: str
    status: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    worker_id: str
    presence: Presence
    reason: str


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """A floor alert: new, or changed (acknowledged). ``alert`` is a copy."""

    alert: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StepChanged:
    case_id: str
    step: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The AI's reply, for the connected worker's desk instead of the resident."""

    worker_id: str
    case_id: str
    text: str
    language: str
    intent: str | None
    confidence: float | None
    decision: str


@dataclass(frozen=True, slots=True)
class DeviceChanged:
    """A device's presence, from the MQTT bridge (transient: not stored by the core)."""

    device: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerSignal:
    """A WebRTC signal for a worker's browser, from the signaling relay (transient)."""

    worker_id: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resync:
    """Events were dropped for this subscriber: rebuild from the snapshot queries."""

    dropped: int


Event = Union[CaseChanged, OfferMade, OfferClosed, PresenceChanged, AlertRaised, StepChanged,
              Suggestion, DeviceChanged, WorkerSignal]


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue (see the contract above)."""

    name: str
    maxsize: int
    _bus: EventBus | None = field(repr=False, default=None)
    _queue: deque = field(default_factory=deque, repr=False)
    _ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _resync: bool = False  # a marker is queued and not taken yet
    _closed: bool = False
    dropped: int = 0  # events dropped by overflows, in all
    overflows: int = 0

    def offer(self, event: Event) -> None:
        """Queue ``event``; never blocks. Called by the bus only."""
        if self._closed:
            return
        if self._resync:
            self.dropped += 1
            return
        if len(self._queue) >= self.maxsize:
            self.overflows += 1
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self._queue.append(Resync(self.dropped))
            self._resync = True
            log.warning("subscriber fell behind; it resynchronises from a snapshot",
                        extra={"subscriber": self.name, "dropped": self.dropped})
        else:
            self._queue.append(event)
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event | Resync:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        item = self._queue.popleft()
        if isinstance(item, Resync):
            self._resync = False  # from here on the subscriber's snapshot is fresh
        return item

    def pending(self) -> int:
        return len(self._queue)

    async def aclose(self) -> None:
        self._closed = True
        self._queue.clear()
        self._ready.set()
        if self._bus is not None:
            self._bus.remove(self)
            self._bus = None


class EventBus:
    """Fan-out to subscriptions; publishing is synchronous and never waits."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    def subscribe(self, name: str, maxsize: int = DEFAULT_MAXSIZE) -> Subscription:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        sub = Subscription(name, maxsize, self)
        self._subs.append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, events: list[Event]) -> None:
        for sub in tuple(self._subs):
            for event in events:
                sub.offer(event)

    def subscribers(self) -> dict[str, dict[str, int]]:
        return {s.name: {"pending": s.pending(), "dropped": s.dropped,
                         "overflows": s.overflows} for s in self._subs}

    async def aclose(self) -> None:
        for sub in tuple(self._subs):
            await sub.aclose()
