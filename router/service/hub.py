"""Who is connected, and pushing messages to them: the WebSocket side of the core's events.

The hub is one subscriber of the core's domain events (router/service/core/events.py): its
task turns each event into the sockets' JSON messages and hands them to the connections it
concerns. When the hub's own subscription overflows (it fell behind the core), it gets a
``Resync`` marker and sends every connection a fresh ``hello`` snapshot, which the pages
apply like the one they got on connect.

Constraint: a slow browser must never stall routing. Each connection has a bounded outbound
queue drained by the connection's own sender task; a connection whose queue is full is
closed (the browser reconnects and gets a fresh snapshot) instead of blocking the router.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol.models import Role
from router.service import views
from router.service.auth import Principal
from router.service.core import events

log = logging.getLogger("baton.hub")

OUTBOX_LIMIT = 2000


@dataclass(eq=False)
class Connection:
    subject: str
    role: Role
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    overflowed: bool = False

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.supervisor, Role.admin)

    def send(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("closing slow connection", extra={"subject": self.subject})
            # Wake the sender so it notices and closes the socket.
            self.queue.get_nowait()
            self.queue.put_nowait({"type": "_close", "reason": "slow consumer"})


class Hub:
    """``snapshot(principal)``: the ``hello`` message for a connection (router/service/ws.py)."""

    def __init__(self, snapshot: Callable[[Principal], dict[str, Any]] | None = None) -> None:
        self._by_subject: dict[str, set[Connection]] = defaultdict(set)
        self._watchers: set[Connection] = set()
        self._snapshot = snapshot
        self.resyncs = 0

    async def run(self, subscription: events.Subscription) -> None:
        """Consume the core's events until the subscription ends (the app owns the task)."""
        async for event in subscription:
            try:
                if isinstance(event, events.Resync):
                    self.resync()
                else:
                    self.dispatch(event)
            except Exception:  # one bad event must not end the feed of every browser
                log.exception("pushing an event to the sockets failed",
                              extra={"event": type(event).__name__})

    def resync(self) -> None:
        """Events were dropped: every connection gets a fresh snapshot."""
        self.resyncs += 1
        if self._snapshot is None:
            return
        for conns in tuple(self._by_subject.values()):
            for conn in tuple(conns):
                conn.send(self._snapshot(Principal(conn.subject, conn.role)))

    def dispatch(self, event: events.Event) -> None:
        """One event to the sockets it concerns, as the protocol of router/service/ws.py."""
        if isinstance(event, events.CaseChanged):
            msg = {"type": "case", "case": views.case_view(event.case, step=event.step)}
            self.to_watchers(msg)
            for worker in {event.case.assigned_worker, event.previous_worker} - {None}:
                self.to_subject(worker, msg)
        elif isinstance(event, events.OfferMade):
            self.to_subject(event.offer.worker_id, {
                "type": "offer", "offer": event.offer.model_dump(mode="json"),
                "case": views.case_preview(event.case)})
        elif isinstance(event, events.OfferClosed):
            msg = {"type": "offer_closed", "offer_id": event.offer_id, "status": event.status}
            if event.reason is not None:
                msg["reason"] = event.reason
            self.to_subject(event.worker_id, msg)
        elif isinstance(event, events.PresenceChanged):
            msg = {"type": "presence", "worker_id": event.worker_id,
                   "presence": event.presence.value, "reason": event.reason}
            self.to_subject(event.worker_id, msg)
            self.to_watchers(msg, skip=event.worker_id)
        elif isinstance(event, events.AlertRaised):
            self.to_watchers({"type": "alert", "alert": event.alert})
        elif isinstance(event, events.StepChanged):
            self.to_watchers({"type": "step", "case_id": event.case_id, "step": event.step})
        elif isinstance(event, events.Suggestion):
            self.to_subject(event.worker_id, {
                "type": "suggestion", "case_id": event.case_id, "text": event.text,
                "language": event.language, "intent": event.intent,
                "confidence": event.confidence, "decision": event.decision})
        elif isinstance(event, events.DeviceChanged):
            self.to_watchers({"type": "device", "device": event.device,
                              "reason": event.reason})
        elif isinstance(event, events.WorkerSignal):
            self.to_subject(event.worker_id, event.message)

    def attach(self, conn: Connection) -> None:
        self._by_subject[conn.subject].add(conn)
        if conn.sees_everything:
            self._watchers.add(conn)

    def detach(self, conn: Connection) -> int:
        """Returns how many connections the subject still has."""
        conns = self._by_subject.get(conn.subject, set())
        conns.discard(conn)
        self._watchers.discard(conn)
        if not conns:
            self._by_subject.pop(conn.subject, None)
        return len(conns)

    def connected(self, subject: str) -> bool:
        return bool(self._by_subject.get(subject))

    def to_subject(self, subject: str, message: dict[str, Any]) -> None:
        for conn in tuple(self._by_subject.get(subject, ())):
            conn.send(message)

    def to_watchers(self, message: dict[str, Any], *, skip: str | None = None) -> None:
        for conn in tuple(self._watchers):
            if conn.subject != skip:
                conn.send(message)
