"""Signaling over the edge's MQTT connection: ``Signaler`` for ``MediaPeer``.

The router relays a worker's signals to ``baton/v1/{site}/{device}/signal/down`` (envelopes in
``protocol.signaling``). A ``SignalLink`` per device takes those messages (from
``EdgeSync.on_signal``, or any ``MqttClient``'s ``on_message``), and hands out one
``MqttSignaler`` per signaling session: the router starts a session (with the ICE servers
to use) before its first signal, and a new session of a case replaces the old one, whose
signaler is closed (its peer sees ``SignalingClosed``).

    link = SignalLink.attach(sync)                 # sync: edge.sync.EdgeSync
    signaler = await link.next_session()           # a worker started a session
    peer = MediaPeer(signaler, role="answer", ice_servers=signaler.ice_servers, ...)
    await peer.start()

Messages of an unknown session, malformed or oversized ones are logged, counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import ValidationError

from common.mqtt.client import Message, MqttClient, NotConnected
from edge.webrtc.signaling import SignalingClosed, SignalingError
from protocol import topics
from protocol.signaling import MAX_SIGNAL_BYTES, SIGNAL, SignalDown, SignalUp, dump, signal_dict

log = logging.getLogger("baton.edge.signal")


class MqttSignaler:
    """One signaling session of one case. ``send`` publishes to ``…/signal/up`` (QoS 1)."""

    _CLOSED = object()

    def __init__(self, link: SignalLink, case_id: str, session: str, worker: str,
                 ice_servers: list[dict[str, Any]]):
        self._link = link
        self.case_id, self.session, self.worker = case_id, session, worker
        self.ice_servers = ice_servers
        self._inbox: asyncio.Queue = asyncio.Queue(256)
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise SignalingClosed(f"signaling session {self.session} is closed")
        try:
            sig = SIGNAL.validate_python(message)
        except ValidationError as exc:
            raise SignalingError(f"not a signaling message: {exc.errors()[0]['msg']}") from None
        up = SignalUp(case_id=self.case_id, session=self.session, origin=self._link.device,
                      ts=time.time(), signal=sig)
        payload = dump(up)
        if len(payload) > MAX_SIGNAL_BYTES:
            raise SignalingError(f"signal of {len(payload)} bytes is over the "
                                 f"{MAX_SIGNAL_BYTES}-byte limit")
        try:
            self._link.client.publish(self._link.up_topic, payload, qos=1)
        except NotConnected as exc:
            raise SignalingError(f"cannot signal: {exc}") from None

    async def receive(self) -> dict[str, Any]:
        if self.closed and self._inbox.empty():
            raise SignalingClosed(f"signaling session {self.session} is closed")
        item = await self._inbox.get()
        if item is self._CLOSED:
            self.closed = True
            raise SignalingClosed(f"signaling session {self.session} ended")
        return item

    def _deliver(self, message: dict[str, Any]) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self._link.stats["dropped"] += 1

    async def close(self) -> None:
        self._end()

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            self._link._forget(self)
            while True:  # make room: the end must get through
                try:
                    self._inbox.put_nowait(self._CLOSED)
                    return
                except asyncio.QueueFull:
                    self._inbox.get_nowait()


class SignalLink:
    """The device's end of the relay: demultiplexes ``…/signal/down`` by case and session."""

    def __init__(self, client: MqttClient, site: str, device: str):
        self.client, self.site, self.device = client, site, device
        self.up_topic = topics.topic(site, device, "signal/up")
        self._down_topic = topics.topic(site, device, "signal/down")
        self._by_case: dict[str, MqttSignaler] = {}
        self._sessions: asyncio.Queue[MqttSignaler] = asyncio.Queue(64)
        self.stats: dict[str, int] = {"sessions": 0, "signals": 0, "bad": 0, "stale": 0,
                                      "dropped": 0}

    @classmethod
    def attach(cls, sync) -> SignalLink:
        """Over an ``edge.sync.EdgeSync`` (which already subscribes to ``signal/down``)."""
        link = cls(sync.client, sync.settings.site, sync.settings.device)
        sync.on_signal = link.feed
        return link

    async def next_session(self, timeout: float | None = None) -> MqttSignaler:
        return await asyncio.wait_for(self._sessions.get(), timeout)

    def signaler(self, case_id: str) -> MqttSignaler | None:
        return self._by_case.get(case_id)

    def feed(self, msg: Message) -> None:
        """A message from the broker (runs in the loop; never raises)."""
        if msg.topic != self._down_topic:
            return
        if len(msg.payload) > MAX_SIGNAL_BYTES:
            return self._bad(msg, f"{len(msg.payload)} bytes, over {MAX_SIGNAL_BYTES}")
        try:
            down = SignalDown.model_validate_json(msg.payload)
        except ValidationError as exc:
            return self._bad(msg, str(exc.errors()[:1])[:200])
        current = self._by_case.get(down.case_id)
        if down.signal is None:  # a new session
            if current is not None:
                current._end()
            s = MqttSignaler(self, down.case_id, down.session, down.worker,
                             [i.model_dump(exclude_none=True) for i in down.ice_servers or []])
            self._by_case[down.case_id] = s
            self.stats["sessions"] += 1
            try:
                self._sessions.put_nowait(s)
            except asyncio.QueueFull:
                self.stats["dropped"] += 1
            return
        if current is None or current.session != down.session:
            self.stats["stale"] += 1
            log.info("signal for an unknown session dropped",
                     extra={"case_id": down.case_id, "session": down.session})
            return
        self.stats["signals"] += 1
        current._deliver(signal_dict(down.signal))

    def _bad(self, msg: Message, why: str) -> None:
        self.stats["bad"] += 1
        log.warning("bad signal from the router", extra={"topic": msg.topic, "error": why})

    def _forget(self, s: MqttSignaler) -> None:
        if self._by_case.get(s.case_id) is s:
            del self._by_case[s.case_id]

    async def aclose(self) -> None:
        for s in list(self._by_case.values()):
            s._end()
