"""Who is connected, and pushing messages to them.

Constraint: a slow browser must never stall routing. Each connection has a bounded outbound
queue drained by the connection's own sender task; a connection whose queue is full is
closed (the browser reconnects and gets a fresh snapshot) instead of blocking the router.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from protocol.models import Role

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
    def __init__(self) -> None:
        self._by_subject: dict[str, set[Connection]] = defaultdict(set)
        self._watchers: set[Connection] = set()

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
