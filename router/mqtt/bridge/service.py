"""The router's MQTT bridge as a whole: builds its parts, routes each topic to its part, owns
every task, reports its status. Started by the app's lifespan when an MQTT host is set.

Zero loss rests on one rule: an edge keeps every event in its outbox until an ack says the
router has it *durably* (``Ack.high_water``), and replays from there after any doubt (a
reconnect, a restart, an ack that does not come, a ``resend`` ack). So the bridge only acks
what the store holds, applies idempotently (seq ≤ high-water is a no-op), and answers a gap
with a resend request instead of storing out of order.

Parts (each module states its contract):
    intake        events in: validation, per-origin ordering, applying, refusals
    acks          acks, resend requests, the storm alarm
    dead_letters  refused input, counted and kept (rate-limited) with its reason
    presence      state, heartbeats, alarms, offline-by-silence
    commands      durable commands and their receipts
    cases         case updates to the device (its own subscription to the core's events)
    work          ordered background store writes and alerts
    router.mqtt.signal_relay   WebRTC signaling between workers' browsers and devices

Bad input never stops the bridge; a part's loop that fails is logged and started again by the
bridge's supervisor (common/tasks.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from common.mqtt.client import MqttClient, Subscription
from common.tasks import Supervisor
from protocol import topics
from protocol.messages import MAX_MESSAGE_BYTES
from router.mqtt.bridge.acks import Acks
from router.mqtt.bridge.cases import CaseUpdates
from router.mqtt.bridge.commands import Commands
from router.mqtt.bridge.context import BridgeContext
from router.mqtt.bridge.dead_letters import DeadLetters
from router.mqtt.bridge.fair import FairIntake
from router.mqtt.bridge.intake import MAX_QUEUED_PER_ORIGIN, Intake, validate
from router.mqtt.bridge.presence import DeviceInfo, Presence
from router.mqtt.bridge.settings import BridgeSettings
from router.mqtt.bridge.work import Work
from router.mqtt.signal_relay import SignalRelay
from router.service.core import RouterCore
from router.store.sync import SyncStore
from router.telepresence import load_telepresence_config

log = logging.getLogger("baton.bridge")


class Bridge:
    def __init__(self, core: RouterCore, settings: BridgeSettings, *,
                 may_connect: Callable[[], bool] | None = None):
        """``may_connect``: asked before every (re)connect to the broker (a partition's
        leader: only while its lease holds, router/ha/devices.py)."""
        self.core, self.cfg, self.settings = core, core.cfg, settings
        self.sync = SyncStore(core.store)
        site_of = {d.id: s.id for s in self.cfg.sites.sites for d in s.devices}
        kind_of = {d.id: d.kind for s in self.cfg.sites.sites for d in s.devices}
        self.site_of = site_of
        self.stats: Counter[str] = Counter()
        self.tasks = Supervisor("bridge", logger=log)
        self.client = MqttClient(settings.mqtt, on_message=self._on_message,
                                 subscriptions=self._subscriptions,
                                 on_connect=self._on_connect, may_connect=may_connect)
        self.dead_letters = DeadLetters(core, settings, self.stats, site_of)
        self.work = Work(self.stats)
        self.ctx = BridgeContext(core, settings, self.client, site_of, kind_of, self.stats,
                                 dead=self.dead_letters.put, work=self.work.put)
        self.acks = Acks(self.ctx)
        self.intake = Intake(self.ctx, self.acks, self.dead_letters, self.tasks)
        # Device messages are handled round-robin per device (router.mqtt.bridge.fair).
        self.fair = FairIntake(self._device_message, max_per_device=MAX_QUEUED_PER_ORIGIN,
                               on_error=self._fair_error)
        self.presence = Presence(self.ctx, self.sync, self._parse, self._online)
        self.commands = Commands(self.ctx, self.sync, self._parse, self.presence.status)
        self.relay = SignalRelay(core, self.client.publish, self.dead_letters.put,
                                 load_telepresence_config(self.cfg.directory,
                                                          {s.id for s in self.cfg.sites.sites}),
                                 self._parse)
        self.cases = CaseUpdates(self.ctx)
        self._feeds: list = []  # the core's event subscriptions, closed in aclose

    @property
    def devices(self) -> dict[str, DeviceInfo]:
        return self.presence.devices

    @property
    def dead(self) -> Counter[str]:
        return self.dead_letters.by_class

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.acks.load()
        await self.presence.load()
        # Each follower of the core's domain events has its own bounded subscription: one
        # falling behind resynchronises from the core's snapshot (router/service/core/events).
        case_feed = self.core.subscribe("mqtt-cases")
        signal_feed = self.core.subscribe("signal-relay")
        self._feeds = [case_feed, signal_feed]
        for name, loop in (("dead-letters", self.dead_letters.run), ("work", self.work.run),
                           ("presence", self.presence.run), ("commands", self.commands.run),
                           ("cases", lambda: self.cases.run(case_feed)),
                           ("signals", lambda: self.relay.run(signal_feed)),
                           ("fair-intake", self.fair.run)):
            self.tasks.keep(name, loop)
        await self.client.start()

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.tasks.aclose()
        for feed in self._feeds:
            await feed.aclose()
        self._feeds = []

    def _subscriptions(self, protocol: str) -> list[Subscription]:
        # Never a shared subscription: Mosquitto grants any client a $share/… subscription
        # whatever the ACL says (its ACL file does not check SUBSCRIBE; verified on 2.0.11,
        # tests/mqtt/test_hostile.py), hands it a share of the group's messages and then
        # drops them on delivery. A device joining the routers' group would take events
        # away from the router. With a plain subscription the router gets every message.
        sites = [s.id for s in self.cfg.sites.sites] if self.settings.own_sites_only else None
        return [Subscription(f, 0 if f.endswith("/heartbeat") else 1)
                for f in topics.router_filters(shared=False, sites=sites)]

    async def _on_connect(self, conn) -> None:
        self.stats["connects"] += 1

    def status(self) -> dict[str, Any]:
        return {"connected": self.client.connected.is_set(), "protocol": self.client.protocol,
                "broker": f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
                "last_error": self.client.last_error, "counters": dict(self.stats),
                "dead_letters": dict(self.dead),
                "signaling": dict(self.relay.stats),
                "devices": [d.view() for d in sorted(self.devices.values(),
                                                     key=lambda d: d.device)]}

    async def send_command(self, device: str, type: str, args: dict[str, Any] | None = None,
                           ttl_s: float | None = None) -> str:
        """Store a command for ``device`` (durable), then publish it (see bridge.commands)."""
        return await self.commands.send(device, type, args, ttl_s)

    # --- routing (runs in the loop, called by the MQTT client) ------------------------------

    def _on_message(self, msg) -> None:
        t = topics.parse(msg.topic)
        if t is None:
            return self.dead_letters.put("unknown_topic", msg.topic, "not a baton/v1 topic",
                                         msg.payload)
        if self.site_of.get(t.device) != t.site:
            return self.dead_letters.put("unknown_device", msg.topic, f"device {t.device!r} "
                                         f"is not at site {t.site!r} in sites.yaml",
                                         msg.payload)
        if not self.fair.put(t.device, (t, msg)):
            self.stats["overload_dropped"] += 1  # not acked: the edge sends it again

    def _fair_error(self, exc: BaseException) -> None:
        self.stats["errors"] += 1
        log.error("handling a device message failed", exc_info=exc)

    def _device_message(self, item: tuple) -> None:
        t, msg = item
        if t.kind == "events":
            self.intake.event_in(t, msg)
        elif t.kind == "state":
            self.presence.state_in(t, msg)
        elif t.kind == "heartbeat":
            self.presence.heartbeat_in(t, msg)
        elif t.kind == "receipts":
            self.commands.receipt_in(t, msg)
        elif t.kind == "signal/up":
            self.relay.from_device(t, msg)
        else:
            self.stats[f"ignored_{t.kind}"] += 1

    def _parse(self, model, t, msg, limit: int = MAX_MESSAGE_BYTES):
        """The payload as ``model`` (a pydantic model or TypeAdapter), or None having
        dead-lettered it."""
        obj, cls, why = validate(model, msg.payload, limit)
        if obj is None:
            self.dead_letters.put(cls, msg.topic, why, msg.payload)
        return obj

    def _online(self, dev: DeviceInfo) -> None:
        """A device came online: its ack (it may have missed the last) and its commands."""
        self.acks.send(dev.device, dev.site)
        self.work.put(self.commands.send_due(dev.device, resend_all=True))
