"""The router's MQTT bridge: device events in, acks, commands and case updates out, device
presence. Started by the app's lifespan when an MQTT host is configured.

Zero loss rests on one rule: an edge keeps every event in its outbox until an ack says the
router has it *durably* (``Ack.high_water``), and replays from there after any doubt (a
reconnect, a restart, an ack that does not come, a ``resend`` ack). So the bridge only
acks what the store holds, applies idempotently (seq ≤ high-water is a no-op), and answers
a gap with a resend request instead of storing out of order. Events of one origin are
applied one after the other by that origin's worker; origins run concurrently, which lets
the core's group commit batch them.

Bad input never stops the bridge: each class (malformed JSON, wrong schema, oversized,
unknown device, origin ≠ topic device, seq far ahead, refused by the rules, the clock or
the state machine) is counted and kept in the dead-letter table with its reason. Every
refused input that names the device's next seq consumes it (router.device_rules): the
origin is never blocked behind its own bad event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from common.mqtt.client import MqttClient, NotConnected, Settings, Subscription, Tls
from protocol import topics
from protocol.messages import (
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    Ack,
    CaseUpdate,
    Command,
    DeviceState,
    Heartbeat,
    Receipt,
    dumps,
)
from protocol.models import TERMINAL_STATES, CaseEvent
from router.device_rules import event_header
from router.mqtt.auth import router_client_id, router_credentials
from router.mqtt.signal_relay import SignalRelay
from router.service.core import CoreError, Resync, RouterCore
from router.service.core.events import CaseChanged, DeviceChanged
from router.store.errors import StoreError
from router.store.sync import SyncStore
from router.telepresence import load_telepresence_config

log = logging.getLogger("baton.bridge")


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _validate(model, raw: bytes, limit: int):
    """(the payload as ``model``, None, None) or (None, class, reason)."""
    if len(raw) > limit:
        return None, "oversized", f"{len(raw)} bytes; the limit is {limit}"
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_json(raw), None, None
        return model.model_validate_json(raw), None, None
    except ValidationError as exc:
        errs = exc.errors()
        if any(e["type"] == "json_invalid" for e in errs):
            if "recursion limit" in errs[0]["msg"]:
                return None, "schema", "nested too deep for the parser: flatten it"
            return None, "malformed_json", errs[0]["msg"]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                          for e in errs[:3])
        return None, "schema", where

EVENT = TypeAdapter(CaseEvent)
# Events waiting per origin; an edge keeps at most its window (256) in flight, so only a
# misbehaving one gets here. What is dropped is not acked, so it is sent again.
MAX_QUEUED_PER_ORIGIN = 5000
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
REVISIONS_KEPT = 20_000  # cases whose last sent revision is remembered (for a resync)


class BridgeError(Exception):
    pass


@dataclass(slots=True)
class BridgeSettings:
    mqtt: Settings
    max_seq_ahead: int = 10_000  # edges' outboxes hold at most this many unacked events
    ack_every: int = 32  # during a burst, ack at least this often
    resend_hold_s: float = 2.0  # one resend request per origin and high-water mark per ...
    command_retry_s: float = 10.0
    command_ttl_s: float = 3600.0
    heartbeat_misses: float = 3.0  # offline after this many missed heartbeats
    battery_low: float = 15.0
    # Beyond these, bad input is counted but not stored: per device, so one device's flood
    # cannot crowd out another's dead letters, and in all.
    dead_letters_per_s: float = 5.0
    dead_letters_total_per_s: float = 100.0
    # Each refusal is a store write under the core's lock: a device whose events keep being
    # refused is slowed down to this (its later events wait, unacked), not the others.
    refusals_per_s: float = 5.0
    case_update_ttl_s: int = 86400
    storm_count: int = 5  # gaps/conflicts of one device within storm_window_s → an alert
    storm_window_s: float = 60.0


def settings_from_env(env: dict[str, str] | None = None) -> BridgeSettings | None:
    """BATON_MQTT_HOST (unset: no bridge), BATON_MQTT_PORT, BATON_MQTT_USERNAME,
    BATON_MQTT_PASSWORD, BATON_MQTT_CLIENT_ID, BATON_MQTT_PROTOCOL (auto | 5 | 3.1.1),
    BATON_MQTT_TLS_CA (turns TLS on; a CA file, or "system")."""
    env = os.environ if env is None else env
    host = env.get("BATON_MQTT_HOST")
    if not host:
        return None
    user, password = router_credentials(env)
    tls_ca = env.get("BATON_MQTT_TLS_CA")
    tls = Tls(ca_file=None if tls_ca == "system" else tls_ca) if tls_ca else None
    protocol = env.get("BATON_MQTT_PROTOCOL") or "auto"
    if protocol not in ("auto", "5", "3.1.1"):
        raise BridgeError(f"BATON_MQTT_PROTOCOL={protocol!r}: use auto, 5 or 3.1.1")
    return BridgeSettings(Settings(
        host=host, port=int(env.get("BATON_MQTT_PORT") or (8883 if tls else 1883)),
        client_id=env.get("BATON_MQTT_CLIENT_ID") or router_client_id(password),
        username=user, password=password, protocol=protocol, tls=tls,  # type: ignore[arg-type]
        session_expiry_s=3600))


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


class _Bucket:
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


class Bridge:
    def __init__(self, core: RouterCore, settings: BridgeSettings):
        self.core, self.cfg, self.settings = core, core.cfg, settings
        self.sync = SyncStore(core.store)
        self.site_of = {d.id: s.id for s in self.cfg.sites.sites for d in s.devices}
        self.kind_of = {d.id: d.kind for s in self.cfg.sites.sites for d in s.devices}
        self.devices: dict[str, DeviceInfo] = {}
        self.stats: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self._durable: dict[str, int] = {}
        self._queues: dict[str, deque] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._resend_asked: dict[str, tuple[int, float]] = {}
        self._storms: dict[str, deque] = {}
        self._storm_alerted: dict[str, float] = {}
        self._case_sent: dict[str, tuple] = {}
        self._revision_sent: OrderedDict[str, int] = OrderedDict()  # last update sent
        self._dead_q: asyncio.Queue = asyncio.Queue(1000)
        self._work_q: asyncio.Queue = asyncio.Queue(10_000)
        self._bucket = _Bucket(settings.dead_letters_total_per_s)
        self._buckets: dict[str, _Bucket] = {}
        self._refusal_budget: dict[str, _Bucket] = {}
        self._slow: set[str] = set()  # origins over their refusal budget
        self._tasks: list[asyncio.Task] = []
        self._case_feed = None  # the core's events (router/service/core/events.py)
        self.client = MqttClient(settings.mqtt, on_message=self._on_message,
                                 subscriptions=self._subscriptions,
                                 on_connect=self._on_connect)
        self.relay = SignalRelay(core, self.client.publish, self._dead,
                                 load_telepresence_config(self.cfg.directory,
                                                          {s.id for s in self.cfg.sites.sites}),
                                 self._parse)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._durable = await self.core.store.high_waters()
        now = self.core.clock.now()
        for dev, row in (await self.sync.presences()).items():
            if dev in self.site_of:
                # A fresh heartbeat window: the router was away, not necessarily the device.
                self.devices[dev] = DeviceInfo(dev, self.site_of[dev], self.kind_of[dev],
                                               status=row["status"], conn=row["conn"],
                                               since=row["since"], last_seen=now,
                                               telemetry=row["telemetry"] or {})
        self._case_feed = self.core.subscribe("mqtt-cases")
        signal_feed = self.core.subscribe("signal-relay")
        self._tasks = [asyncio.create_task(coro, name=f"bridge-{name}") for name, coro in (
            ("dead-letters", self._dead_loop()), ("work", self._work_loop()),
            ("presence", self._presence_loop()), ("commands", self._command_loop()),
            ("cases", self._case_loop(self._case_feed)),
            ("signals", self.relay.run(signal_feed)))]
        await self.client.start()

    async def aclose(self) -> None:
        await self.client.aclose()
        tasks = [*self._tasks, *self._workers.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._workers = [], {}

    def _subscriptions(self, protocol: str) -> list[Subscription]:
        # Never a shared subscription: Mosquitto grants any client a $share/… subscription
        # whatever the ACL says (its ACL file does not check SUBSCRIBE; verified on 2.0.11,
        # tests/mqtt/test_hostile.py), hands it a share of the group's messages and then
        # drops them on delivery. A device joining the routers' group would take events
        # away from the router. With a plain subscription the router gets every message.
        return [Subscription(f, 0 if f.endswith("/heartbeat") else 1)
                for f in topics.router_filters(shared=False)]

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

    # --- intake (runs in the loop, called by the MQTT client) -------------------------------

    def _on_message(self, msg) -> None:
        t = topics.parse(msg.topic)
        if t is None:
            return self._dead("unknown_topic", msg.topic, "not a baton/v1 topic", msg.payload)
        if self.site_of.get(t.device) != t.site:
            return self._dead("unknown_device", msg.topic, f"device {t.device!r} is not at "
                              f"site {t.site!r} in sites.yaml", msg.payload)
        if t.kind == "events":
            self._event_in(t, msg)
        elif t.kind == "state":
            self._state_in(t, msg)
        elif t.kind == "heartbeat":
            self._heartbeat_in(t, msg)
        elif t.kind == "receipts":
            self._receipt_in(t, msg)
        elif t.kind == "signal/up":
            self.relay.from_device(t, msg)
        else:
            self.stats[f"ignored_{t.kind}"] += 1

    def _parse(self, model, t, msg, limit: int = MAX_MESSAGE_BYTES):
        """The payload as ``model`` (a pydantic model or TypeAdapter), or None having
        dead-lettered it."""
        obj, cls, why = _validate(model, msg.payload, limit)
        if obj is None:
            self._dead(cls, msg.topic, why, msg.payload)
        return obj

    def _event_in(self, t: topics.Topic, msg) -> None:
        self.stats["received"] += 1
        event, cls, why = _validate(EVENT, msg.payload, MAX_EVENT_BYTES)
        if event is None:
            # Input that names this device's next seq consumes it, whatever is wrong with
            # the rest (docs/protocol.md §8); anything else is only dead-lettered.
            head = event_header(msg.payload)
            if head is None or head[0] != t.device:
                return self._dead(cls, msg.topic, why, msg.payload)
            return self._enqueue(t, (None, msg, head[1], cls, why, head[2]))
        if event.origin != t.device:
            return self._dead("origin_mismatch", msg.topic, f"event origin {event.origin!r} is "
                              f"not the topic's device {t.device!r}", msg.payload)
        self._enqueue(t, (event, msg, event.seq, None, None, None))

    def _enqueue(self, t: topics.Topic, item: tuple) -> None:
        queue = self._queues.setdefault(t.device, deque())
        if len(queue) >= MAX_QUEUED_PER_ORIGIN:
            self.stats["overload_dropped"] += 1  # not acked: the edge sends it again
            return
        queue.append(item)
        if t.device not in self._workers:
            self._workers[t.device] = asyncio.create_task(self._origin_worker(t.device, t.site),
                                                          name=f"bridge-origin-{t.device}")

    # --- applying events, one origin at a time ------------------------------------------------

    async def _origin_worker(self, origin: str, site: str) -> None:
        queue = self._queues[origin]
        unacked = 0
        try:
            while queue:
                event, msg, seq, cls, why, event_id = queue.popleft()
                try:
                    if event is None:
                        await self._apply_invalid(origin, site, seq, msg, cls, why, event_id)
                    else:
                        await self._apply(origin, site, event, msg)
                except Exception:
                    self.stats["errors"] += 1
                    log.exception("applying a device event failed", extra={"origin": origin})
                unacked += 1
                if not queue or unacked >= self.settings.ack_every:
                    self._send_ack(origin, site)
                    unacked = 0
                if origin in self._slow:
                    self._slow.discard(origin)
                    self.stats["refusals_throttled"] += 1
                    await asyncio.sleep(1 / self.settings.refusals_per_s)
        finally:
            self._workers.pop(origin, None)

    def _ahead(self, origin: str, site: str, seq: int, msg) -> bool:
        """True (handled) when ``seq`` is past the next one: a gap (resend) or far ahead."""
        hw = self.core.high_water_of(origin)
        if seq <= hw + 1:
            return False
        ahead = seq - hw
        if ahead > self.settings.max_seq_ahead:
            self._dead("seq_far_ahead", msg.topic, f"seq {seq} is {ahead} past the "
                       f"high-water mark {hw} (limit {self.settings.max_seq_ahead}): was "
                       "the device's outbox replaced?", msg.payload)
        else:
            self.stats["gap"] += 1
            self._ask_resend(origin, site)
        return True

    async def _apply(self, origin: str, site: str, event, msg) -> None:
        core = self.core
        if event.seq <= self._durable.get(origin, 0):
            # Durable already: answered from the store, without the core's lock.
            held = await core.store.held_at(origin, event.seq)
            if held is None or held[1] in (None, event.event_id):
                self.stats["duplicate"] += 1
                return
            return self._conflict(origin, site, event, msg, held[1])
        if self._ahead(origin, site, event.seq, msg):
            return
        try:
            result = await core.take_external(event, device=origin, site=site, may_open=True,
                                              source=f"mqtt:{msg.topic}",
                                              raw=_raw_text(msg.payload))
        except CoreError as exc:
            if exc.reason == "seq_gap":
                self.stats["gap"] += 1
                return self._ask_resend(origin, site)
            # unavailable (or anything else): not acked, so the edge sends it again
            self.stats["store_unavailable" if exc.reason == "unavailable"
                       else f"refused_{exc.reason}"] += 1
            return
        except StoreError as exc:
            self.stats["store_unavailable"] += 1
            log.warning("store unavailable while applying", extra={"error": str(exc)})
            return
        self.stats[result.status] += 1
        if result.status in ("applied", "refused"):
            self._durable[origin] = max(self._durable.get(origin, 0), event.seq)
            if result.status == "refused":
                self._refused(origin, event.seq, result.cls, result.reason)
            return
        if result.status == "seq_conflict":
            self._dead(result.cls, msg.topic, result.reason, msg.payload)
            self._storm(origin, site, "seq_conflict")
        if event.seq > self._durable.get(origin, 0):
            self._durable[origin] = max(self._durable.get(origin, 0),
                                        await core.store.high_water(origin))

    async def _apply_invalid(self, origin: str, site: str, seq: int, msg, cls: str,
                             why: str, event_id: str | None) -> None:
        """Input naming seq ``seq`` of ``origin`` that is not a valid event: its seq is
        consumed and the input kept with the reason."""
        if seq <= self._durable.get(origin, 0) or self._ahead(origin, site, seq, msg):
            if seq <= self._durable.get(origin, 0):
                self.stats["duplicate"] += 1
            return
        try:
            outcome = await self.core.refuse_seq(
                origin, seq, cls=cls, reason=why, event_id=event_id,
                source=f"mqtt:{msg.topic}", raw=_raw_text(msg.payload))
        except CoreError as exc:  # not consumed: the edge sends it again
            self.stats["store_unavailable" if exc.reason == "unavailable"
                       else f"refused_{exc.reason}"] += 1
            return
        if outcome == "refused":
            self._durable[origin] = max(self._durable.get(origin, 0), seq)
            self._refused(origin, seq, cls, why)
        elif outcome == "gap":
            self.stats["gap"] += 1
            self._ask_resend(origin, site)

    def _refused(self, origin: str, seq: int, cls: str, reason: str) -> None:
        bucket = self._refusal_budget.get(origin)
        if bucket is None:
            bucket = self._refusal_budget[origin] = _Bucket(self.settings.refusals_per_s,
                                                            burst=4 * self.settings.refusals_per_s)
        if not bucket.take():
            self._slow.add(origin)
        self.dead[cls] += 1
        self.stats["dead_letters"] += 1
        self.stats["refused_seqs"] += 1
        log.warning("device event refused", extra={"origin": origin, "seq": seq,
                                                   "class": cls, "pii": {"reason": reason}})

    def _conflict(self, origin: str, site: str, event, msg, held: str) -> None:
        self.stats["seq_conflict"] += 1
        self._dead("seq_conflict", msg.topic, f"origin {origin!r} seq {event.seq} is taken by "
                   f"another event ({held}): a device continues from its acked high-water "
                   "mark + 1 with new events", msg.payload)
        self._storm(origin, site, "seq_conflict")

    def _storm(self, origin: str, site: str, kind: str) -> None:
        """Gaps (resend requests) and conflicts per device in a sliding window: many mean
        someone else consumes the device's events (e.g. a shared subscription), a lossy
        link, or an edge that replays wrongly. One alert per device per window."""
        now, window = time.monotonic(), self.settings.storm_window_s
        seen = self._storms.setdefault(origin, deque())
        seen.append(now)
        while seen and seen[0] < now - window:
            seen.popleft()
        last = self._storm_alerted.get(origin)
        if len(seen) >= self.settings.storm_count and (last is None or now - last > window):
            self._storm_alerted[origin] = now
            self.stats["storm_alerts"] += 1
            self._work(self.core.raise_alert(
                "device_resend_storm", device=origin, site=site, trigger=kind,
                message=f"{origin} at {site}: {len(seen)} gaps or conflicts in {window:.0f} s "
                "(last: {kind}). Its events may be consumed by someone else (a shared "
                "subscription on the broker), its link may lose messages, or its outbox "
                "replays wrongly: check the broker's subscriptions and the device's logs"
                .replace("{kind}", kind)))

    def _send_ack(self, origin: str, site: str, resend: bool = False) -> None:
        ack = Ack(origin=origin, high_water=self._durable.get(origin, 0), resend=resend,
                  ts=self.core.clock.now())
        try:
            self.client.publish(topics.topic(site, origin, "acks"), dumps(ack), qos=1,
                                retain=not resend)
            self.stats["acks"] += 1
        except NotConnected:
            pass  # the edge asks again (it resends; we ack the duplicates)

    def _ask_resend(self, origin: str, site: str) -> None:
        hw, now = self._durable.get(origin, 0), time.monotonic()
        last = self._resend_asked.get(origin)
        if last is not None and last[0] == hw and now - last[1] < self.settings.resend_hold_s:
            return
        self._resend_asked[origin] = (hw, now)
        self.stats["resend_requests"] += 1
        self._send_ack(origin, site, resend=True)
        self._storm(origin, site, "gap")

    # --- dead letters --------------------------------------------------------------------------

    def _dead(self, cls: str, topic: str, reason: str, raw: bytes) -> None:
        self.dead[cls] += 1
        self.stats["dead_letters"] += 1
        parsed = topics.parse(topic)
        key = parsed.device if parsed is not None and parsed.device in self.site_of else ""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.settings.dead_letters_per_s,
                                                  burst=4 * self.settings.dead_letters_per_s)
        if not bucket.take() or not self._bucket.take():
            self.stats["dead_letters_not_stored"] += 1
            return
        try:
            self._dead_q.put_nowait((cls, topic, reason, raw, self.core.clock.now()))
        except asyncio.QueueFull:
            self.stats["dead_letters_not_stored"] += 1

    async def _dead_loop(self) -> None:
        """Dead letters in batches, one transaction each: a flood of bad input costs the
        store a few writes per second, not one per message."""
        while True:
            batch = [await self._dead_q.get()]
            while not self._dead_q.empty() and len(batch) < 500:
                batch.append(self._dead_q.get_nowait())
            try:
                await self.core.store.dead_letters_many([
                    (f"mqtt:{topic}", f"{cls}: {reason}", raw, ts)
                    for cls, topic, reason, raw, ts in batch])
            except Exception as exc:
                self.stats["dead_letters_not_stored"] += len(batch)
                log.warning("could not store dead letters", extra={"error": str(exc)})
            await asyncio.sleep(1.0)  # let the queue gather the next batch

    # --- presence ----------------------------------------------------------------------------

    def _device(self, t: topics.Topic) -> DeviceInfo:
        dev = self.devices.get(t.device)
        if dev is None:
            dev = self.devices[t.device] = DeviceInfo(t.device, t.site, self.kind_of[t.device])
        return dev

    def _state_in(self, t: topics.Topic, msg) -> None:
        if not msg.payload:
            return  # a retained state being cleared
        state = self._parse(DeviceState, t, msg)
        if state is None:
            return
        dev, now = self._device(t), self.core.clock.now()
        if state.status == "online":
            dev.last_seen = now
            if dev.status != "online" or dev.conn != state.conn:
                self._went(dev, "online", state.conn, "connected")
        elif dev.status == "online" and state.conn != dev.conn:
            self.stats["stale_wills"] += 1  # the will of a connection already replaced
        elif dev.status != "offline":
            self._went(dev, "offline", state.conn, state.reason or "connection lost")

    def _heartbeat_in(self, t: topics.Topic, msg) -> None:
        hb = self._parse(Heartbeat, t, msg)
        if hb is None:
            return
        dev, now = self._device(t), self.core.clock.now()
        dev.last_seen, dev.interval_s = now, hb.interval_s
        dev.telemetry = hb.model_dump(mode="json", exclude={"v", "conn", "interval_s"},
                                      exclude_none=True)
        if dev.status != "online":
            self._went(dev, "online", hb.conn, "heartbeat")
        self._check_alarms(dev, hb)

    def _check_alarms(self, dev: DeviceInfo, hb: Heartbeat) -> None:
        low = hb.battery is not None and hb.battery.percent < self.settings.battery_low \
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
            self._work(self.core.raise_alert(f"device_{kind}", device=dev.device,
                                              site=dev.site, message=message))
        elif not on:
            dev.alarms.discard(kind)

    def _went(self, dev: DeviceInfo, status: str, conn: str | None, reason: str) -> None:
        was, now = dev.status, self.core.clock.now()
        dev.status, dev.conn, dev.since = status, conn, now
        self.stats[f"went_{status}"] += 1
        log.info("device presence", extra={"device": dev.device, "status": status,
                                           "reason": reason})
        self._work(self.sync.put_presence(device=dev.device, site=dev.site, status=status,
                                          conn_id=conn, since=now, last_seen=dev.last_seen,
                                          telemetry=dev.telemetry or None))
        self.core.publish(DeviceChanged(dev.view(), reason))
        if status == "offline":
            self._work(self.core.raise_alert("device_offline", device=dev.device, site=dev.site,
                                             message=f"{dev.device} at {dev.site} is offline: "
                                             f"{reason}"))
        elif was == "offline":
            self._work(self.core.raise_alert("device_online", device=dev.device, site=dev.site,
                                             message=f"{dev.device} at {dev.site} is back"))
        if status == "online":
            self._send_ack(dev.device, dev.site)
            self._work(self._send_due(dev.device, resend_all=True))

    async def _presence_loop(self) -> None:
        """Offline when heartbeats stop (the broker's last will covers a dropped TCP
        connection; this covers a broker restart or a half-open link)."""
        while True:
            await asyncio.sleep(1.0)
            now = self.core.clock.now()
            for dev in list(self.devices.values()):
                if dev.status == "online" and dev.interval_s:
                    silent = now - dev.last_seen
                    if silent > self.settings.heartbeat_misses * dev.interval_s + 1:
                        self._went(dev, "offline", dev.conn, f"no heartbeat for {silent:.0f} s")

    def _work(self, coro) -> None:
        try:
            self._work_q.put_nowait(coro)
        except asyncio.QueueFull:
            coro.close()
            self.stats["work_dropped"] += 1
            log.error("bridge work queue full; dropped a presence update")

    async def _work_loop(self) -> None:
        while True:
            coro = await self._work_q.get()
            try:
                await coro
            except Exception:
                log.exception("bridge work failed")

    # --- commands --------------------------------------------------------------------------------

    async def send_command(self, device: str, type: str, args: dict[str, Any] | None = None,
                           ttl_s: float | None = None) -> str:
        """Store a command for ``device`` (durable), then publish it. The edge runs it once
        and sends a receipt; until then it is published again (see _command_loop)."""
        site = self.site_of.get(device)
        if site is None:
            raise BridgeError(f"unknown device {device!r}; see sites.yaml")
        now = self.core.clock.now()
        ttl = ttl_s or self.settings.command_ttl_s
        cmd = Command(command_id="cmd-" + uuid.uuid4().hex, type=type, args=args or {},
                      ts=now, expires_at=now + ttl)
        await self.sync.put_command(command_id=cmd.command_id, device=device, site=site,
                                    type=cmd.type, args=cmd.args, created_at=now,
                                    expires_at=cmd.expires_at)
        self.stats["commands"] += 1
        await self._send_due(device, resend_all=False, only=cmd.command_id)
        return cmd.command_id

    async def _send_due(self, device: str | None, resend_all: bool,
                        only: str | None = None) -> None:
        now = self.core.clock.now()
        before = now if resend_all else now - self.settings.command_retry_s
        rows = await self.sync.due_commands(now, before, device=device)
        sent = []
        for row in rows:
            if only is not None and row["command_id"] != only:
                continue
            dev = self.devices.get(row["device"])
            if row["sent_at"] is not None and dev is not None and dev.status == "offline":
                continue  # the broker holds the last copy for its session
            cmd = Command(command_id=row["command_id"], type=row["type"], args=row["args"],
                          ts=row["created_at"], expires_at=row["expires_at"])
            expiry = None if cmd.expires_at is None else max(1, int(cmd.expires_at - now))
            try:
                self.client.publish(topics.topic(row["site"], row["device"], "commands"),
                                    dumps(cmd), qos=1, expiry_s=expiry)
            except NotConnected:
                break
            sent.append(row["command_id"])
        await self.sync.mark_sent(sent, now)
        self.stats["commands_sent"] += len(sent)

    async def _command_loop(self) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(max(0.5, self.settings.command_retry_s / 2))
            try:
                now = self.core.clock.now()
                self.stats["commands_expired"] += await self.sync.expire_commands(now)
                if self.client.connected.is_set():
                    await self._send_due(None, resend_all=False)
                if now - last_prune > 3600:
                    await self.sync.prune_commands(now - 7 * 86400)
                    last_prune = now
            except Exception as exc:
                log.warning("command resend failed", extra={"error": str(exc)})

    def _receipt_in(self, t: topics.Topic, msg) -> None:
        receipt = self._parse(Receipt, t, msg)
        if receipt is not None:
            self._work(self._record_receipt(t.device, receipt))

    async def _record_receipt(self, device: str, r: Receipt) -> None:
        ok = await self.sync.set_receipt(r.command_id, device, r.status, r.detail,
                                         self.core.clock.now())
        self.stats["receipts" if ok else "receipts_unmatched"] += 1

    # --- case updates to the device ------------------------------------------------------------

    async def _case_loop(self, feed) -> None:
        """Case changes of a device's cases go to its ``…/cases`` topic (state, assigned
        worker, outcome): so the edge knows when a human is connected. A ``Resync`` (this
        feed fell behind the core) re-sends what differs from the core's snapshot."""
        async for event in feed:
            try:
                if isinstance(event, Resync):
                    await self._resync_cases()
                elif isinstance(event, CaseChanged):
                    self._case_update(event.case)
            except Exception:
                log.exception("sending a case update failed")

    async def _resync_cases(self) -> None:
        self.stats["case_resyncs"] += 1
        open_now = {c.id: c for c in self.core.open_cases()}
        for case in open_now.values():
            self._case_update(case)
        # Devices' cases that closed while updates were dropped: their last state.
        for case in self.core.recently_closed():
            if self._revision_sent.get(case.id, -1) < case.revision:
                self._case_update(case)
        for case_id in [k for k in self._case_sent if k not in open_now]:
            case = await self.core.case(case_id)  # closed long ago: from the store
            if case is not None:
                self._case_update(case)

    def _case_update(self, case) -> None:
        device = case.device
        site = self.site_of.get(device or "")
        if site is None:
            return
        outcome = case.outcome
        key = (case.state.value, case.assigned_worker, outcome)
        if self._case_sent.get(case.id) == key:
            return
        worker = next((w for w in self.core.cfg.workers.workers
                       if w.id == case.assigned_worker), None)
        update = CaseUpdate(case_id=case.id, state=case.state.value,
                            revision=case.revision, updated_at=case.updated_at,
                            assigned_worker=case.assigned_worker,
                            worker_name=worker.name if worker else None,
                            worker_kind=str(getattr(worker.kind, "value", worker.kind))
                            if worker else None,
                            outcome=outcome)
        try:
            self.client.publish(topics.topic(site, device, "cases"), dumps(update), qos=1,
                                expiry_s=self.settings.case_update_ttl_s)
        except NotConnected:
            return
        self.stats["case_updates"] += 1
        self._revision_sent[case.id] = case.revision
        while len(self._revision_sent) > REVISIONS_KEPT:
            self._revision_sent.popitem(last=False)
        if case.state.value in _TERMINAL:
            self._case_sent.pop(case.id, None)
        else:
            self._case_sent[case.id] = key
