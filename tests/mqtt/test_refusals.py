"""The refusal rule over MQTT (docs/protocol.md §8), through a real Mosquitto with the
generated ACL and a real router process: every refused event is dead-lettered with its
reason and consumes its seq, a lower seq with other content is a seq_conflict, nothing makes
the router rebuild its state; devices in the routers' shared group take nothing away; gap
storms raise an alert."""

from __future__ import annotations

import asyncio
import json
import time

from common.mqtt.client import MqttClient, Settings, Subscription
from protocol import topics
from tests.mqtt.helpers import LAB, await_until, stored_events, token


class Device:
    """A device with its own credentials: publishes raw payloads, reads its acks."""

    def __init__(self, port: int, device: str, client_id: str | None = None,
                 protocol: str = "5", session_expiry_s: int = 0, extra_subs=()):
        self.device, self.acks = device, []
        subs = [Subscription(topics.topic(LAB, device, "acks"), 1), *extra_subs]
        self.client = MqttClient(
            Settings("127.0.0.1", port, client_id=client_id or f"dev-{device}",
                     username=device, password=token(device), protocol=protocol,
                     session_expiry_s=session_expiry_s),
            on_message=self._on_message, subscriptions=subs)
        self.received: list[str] = []

    def _on_message(self, msg) -> None:
        if msg.topic.endswith("/acks") and msg.payload:
            self.acks.append(json.loads(msg.payload))
        else:
            self.received.append(msg.topic)

    def high_water(self) -> int:
        return max((a["high_water"] for a in self.acks), default=0)

    async def send(self, payload: bytes | dict) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert await self.client.publish_wait(topics.topic(LAB, self.device, "events"),
                                              raw) == 0

    async def __aenter__(self):
        await self.client.start()
        await self.client.wait_connected(10)
        return self

    async def __aexit__(self, *exc):
        await self.client.aclose()


def event(device: str, seq: int, type_: str = "turn", case: str | None = None,
          event_id: str | None = None, ts: float | None = None, **payload) -> dict:
    case = case or f"case-{device}"
    if type_ == "opened":
        body = {"site": LAB, "device": device, "language": "en", **payload}
    elif type_ == "turn":
        body = {"speaker": "resident", "language": "en", "text": f"turn {seq}", **payload}
    else:
        body = payload
    return {"event_id": event_id or f"{device}-{seq}", "case_id": case, "origin": device,
            "seq": seq, "ts": time.time() if ts is None else ts, "type": type_,
            "payload": body}


