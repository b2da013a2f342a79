"""The edge's MQTT side: outbox replay, router acks, commands (run once), case updates,
presence (retained state + last will) and heartbeats.

    async with Outbox(path, device) as outbox, EdgeSync(settings, outbox) as sync:
        await sync.emit(case_id, "turn", {...})    # durable first, then published

Delivery: events go out in seq order, at most ``window`` unacknowledged at a time. The
router acks the highest seq it holds durably; acked events are pruned. Whenever there is
doubt — a new connection, a ``resend`` ack (the router saw a gap), or no ack progress for
``ack_timeout_s`` (doubling up to ``ack_timeout_max_s``) — sending starts again right after
the acked mark. The router drops what it already has, so doubt costs bandwidth, never
correctness. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from common.tasks import Supervisor
from common.mqtt.client import Message, MqttClient, NotConnected, Settings, Subscription, Will
from edge.outbox import Outbox
from protocol import topics
from protocol.messages import (
    Ack,
    CaseUpdate,
    Command,
    DeviceState,
    Heartbeat,
    OutboxStats,
    Receipt,
    dumps,
)

log = logging.getLogger("baton.edge.sync")
SOFTWARE = "baton-edge/0.1"

# A command handler returns "done" | "failed" | "unsupported", or (status, detail).
CommandHandler = Callable[[Command], Awaitable[str | tuple[str, str]]]


@dataclass(slots=True)
class EdgeSettings:
    site: str
    device: str
    kind: str  # kiosk | robot
    mqtt: Settings
    window: int = 256
    ack_timeout_s: float = 5.0
    ack_timeout_max_s: float = 60.0
    heartbeat_s: float = 10.0
    will_delay_s: int = 5  # MQTT 5: a blip shorter than this does not flap presence
    event_expiry_s: int = 3600  # MQTT 5: the outbox replays anyway; no stale floods


def edge_mqtt_settings(device: str, token: str, host: str, port: int = 1883,
                       **kwargs: Any) -> Settings:
    """Client id, username and password of a device (its id and its bearer token)."""
    return Settings(host=host, port=port, client_id=f"baton-edge-{device}", username=device,
                    password=token, **kwargs)


class EdgeSync:
    def __init__(self, settings: EdgeSettings, outbox: Outbox, *,
                 on_command: CommandHandler | None = None,
                 on_case: Callable[[CaseUpdate], None] | None = None,
                 telemetry: Callable[[], dict[str, Any]] | None = None):
        self.settings, self.outbox = settings, outbox
        self.on_command, self.on_case, self.telemetry = on_command, on_case, telemetry
        # …/signal/down messages, raw (edge.webrtc.mqtt_signaler.SignalLink.attach sets it).
        self.on_signal: Callable[[Message], None] | None = None
        s = settings
        self._topic = {k: topics.topic(s.site, s.device, k) for k in topics.KINDS}
        self.cases: dict[str, CaseUpdate] = {}
        self.stats: dict[str, int] = {"published": 0, "replays": 0, "timeouts": 0,
                                      "resends": 0, "commands": 0, "duplicate_commands": 0,
                                      "bad_messages": 0}
        self._conn = ""
        self._sent = outbox.acked  # highest seq handed to the broker on this connection
        self._gen = 0  # bumped on every rewind, so an in-flight read does not undo it
        self._wake = asyncio.Event()
        self._acked = asyncio.Condition()
        self._progress = time.monotonic()
        self._timeout = s.ack_timeout_s
        self._commands: asyncio.Queue[Command] = asyncio.Queue(1000)
        self._acks: asyncio.Queue[Ack] = asyncio.Queue()
        # The sender, ack timer, heartbeats, ack and command loops: each is logged and
        # started again if it fails (a failing outbox read must not stop the replay).
        self.tasks = Supervisor(f"edge-sync-{s.device}", logger=log,
                                context={"device": s.device})
        self.client = MqttClient(
            s.mqtt, on_message=self._on_message, on_connect=self._on_connect,
            subscriptions=[Subscription(f, 1) for f in topics.device_filters(s.site, s.device)],
            will=self._will)

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> EdgeSync:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        for name, loop in (("sender", self._sender), ("acks", self._ack_timer),
                           ("heartbeat", self._heartbeats), ("ack-in", self._ack_loop),
                           ("commands", self._command_loop)):
            self.tasks.keep(name, loop)
        await self.client.start()

    async def aclose(self) -> None:
        """Say goodbye (retained offline state), then disconnect without a last will."""
        if self.client.connected.is_set():
            try:
                await self.client.publish_wait(self._topic["state"], dumps(DeviceState(
                    status="offline", conn=self._conn, ts=time.time(), kind=self._kind(),
                    reason="shut down")), retain=True, timeout=2)
            except (NotConnected, TimeoutError):
                pass
        await self.client.aclose()
        await self.tasks.aclose()

    # --- sending events -------------------------------------------------------------------

    async def emit(self, case_id: str, type: str, payload: dict[str, Any], *,
                   event_id: str | None = None, ts: float | None = None) -> dict[str, Any]:
        """Commit an event to the outbox (raises OutboxFull / ValueError), then send it."""
        event = await self.outbox.append(case_id, type, payload, event_id=event_id, ts=ts)
        self._wake.set()
        return event

    @property
    def acked(self) -> int:
        return self.outbox.acked

    async def wait_acked(self, seq: int, timeout: float | None = None) -> None:
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: self.outbox.acked >= seq),
                                   timeout)

    def _rewind(self) -> None:
        self._sent = self.outbox.acked
        self._gen += 1
        self._progress = time.monotonic()
        self._wake.set()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.client.connected.is_set():
                room = self.settings.window - (self._sent - self.outbox.acked)
                if room <= 0:
                    break
                gen, after = self._gen, self._sent
                rows = await self.outbox.unacked(after, min(room, 128))
                if gen != self._gen:
                    continue  # rewound meanwhile: read again from the new mark
                if not rows:
                    break
                if self._sent == self.outbox.acked:
                    self._progress = time.monotonic()  # the ack clock starts now
                try:
                    for seq, data in rows:
                        self.client.publish(self._topic["events"], data, qos=1,
                                            expiry_s=self.settings.event_expiry_s)
                        self._sent = seq
                        self.stats["published"] += 1
                except NotConnected:
                    break

    async def _ack_timer(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            await self.outbox.flush()
            if self._sent <= self.outbox.acked or not self.client.connected.is_set():
                self._progress = time.monotonic()
                continue
            if time.monotonic() - self._progress > self._timeout:
                log.info("no ack in time: sending again from the acked mark",
                         extra={"device": self.settings.device, "acked": self.outbox.acked,
                                "sent": self._sent, "timeout_s": self._timeout})
                self.stats["timeouts"] += 1
                self._timeout = min(self._timeout * 2, self.settings.ack_timeout_max_s)
                self._rewind()

    async def _on_ack(self, ack: Ack) -> None:
        if ack.high_water > self.outbox.last_seq:
            moved = await self.outbox.rebase(ack.high_water)
            log.error("router knows more events of this device than its outbox",
                      extra={"device": self.settings.device, "renumbered": moved})
            self._rewind()
            return
        if ack.high_water > self.outbox.acked:
            await self.outbox.ack(ack.high_water, lazy=True)
            self._sent = max(self._sent, self.outbox.acked)
            self._progress = time.monotonic()
            self._timeout = self.settings.ack_timeout_s
            async with self._acked:
                self._acked.notify_all()
            self._wake.set()
        if ack.resend and self._sent > ack.high_water:
            self.stats["resends"] += 1
            self._rewind()

    # --- connection ---------------------------------------------------------------------------

    def _kind(self) -> str | None:
        return self.settings.kind if self.settings.kind in ("kiosk", "robot") else None

    def _will(self) -> Will:
        """A new connection id per connection: the will of an old connection cannot mark a
        newer one offline."""
        self._conn = uuid.uuid4().hex[:16]
        return Will(self._topic["state"], dumps(DeviceState(
            status="offline", conn=self._conn, ts=time.time(), kind=self._kind(),
            reason="connection lost")), qos=1, retain=True, delay_s=self.settings.will_delay_s)

    async def _on_connect(self, conn) -> None:
        self.stats["replays"] += 1
        self.client.publish(self._topic["state"], dumps(DeviceState(
            status="online", conn=self._conn, ts=time.time(), kind=self._kind(),
            software=SOFTWARE)), qos=1, retain=True)
        self._heartbeat()
        self._rewind()  # replay everything not acknowledged

    # --- heartbeats ---------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        try:
            extra = self.telemetry() if self.telemetry else {}
            hb = Heartbeat(conn=self._conn, ts=time.time(),
                           interval_s=self.settings.heartbeat_s,
                           outbox=OutboxStats(pending=self.outbox.pending,
                                              capacity=self.outbox.capacity,
                                              full=self.outbox.alarm == "full"), **extra)
        except Exception:  # bad telemetry costs the heartbeat's extras, never the link
            log.exception("telemetry failed; heartbeat sent without it")
            hb = Heartbeat(conn=self._conn, ts=time.time(),
                           interval_s=self.settings.heartbeat_s)
        try:
            self.client.publish(self._topic["heartbeat"], dumps(hb), qos=0)
        except NotConnected:
            pass

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if self.client.connected.is_set():
                self._heartbeat()

    # --- messages from the router -----------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        t = topics.parse(msg.topic)
        if t is None or t.device != self.settings.device:
            return
        try:
            if t.kind == "acks":
                if msg.payload:
                    ack = Ack.model_validate_json(msg.payload)
                    if ack.origin == self.settings.device:
                        self._acks.put_nowait(ack)
            elif t.kind == "commands":
                self._commands.put_nowait(Command.model_validate_json(msg.payload))
            elif t.kind == "cases":
                self._case(CaseUpdate.model_validate_json(msg.payload))
            elif t.kind == "signal/down" and self.on_signal is not None:
                self.on_signal(msg)
        except (ValidationError, asyncio.QueueFull) as exc:
            self.stats["bad_messages"] += 1
            log.warning("bad message from the router", extra={"topic": msg.topic,
                                                              "error": str(exc)[:200]})

    async def _ack_loop(self) -> None:
        while True:
            ack = await self._acks.get()
            while not self._acks.empty() and not ack.resend:  # only the newest mark matters
                nxt = self._acks.get_nowait()
                ack = nxt if nxt.high_water >= ack.high_water or nxt.resend else ack
            try:
                await self._on_ack(ack)
            except Exception:
                log.exception("handling an ack failed", extra={"device": self.settings.device})

    def _case(self, update: CaseUpdate) -> None:
        old = self.cases.get(update.case_id)
        if old is not None and old.revision >= update.revision:
            return
        self.cases[update.case_id] = update
        if self.on_case is not None:
            self.on_case(update)

    async def _command_loop(self) -> None:
        while True:
            cmd = await self._commands.get()
            try:
                await self._run_command(cmd)
            except Exception:
                log.exception("command handling failed", extra={"command_id": cmd.command_id})

    async def _run_command(self, cmd: Command) -> None:
        done = await self.outbox.command_status(cmd.command_id)
        if done is not None:
            self.stats["duplicate_commands"] += 1
            status, detail = done
        elif cmd.expires_at is not None and cmd.expires_at < time.time():
            status, detail = "expired", ""
            await self.outbox.record_command(cmd.command_id, status, detail)
        else:
            self.stats["commands"] += 1
            status, detail = "unsupported", f"no handler for {cmd.type!r}"
            if self.on_command is not None:
                try:
                    result = await self.on_command(cmd)
                    status, detail = result if isinstance(result, tuple) else (result, "")
                except Exception as exc:
                    status, detail = "failed", f"{type(exc).__name__}: {exc}"[:500]
            await self.outbox.record_command(cmd.command_id, status, detail)
        try:
            self.client.publish(self._topic["receipts"], dumps(Receipt(
                command_id=cmd.command_id, status=status, detail=detail[:500], ts=time.time())),
                qos=1)
        except NotConnected:
            pass  # the router sends the command again; we answer from the record
