"""The asyncio adapter over paho: MQTT 5 on Mosquitto, 3.1.1 on amqtt (configured), reconnects."""

from __future__ import annotations

import asyncio
import random

import pytest

from amqtt.broker import Broker

from common.mqtt.client import MqttClient, MqttError, Settings, Subscription, backoff_delay
from protocol import topics
from sandbox.mosquitto import MosquittoProcess
from sandbox.procs import free_port
from tests.mqtt.helpers import await_until


def test_backoff_grows_with_jitter_and_a_cap():
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.2, 30, rng) for a in range(12)]
    assert 0.1 <= delays[0] <= 0.2 and 12.8 <= delays[7] <= 25.6
    assert all(15 <= d <= 30 for d in delays[9:])
    assert len({round(backoff_delay(3, 0.2, 30, random.Random(s)), 6) for s in range(20)}) > 15


def test_topics_round_trip_and_router_filters():
    t = topics.topic("city-office", "robot-1", "signal/up")
    assert topics.parse(t) == topics.Topic("city-office", "robot-1", "signal/up")
    assert topics.parse("baton/v1/x/y/other") is None
    assert topics.parse("baton/v1/+/y/events") is None
    shared = topics.router_filters(shared=True)
    assert "$share/routers/baton/v1/+/+/events" in shared
    assert "baton/v1/+/+/state" in shared  # retained presence: never a shared subscription


async def _roundtrip(port: int, protocol: str = "5") -> tuple[str, bytes]:
    got: list = []
    a = MqttClient(Settings("127.0.0.1", port, client_id="a", protocol=protocol),
                   on_message=got.append, subscriptions=[Subscription("t/#")])
    b = MqttClient(Settings("127.0.0.1", port, client_id="b", protocol=protocol),
                   on_message=lambda m: None)
    async with a, b:
        await a.wait_connected(10)
        await b.wait_connected(10)
        assert await b.publish_wait("t/x", b"hello") == 0
        await await_until(lambda: got, 5, "the message")
        return a.protocol, got[0].payload


async def test_mqtt5_on_mosquitto(tmp_path):
    with MosquittoProcess(tmp_path) as m:
        assert await _roundtrip(m.port) == ("5", b"hello")


async def _amqtt(port: int) -> Broker:
    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                     "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                                 {"allow_anonymous": True}}})
    await broker.start()
    return broker


async def test_311_on_amqtt_when_configured():
    port = free_port()
    broker = await _amqtt(port)
    try:
        assert await _roundtrip(port, "3.1.1") == ("3.1.1", b"hello")
    finally:
        await broker.shutdown()


async def test_the_version_is_configured_never_probed():
    """MQTT 5 against a 3.1.1-only broker: no silent fall-back, a refusal (or a timeout)
    whose message names the setting to change; an unknown version is refused at once."""
    with pytest.raises(MqttError, match="use 5 or 3.1.1"):
        MqttClient(Settings("127.0.0.1", 1, protocol="auto"), on_message=lambda m: None)
    port = free_port()
    broker = await _amqtt(port)
    try:
        c = MqttClient(Settings("127.0.0.1", port, client_id="v5", connect_timeout_s=3,
                                backoff_max_s=1), on_message=lambda m: None)
        async with c:
            await await_until(lambda: c.last_error is not None, 15, "the refusal")
            assert not c.connected.is_set() and c.protocol == "5"
            assert "MQTT 5" in c.last_error and "BATON_MQTT_PROTOCOL" in c.last_error \
                or "speaks MQTT 5" in c.last_error, c.last_error
    finally:
        await broker.shutdown()


async def test_reconnects_and_resumes_its_session_after_a_broker_restart(tmp_path):
    got: list = []
    m = MosquittoProcess(tmp_path)
    m.start()
    try:
        c = MqttClient(Settings("127.0.0.1", m.port, client_id="keeper", backoff_max_s=1),
                       on_message=got.append, subscriptions=[Subscription("t/#")])
        async with c:
            await c.wait_connected(10)
            await asyncio.sleep(1.2)  # let the broker autosave the session
            m.stop()
            await await_until(lambda: not c.connected.is_set(), 5, "the loss")
            await asyncio.to_thread(m.start)
            await c.wait_connected(10)
            assert c.connects == 2 and c.connection.session_present
    finally:
        m.stop()


def test_the_paho_internals_our_client_overrides_still_exist():
    # common/mqtt/client.py's _Client overrides these (buffered reads, no topic matcher
    # walk per message): a paho upgrade that renames them must fail here, not in production.
    import paho.mqtt.client as paho

    for name in ("_sock_recv", "_sock_close", "_handle_on_message", "_easy_log"):
        assert callable(getattr(paho.Client, name, None)), name
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    assert c._on_message_filtered._root._children == {}
    assert hasattr(c, "_in_callback_mutex") and hasattr(c, "_userdata")


async def test_many_messages_in_one_read_are_all_delivered_in_order(tmp_path):
    # Small messages published back to back arrive in a few TCP reads; each read feeds
    # several packets from the client's buffer, and none waits for the next read.
    with MosquittoProcess(tmp_path) as m:
        got: list = []
        a = MqttClient(Settings("127.0.0.1", m.port, client_id="a"),
                       on_message=got.append, subscriptions=[Subscription("t/#")])
        b = MqttClient(Settings("127.0.0.1", m.port, client_id="b"), on_message=lambda m: None)
        async with a, b:
            await a.wait_connected(10)
            await b.wait_connected(10)
            for i in range(2000):
                b.publish("t/x", str(i).encode() * (1 + i % 50), qos=1)
            await await_until(lambda: len(got) == 2000, 20, "every message")
            assert [g.payload for g in got] == [str(i).encode() * (1 + i % 50)
                                                for i in range(2000)]
