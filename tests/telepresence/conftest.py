"""Telepresence signaling fixtures: a real Mosquitto (with the generated ACL) on a free port,
a real router child process bridged to it, worker WebSockets and device MQTT links."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect

from common.mqtt.client import Message, MqttClient, Settings, Subscription
from edge.webrtc.mqtt_signaler import SignalLink
from protocol import topics
from tests.mqtt.conftest import broker  # noqa: F401 (fixture, on this package's cfg_dir)
from tests.mqtt.helpers import MqttRouter, fleet_config

ICE = [{"urls": ["stun:stun.example.org:3478"]},
       {"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]
ROUTER_ACCOUNT = ("baton-router", "demo-router-mqtt-0001")


def token(subject: str) -> str:
    return {"supervisor": "demo-supervisor-token-0001"}.get(subject, f"demo-{subject}-token-0001")


@pytest.fixture
def cfg_dir(tmp_path):
    cfg = fleet_config(tmp_path, devices=2)
    (cfg / "telepresence.yaml").write_text(yaml.safe_dump({"ice_servers": ICE}))
    return cfg


@pytest.fixture
def router(tmp_path, cfg_dir, broker):
    r = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    r.http = r.start(timeout=120)  # a loaded 2-core machine can take ~50 s
    yield r
    r.http.close()
    r.kill()


@contextlib.asynccontextmanager
async def worker_socket(router, subject: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://127.0.0.1:{router.port}/v1/ws", max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token(subject)}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["type"] == "hello", hello
        yield ws


async def recv_until(ws, type_: str, timeout: float = 5.0) -> dict:
    async def go():
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == type_:
                return msg
    return await asyncio.wait_for(go(), timeout)


async def no_message(ws, type_: str, window: float = 1.0) -> None:
    with contextlib.suppress(TimeoutError):
        msg = await recv_until(ws, type_, window)
        raise AssertionError(f"unexpected {type_}: {msg}")


@contextlib.asynccontextmanager
async def device_link(port: int, device: str, site: str = "city-office"
                      ) -> AsyncIterator[SignalLink]:
    """The device's own MQTT connection (its credentials, so the ACL applies) and its link."""
    link: SignalLink | None = None
    client = MqttClient(Settings("127.0.0.1", port, client_id=f"baton-edge-{device}",
                                 username=device, password=token(device)),
                        on_message=lambda m: link.feed(m),
                        subscriptions=[Subscription(topics.topic(site, device, "signal/down"))])
    link = SignalLink(client, site, device)
    async with client:
        await client.wait_connected(10)
        yield link
    await link.aclose()


@contextlib.asynccontextmanager
async def spy(port: int, filter_: str = "baton/v1/+/+/signal/down"
              ) -> AsyncIterator[list[Message]]:
    """Every message on ``filter_`` (the router's account reads everything)."""
    got: list[Message] = []
    client = MqttClient(Settings("127.0.0.1", port, client_id="signal-spy",
                                 username=ROUTER_ACCOUNT[0], password=ROUTER_ACCOUNT[1]),
                        on_message=got.append, subscriptions=[Subscription(filter_)])
    async with client:
        await client.wait_connected(10)
        yield got


@contextlib.asynccontextmanager
async def raw_publisher(port: int, user: str, password: str) -> AsyncIterator[MqttClient]:
    client = MqttClient(Settings("127.0.0.1", port, client_id=f"raw-{user}", username=user,
                                 password=password), on_message=lambda m: None)
    async with client:
        await client.wait_connected(10)
        yield client


async def connected_case(router, ws, worker: str, device: str = "robot-1") -> str:
    """Open a video case at ``device``; ``worker`` (on ``ws``) gets the offer and accepts."""
    r = router.http.put(f"/v1/workers/{worker}/presence", json={"presence": "available"},
                        headers={"Authorization": f"Bearer {token(worker)}"})
    assert r.status_code == 200, r.text
    r = router.http.post("/v1/cases", headers={"Authorization": f"Bearer {token(device)}"},
                         json={"site": "city-office", "device": device, "language": "ja",
                               "channel": "video", "skills": {"general": 3}})
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    offer = await recv_until(ws, "offer")
    assert offer["case"]["id"] == case_id
    await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer"]["offer_id"]}))
    accepted = await recv_until(ws, "accepted")
    assert accepted["case"]["state"] == "connected"
    return case_id
