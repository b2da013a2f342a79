"""Acks and resend requests to the edges, and the per-device storm alarm.

Contract: an ack says the highest seq of an origin the store holds *durably*
(``durable[origin]``, loaded from the store at start and raised only after a commit); an edge
prunes its outbox up to it. A gap is answered with a ``resend`` ack (at most one per origin
and high-water mark per ``resend_hold_s``), never by storing out of order. Publishing never
blocks: when the broker is away the ack is skipped (the edge asks again by resending).
Many gaps or conflicts of one device in ``storm_window_s`` raise one alert per window.
"""

from __future__ import annotations

import time
from collections import deque

from common.mqtt.client import NotConnected
from protocol import topics
from protocol.messages import Ack, dumps
from router.mqtt.bridge.context import BridgeContext


class Acks:
    def __init__(self, ctx: BridgeContext):
        self.ctx = ctx
        self.durable: dict[str, int] = {}
        self._resend_asked: dict[str, tuple[int, float]] = {}
        self._storms: dict[str, deque] = {}
        self._storm_alerted: dict[str, float] = {}

    async def load(self) -> None:
        self.durable = await self.ctx.core.store.high_waters()

    def raise_to(self, origin: str, seq: int) -> None:
        """``seq`` of ``origin`` is durable (committed, or refused and recorded)."""
        self.durable[origin] = max(self.durable.get(origin, 0), seq)

    def send(self, origin: str, site: str, resend: bool = False) -> None:
        ctx = self.ctx
        ack = Ack(origin=origin, high_water=self.durable.get(origin, 0), resend=resend,
                  ts=ctx.core.clock.now())
        try:
            ctx.client.publish(topics.topic(site, origin, "acks"), dumps(ack), qos=1,
                               retain=not resend)
            ctx.stats["acks"] += 1
        except NotConnected:
            pass  # the edge asks again (it resends; we ack the duplicates)

    def ask_resend(self, origin: str, site: str) -> None:
        hw, now = self.durable.get(origin, 0), time.monotonic()
        last = self._resend_asked.get(origin)
        if last is not None and last[0] == hw and now - last[1] < self.ctx.settings.resend_hold_s:
            return
        self._resend_asked[origin] = (hw, now)
        self.ctx.stats["resend_requests"] += 1
        self.send(origin, site, resend=True)
        self.storm(origin, site, "gap")

    def storm(self, origin: str, site: str, kind: str) -> None:
        """Gaps (resend requests) and conflicts per device in a sliding window: many mean
        someone else consumes the device's events (e.g. a shared subscription), a lossy
        link, or an edge that replays wrongly. One alert per device per window."""
        ctx = self.ctx
        now, window = time.monotonic(), ctx.settings.storm_window_s
        seen = self._storms.setdefault(origin, deque())
        seen.append(now)
        while seen and seen[0] < now - window:
            seen.popleft()
        last = self._storm_alerted.get(origin)
        if len(seen) >= ctx.settings.storm_count and (last is None or now - last > window):
            self._storm_alerted[origin] = now
            ctx.stats["storm_alerts"] += 1
            ctx.work(ctx.core.raise_alert(
                "device_resend_storm", device=origin, site=site, trigger=kind,
                message=f"{origin} at {site}: {len(seen)} gaps or conflicts in {window:.0f} s "
                f"(last: {kind}). Its events may be consumed by someone else (a shared "
                "subscription on the broker), its link may lose messages, or its outbox "
                "replays wrongly: check the broker's subscriptions and the device's logs"))
