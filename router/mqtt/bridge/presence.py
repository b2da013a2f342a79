"""Device presence: retained ``…/state`` (online, or the last will's offline), heartbeats with
telemetry, device alarms, and offline-by-silence.

Contract: ``devices`` is the router's view of each device (restored from the store at start
with a fresh heartbeat window). A will whose connection id is not the device's current one is
stale and ignored. Every change is written to the store and raised as an alert through the
ordered background work (never on the intake path), published to the core's subscribers
(``DeviceChanged``: the floor's sockets), and — when a device
comes online — answered with its ack and its due commands (``on_online``). An alert (offline,
online, an alarm raised) is stored in the transaction of the presence change that raises it
and pushed once stored; the raised alarms are kept with the presence, so a partition's next
leader (router/ha/devices.py) neither repeats nor loses one. A device silent
for ``heartbeat_misses`` intervals (+1 s) goes offline: this covers a broker restart or a
half-open link, which produce no will.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol import topics
from protocol.messages import DeviceState, Heartbeat
from router.mqtt.bridge.context import BridgeContext
from router.service.core.events import DeviceChanged
from router.store.errors import StoreError
from router.store.sync import SyncStore

log = logging.getLogger("baton.bridge")


@dataclass(slots=True)
class DeviceInfo:
    device: str
    site: str
    kind: str
    status: str = "unknown"  # online | offline | unknown
    conn: str | None = None
    since: float = 0.0
    last_seen: float = 0.0
    interval_s: float | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)
    alarms: set[str] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        return {"device": self.device, "site": self.site, "kind": self.kind,
                "status": self.status, "since": self.since, "last_seen": self.last_seen,
                "telemetry": self.telemetry, "alarms": sorted(self.alarms)}


class Presence:
    def __init__(self, ctx: BridgeContext, sync: SyncStore, parse: Callable[..., Any],
                 on_online: Callable[[DeviceInfo], None]):
        # parse(model, topic, msg): the payload, or None having dead-lettered it.
        self.ctx, self.sync, self._parse, self._on_online = ctx, sync, parse, on_online
        self.devices: dict[str, DeviceInfo] = {}

    async def load(self) -> None:
        ctx, now = self.ctx, self.ctx.core.clock.now()
        for dev, row in (await self.sync.presences()).items():
            if dev in ctx.site_of:
                # A fresh heartbeat window: the router was away, not necessarily the device.
                self.devices[dev] = DeviceInfo(dev, ctx.site_of[dev], ctx.kind_of[dev],
                                               status=row["status"], conn=row["conn"],
                                               since=row["since"], last_seen=now,
                                               telemetry=row["telemetry"] or {},
                                               alarms=set(row.get("alarms") or ()))

    def status(self, device: str) -> str | None:
        dev = self.devices.get(device)
        return None if dev is None else dev.status

    def _device(self, t: topics.Topic) -> DeviceInfo:
        dev = self.devices.get(t.device)
        if dev is None:
            dev = self.devices[t.device] = DeviceInfo(t.device, t.site,
                                                      self.ctx.kind_of[t.device])
        return dev

    def state_in(self, t: topics.Topic, msg) -> None:
        if not msg.payload:
            return  # a retained state being cleared
        state = self._parse(DeviceState, t, msg)
        if state is None:
            return
        dev, now = self._device(t), self.ctx.core.clock.now()
        if state.status == "online":
            dev.last_seen = now
            if dev.status != "online" or dev.conn != state.conn:
                self._went(dev, "online", state.conn, "connected")
        elif dev.status == "online" and state.conn != dev.conn:
            self.ctx.stats["stale_wills"] += 1  # the will of a connection already replaced
        elif dev.status != "offline":
            self._went(dev, "offline", state.conn, state.reason or "connection lost")

    def heartbeat_in(self, t: topics.Topic, msg) -> None:
        hb = self._parse(Heartbeat, t, msg)
        if hb is None:
            return
        dev, now = self._device(t), self.ctx.core.clock.now()
        dev.last_seen, dev.interval_s = now, hb.interval_s
        dev.telemetry = hb.model_dump(mode="json", exclude={"v", "conn", "interval_s"},
                                      exclude_none=True)
        if dev.status != "online":
            self._went(dev, "online", hb.conn, "heartbeat")
        self._check_alarms(dev, hb)

    def _check_alarms(self, dev: DeviceInfo, hb: Heartbeat) -> None:
        low = hb.battery is not None and hb.battery.percent < self.ctx.settings.battery_low \
            and not hb.battery.charging
        self._alarm(dev, "battery_low", low,
                    f"{dev.device} battery at {hb.battery.percent:.0f}%" if low else "")
        full = hb.outbox is not None and hb.outbox.pending >= 0.8 * hb.outbox.capacity
        self._alarm(dev, "outbox_full", full,
                    f"{dev.device} outbox holds {hb.outbox.pending} of {hb.outbox.capacity} "
                    "unsent events" if full else "")

    def _alarm(self, dev: DeviceInfo, kind: str, on: bool, message: str) -> None:
        if on and kind not in dev.alarms:
            dev.alarms.add(kind)
            self._record(dev, self._new_alert(f"device_{kind}", dev, message))
        elif not on and kind in dev.alarms:
            dev.alarms.discard(kind)
            self._record(dev, None)

    def _new_alert(self, kind: str, dev: DeviceInfo, message: str) -> dict[str, Any]:
        return {"alert_id": "al-" + uuid.uuid4().hex[:16], "kind": kind,
                "at": self.ctx.core.clock.now(), "device": dev.device, "site": dev.site,
                "message": message}

    def _record(self, dev: DeviceInfo, alert: dict[str, Any] | None) -> None:
        """Store the device's presence and alarms, and the alert they raise in the same
        transaction; push the alert once stored. Through the ordered background work."""
        row = dict(device=dev.device, site=dev.site, status=dev.status, conn_id=dev.conn,
                   since=dev.since, last_seen=dev.last_seen,
                   telemetry=dev.telemetry or None, alarms=sorted(dev.alarms) or None)
        self.ctx.work(self._store_then_alert(row, alert))

    async def _store_then_alert(self, row: dict[str, Any], alert: dict[str, Any] | None) -> None:
        try:
            await self.sync.put_presence(**row, alert=alert)
        except StoreError as exc:
            if exc.reason == "deposed":
                # This router no longer leads the partition: the next leader, which reads
                # the stored presence, raises what is still true.
                self.ctx.stats["alerts_deposed"] += 1
                return
            log.warning("could not store a device's presence", extra={"error": str(exc)})
        if alert is not None:
            fields = {k: v for k, v in alert.items() if k not in ("kind", "at")}
            await self.ctx.core.raise_alert(alert["kind"], **fields)

    def _went(self, dev: DeviceInfo, status: str, conn: str | None, reason: str) -> None:
        ctx = self.ctx
        was, now = dev.status, ctx.core.clock.now()
        dev.status, dev.conn, dev.since = status, conn, now
        ctx.stats[f"went_{status}"] += 1
        log.info("device presence", extra={"device": dev.device, "status": status,
                                           "reason": reason})
        alert = None
        if status == "offline":
            alert = self._new_alert("device_offline", dev, f"{dev.device} at {dev.site} is "
                                    f"offline: {reason}")
        elif was == "offline":
            alert = self._new_alert("device_online", dev, f"{dev.device} at {dev.site} is back")
        self._record(dev, alert)
        ctx.core.publish(DeviceChanged(dev.view(), reason))
        if status == "online":
            self._on_online(dev)

    async def run(self) -> None:
        """Offline when heartbeats stop."""
        while True:
            await asyncio.sleep(1.0)
            now = self.ctx.core.clock.now()
            for dev in list(self.devices.values()):
                if dev.status == "online" and dev.interval_s:
                    silent = now - dev.last_seen
                    if silent > self.ctx.settings.heartbeat_misses * dev.interval_s + 1:
                        self._went(dev, "offline", dev.conn, f"no heartbeat for {silent:.0f} s")