def nested(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


async def test_every_refusal_consumes_its_seq_and_leaves_a_reason(router, broker):
    dev = "lab-00"
    opened = event(dev, 1, "opened")
    nan_ts = json.dumps(event(dev, 4, ts=12345.5)).replace('"ts": 12345.5', '"ts": NaN')
    cases = [  # (seq, payload, class of the dead letter)
        (2, event(dev, 2, "connect", worker_id="aiko"), "not_allowed"),
        (3, event(dev, 3, "note", author="aiko", text="hi"), "not_allowed"),
        (4, nan_ts.encode(), "schema"),
        (5, event(dev, 5, ts=float("-inf")), "schema"),
        (6, event(dev, 6, event_id=f"{dev}-1"), "event_id_reused"),
        (7, event(dev, 7, ts=time.time() + 3600), "clock_skew"),
        (8, event(dev, 8, ts=1000.0), "too_old"),
        (9, event(dev, 9, ts=time.time() - 3600), "before_case"),
        (10, json.dumps(event(dev, 10, "action", tool="x", args={})).replace(
            '"args": {}', f'"args": {nested(600)}').encode(), "schema"),
        (11, json.dumps(event(dev, 11, "action", tool="x", args={})).replace(
            '"args": {}', f'"args": {nested(12)}').encode(), "schema"),
        (12, json.dumps(event(dev, 12, "turn", text="a\udcffb")).encode(), "malformed_json"),
    ]
    async with Device(broker.port, dev) as d:
        await d.send(opened)
        await await_until(lambda: d.high_water() >= 1, 10, "seq 1 acked")
        for _, payload, _ in cases:
            await d.send(payload)
        # Not events at all (no integer seq): dead-lettered, nothing consumed.
        await d.send(json.dumps({**event(dev, 13), "seq": "13"}).encode())
        await d.send(json.dumps({**event(dev, 13), "seq": True}).encode())
        await d.send(b"\xff\x00garbage")
        await d.send(event(dev, 13))
        await await_until(lambda: d.high_water() >= 13, 15, "every seq acked")
        # A lower seq with other content: acked as before, dead-lettered seq_conflict.
        await d.send(event(dev, 13, event_id="other-13", text="something else"))
        await d.send(event(dev, 2, event_id="other-2"))  # over a refused seq
        await d.send(event(dev, 13))  # a plain copy: a duplicate
        await asyncio.sleep(1.0)

    assert stored_events(router.db)[dev] == [(1, f"{dev}-1"), (13, f"{dev}-13")]
    letters = router.http.get("/v1/sync/dead-letters?limit=100").json()["dead_letters"]
    mine = [r for r in letters if r["source"].startswith(f"mqtt:baton/v1/{LAB}/{dev}/")]
    classes = sorted(r["reason"].split(":")[0] for r in mine)
    want = sorted([c for _, _, c in cases] + ["schema", "schema", "malformed_json",
                                               "seq_conflict", "seq_conflict"])
    assert classes == want, [r["reason"][:120] for r in mine]
    for r in mine:
        assert len(r["reason"].split(":", 1)[1].strip()) > 10, r  # says what is wrong
    assert d.high_water() == 13
    assert router.http.get("/v1/stats").json()["state_rebuilds"] == 0
    assert "rebuilding state" not in router.log_text()


async def test_a_device_in_the_routers_shared_group_takes_nothing(router, broker):
    """Mosquitto 2.0.x grants a device a $share/… subscription whatever the ACL says (its
    ACL file does not check SUBSCRIBE) and hands it a share of the group's messages, which
    the ACL then drops. The router uses no shared subscription, so such a device (even
    one with a persistent session that went away) takes no event from anyone."""
    hostile, honest = "lab-01", "lab-02"
    share = f"$share/routers/{topics.PREFIX}/+/+/events"
    spy = Device(broker.port, hostile, client_id="hostile-share", protocol="5",
                 session_expiry_s=3600,
                 extra_subs=[Subscription(share, 1),
                             Subscription(f"{topics.PREFIX}/+/+/events", 1)])
    async with spy:
        pass  # subscribed with a persistent session, then gone
    async with Device(broker.port, hostile, client_id="hostile-share-2", protocol="5",
                      extra_subs=[Subscription(share, 1)]) as live, \
            Device(broker.port, honest) as d:
        # What Mosquitto 2.0.11 does (FACTS.md): the shared subscription is granted.
        assert live.client.connection.granted[share] == 1
        await d.send(event(honest, 1, "opened"))
        for seq in range(2, 41):
            await d.send(event(honest, seq))
        await await_until(lambda: d.high_water() >= 40, 20, "all 40 events acked")
        assert live.received == []  # the ACL drops what the broker routes to it
    assert [s for s, _ in stored_events(router.db)[honest]] == list(range(1, 41))
    status = router.http.get("/v1/sync").json()
    assert status["counters"].get("gap", 0) == 0
    assert status["counters"].get("resend_requests", 0) == 0


async def test_gap_storm_of_one_device_raises_an_alert(router, broker):
    dev = "lab-03"
    async with Device(broker.port, dev) as d:
        await d.send(event(dev, 1, "opened"))
        await await_until(lambda: d.high_water() >= 1, 10, "seq 1 acked")
        for k in range(8):  # always one ahead of what the router holds
            await d.send(event(dev, 3 + k))
            await asyncio.sleep(2.2)  # one resend request per hold period
            if any(a["kind"] == "device_resend_storm" for a in
                   router.http.get("/v1/alerts").json()["alerts"]):
                break
    alerts = router.http.get("/v1/alerts?kind=device_resend_storm").json()["alerts"]
    assert [a["device"] for a in alerts] == [dev]
    assert "shared subscription" in alerts[0]["message"]
