"""Hypothesis properties of device intake (docs/protocol.md §8), bounded to stay fast:

- applying a device's events in any interleaving of duplicates, gaps and replays (then the
  resend the protocol asks for) converges to the in-order state: the same stored log, the
  same case;
- random bytes and random valid-looking events from a device, over MQTT (real Mosquitto, the
  generated ACL, the app's bridge) and over REST, never crash the bridge, never answer 5xx
  and never block an honest device beside it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.mqtt.client import MqttClient, Settings, Subscription
from protocol import topics
from protocol.models import EVENT_TYPES
from router.casestate import apply
from router.config import load_config
from router.service.core import CoreError, RouterCore
from router.store import open_store
from tests.mqtt.helpers import REPO
from tests.service.conftest import ManualClock, auth, token

SITE, DEVICE, HOSTILE = "city-office", "kiosk-1", "robot-1"
CFG = load_config(REPO / "config")
FAST = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def device_events(n: int, now: float, device: str = DEVICE, case: str = "case-p") -> list:
    from router.service.core import EVENT

    out = [EVENT.validate_python({
        "event_id": f"{device}-1", "case_id": case, "origin": device, "seq": 1, "ts": now,
        "type": "opened", "payload": {"site": SITE, "device": device, "language": "en"}})]
    for seq in range(2, n + 1):
        kind = seq % 3
        payload, type_ = (
            ({"speaker": "resident", "language": "en", "text": f"turn {seq}"}, "turn")
            if kind == 0 else
            ({"name": "confidence", "value": seq / 100}, "signal") if kind == 1 else
            ({"tool": "lookup", "args": {"n": seq}, "result": [seq]}, "action"))
        out.append(EVENT.validate_python({
            "event_id": f"{device}-{seq}", "case_id": case, "origin": device, "seq": seq,
            "ts": now + seq, "type": type_, "payload": payload}))
    return out


async def _deliver(deliveries: list[int], events: list) -> tuple[list, dict, dict]:
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite+aiosqlite:///{Path(tmp) / 'r.db'}")
        core = RouterCore(CFG, store, clock=clock, autotick=False)
        await core.start()

        async def send(event):
            try:
                result = await core.take_external(event, device=DEVICE, site=SITE,
                                                  may_open=True, source="test", raw="")
                assert result.status != "refused", result
            except CoreError as exc:
                assert exc.reason == "seq_gap"  # the edge is asked to resend

        try:
            for i in deliveries:
                await send(events[i])
            # The protocol's recovery: the edge replays from the acked high-water mark.
            for event in events[core.high_water_of(DEVICE):]:
                await send(event)
            # take_external returns once its unit is durable: the store has it all.
            log = [(e.seq, e.event_id) for e in await store.case_events("case-p")]
            case = (await store.get_case("case-p")).model_dump(mode="json")
            return log, case, await store.high_waters()
        finally:
            await core.aclose()
            await store.close()


@FAST
@given(st.data())
def test_any_interleaving_converges_to_the_in_order_state(data):
    n = data.draw(st.integers(2, 12), label="events")
    events = device_events(n, ManualClock().now())
    deliveries = data.draw(st.lists(st.integers(0, n - 1), max_size=3 * n), label="order")
    log, case, high = asyncio.run(_deliver(deliveries, events))
    want = None
    for e in events:
        want = apply(want, e)
    assert log == [(e.seq, e.event_id) for e in events]
    assert case == want.model_dump(mode="json")
    assert high[DEVICE] == n


# --- hostile input beside an honest device ----------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=30)
_looks_like_an_event = st.fixed_dictionaries({
    "event_id": st.one_of(st.text(max_size=90), st.sampled_from([f"{DEVICE}-1", "x-1"])),
    "case_id": st.one_of(st.sampled_from(["case-p", "case-h", "c"]), st.text(max_size=70)),
    "origin": st.sampled_from([HOSTILE, DEVICE, "ghost", ""]),
    "seq": st.one_of(st.integers(-3, 40), st.text(max_size=3), st.booleans(), st.floats(),
                     st.just(2**64)),
    "ts": st.one_of(st.floats(), st.integers(-10, 2**64), st.text(max_size=5),
                    st.just(ManualClock().now())),
    "type": st.sampled_from([*EVENT_TYPES, "bogus"]),
    "payload": _json,
})
HOSTILE_INPUT = st.lists(st.one_of(
    st.binary(max_size=300),
    _looks_like_an_event.map(lambda e: json.dumps(e, allow_nan=True).encode()),
), min_size=1, max_size=8)


def _client(port: int, device: str, on_message) -> MqttClient:
    return MqttClient(Settings("127.0.0.1", port, client_id=f"prop-{device}", username=device,
                               password=token(device)),
                      on_message=on_message,
                      subscriptions=[Subscription(topics.topic(SITE, device, "acks"), 1)])


def test_random_input_over_mqtt_never_crashes_the_bridge_nor_blocks_an_honest_device(
        router, broker):
    honest_events = device_events(400, router.clock.now())
    acked = {"hw": 0}

    def on_ack(msg):
        if msg.payload:
            acked["hw"] = max(acked["hw"], json.loads(msg.payload)["high_water"])

    hostile = _client(broker.port, HOSTILE, lambda m: None)
    honest = _client(broker.port, DEVICE, on_ack)
    router.call(hostile.start)
    router.call(honest.start)
    bridge = router.client.app.state.bridge
    sent = {"n": 0}

    async def one_round(payloads: list[bytes]) -> None:
        await hostile.wait_connected(10)
        await honest.wait_connected(10)
        for raw in payloads:
            await hostile.publish_wait(topics.topic(SITE, HOSTILE, "events"), raw)
        event = honest_events[sent["n"]]
        sent["n"] += 1
        await honest.publish_wait(topics.topic(SITE, DEVICE, "events"),
                                  event.model_dump_json().encode())
        deadline = time.monotonic() + 10
        while acked["hw"] < event.seq:
            assert time.monotonic() < deadline, f"honest seq {event.seq} not acked"
            await asyncio.sleep(0.01)

    @FAST
    @given(HOSTILE_INPUT)
    def run(payloads):
        router.call(one_round, payloads)
        assert bridge.tasks.failures == 0, f"a bridge task failed: {bridge.tasks.last_failure!r}"

    try:
        run()
    finally:
        router.call(hostile.aclose)
        router.call(honest.aclose)
    assert router.core.rebuilds == 0
    assert router.client.get("/v1/sync", headers=auth("supervisor")).json()["connected"]


def test_random_input_over_rest_never_answers_5xx_nor_blocks_an_honest_device(router):
    honest_events = device_events(400, router.clock.now(), case="case-r")
    sent = {"n": 0}

    @FAST
    @given(HOSTILE_INPUT)
    def run(payloads):
        for raw in payloads:
            r = router.client.post("/v1/events", content=raw, headers={
                **auth(HOSTILE), "Content-Type": "application/json"})
            assert r.status_code < 500, r.text
        # The honest device opens its case over REST, then sends events.
        if sent["n"] == 0:
            r = router.client.post("/v1/cases", json={
                "case_id": "case-r", "site": SITE, "device": DEVICE, "language": "en",
                "escalate": False}, headers=auth(DEVICE))
            assert r.status_code == 201, r.text
            sent["n"] = 1
        event = honest_events[sent["n"]].model_copy(update={"seq": sent["n"]})
        sent["n"] += 1
        r = router.client.post("/v1/events", content=event.model_dump_json().encode(),
                               headers={**auth(DEVICE), "Content-Type": "application/json"})
        assert r.json() == {"status": "applied", "seq": event.seq}, r.text

    run()
    assert router.core.rebuilds == 0
