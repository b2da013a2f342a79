"""The broker's ACL and the router's own checks: what one device's credentials can do."""

from __future__ import annotations

import asyncio
import json
import time

from common.mqtt.client import Message, MqttClient, Settings, Subscription
from protocol import topics
from tests.mqtt.helpers import LAB, MqttRouter, await_until, edge, stored_events, token


def _client(port: int, device: str, password: str | None = None,
            subs: list[str] | None = None, got: list | None = None) -> MqttClient:
    return MqttClient(
        Settings("127.0.0.1", port, client_id=f"probe-{device}-{time.monotonic_ns()}",
                 username=device, password=password or token(device), connect_timeout_s=3,
                 backoff_max_s=1),
        on_message=(got.append if got is not None else (lambda m: None)),
        subscriptions=[Subscription(f) for f in subs or []])


def _event(origin: str, seq: int, case: str) -> bytes:
    return json.dumps({"event_id": f"x-{origin}-{seq}", "case_id": case, "origin": origin,
                       "seq": seq, "ts": time.time(), "type": "opened",
                       "payload": {"site": LAB, "device": origin, "language": "en"}}).encode()


async def test_a_device_cannot_touch_another_devices_topics(tmp_path, cfg_dir, broker,
                                                            routers):
    router = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(router)
    http = router.start()
    mine, theirs = "lab-00", "lab-01"
    t = {k: topics.topic(LAB, theirs, k) for k in topics.KINDS}
    spy: list[Message] = []
    # The victim's own edge is connected: it proves commands and case updates do flow.
    async with edge(tmp_path, theirs, broker.port) as victim, \
            _client(broker.port, mine, got=spy,
                    subs=[t["commands"], t["cases"], t["acks"], "baton/v1/#"]) as attacker:
        await attacker.wait_connected(10)
        await victim.client.wait_connected(10)
        # Mosquitto 2.0 grants such subscriptions and checks the ACL on each delivery:
        # what counts is that nothing of the other device's is delivered (below).

        # Publishing as the other device: refused by the broker (MQTT 5 says so in the
        # PUBACK), never reaches the router.
        assert attacker.protocol == "5"
        for kind in ("events", "state", "receipts", "heartbeat"):
            rc = await attacker.publish_wait(t[kind], _event(theirs, 1, "case-forged"))
            assert rc == 135, (kind, rc)  # Not authorized
        # Not even with its own identity inside: the topic decides.
        rc = await attacker.publish_wait(t["events"], _event(mine, 1, "case-forged"))
        assert rc == 135

        # The router sends the victim a command and updates of its case: the victim gets
        # them, the attacker (subscribed to everything it may) gets nothing of theirs.
        r = await asyncio.to_thread(http.post, f"/v1/sync/devices/{theirs}/commands",
                                    json={"type": "display.message", "args": {"text": "hi"}})
        assert r.status_code == 202, r.text
        await victim.emit(f"case-{theirs}", "opened",
                          {"site": LAB, "device": theirs, "language": "en"})
        await await_until(lambda: f"case-{theirs}" in victim.cases
                          and victim.stats["commands"] == 1, 10,
                          "the victim's command and case update")
        await asyncio.sleep(0.5)
        assert [m.topic for m in spy if f"/{theirs}/" in m.topic] == []
        command = (await asyncio.to_thread(http.get, f"/v1/sync/commands/"
                                           f"{r.json()['command_id']}")).json()
        assert command["status"] == "unsupported"  # receipted: no handler on this edge

    stored = stored_events(router.db)
    assert "case-forged" not in json.dumps(stored) and [e for e in stored.get(theirs, [])
                                                        if e[1].startswith("x-")] == []
    dead = (await asyncio.to_thread(http.get, "/v1/sync/dead-letters")).json()["dead_letters"]
    assert dead == []  # the broker stopped it: the router never saw the forgeries


async def test_wrong_password_and_anonymous_are_refused(broker):
    for password in ("not-the-token-000000", ""):
        c = _client(broker.port, "lab-00", password=password or None)
        if not password:
            c.settings.username = None
        async with c:
            await await_until(lambda: c.last_error is not None, 10, "a refusal")
            assert not c.connected.is_set()
            assert "refused" in c.last_error, c.last_error


async def test_router_rejects_an_event_whose_origin_is_not_the_topics_device(
        tmp_path, cfg_dir, broker, routers):
    """Defence in depth: even a publisher the ACL lets through (here the router's own
    account) cannot make one device speak for another."""
    router = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(router)
    http = router.start()
    async with MqttClient(Settings("127.0.0.1", broker.port, client_id="forger",
                                   username="baton-router", password="demo-router-mqtt-0001"),
                          on_message=lambda m: None) as c:
        await c.wait_connected(10)
        await c.publish_wait(topics.topic(LAB, "lab-00", "events"),
                             _event("lab-01", 1, "case-x"))
    dead = await _dead_letters(http, 1)
    assert dead[0]["reason"].startswith("origin_mismatch:"), dead
    assert stored_events(router.db) == {}


async def _dead_letters(http, n: int) -> list[dict]:
    async def enough():
        while True:
            rows = (await asyncio.to_thread(http.get, "/v1/sync/dead-letters")).json()
            if len(rows["dead_letters"]) >= n:
                return rows["dead_letters"]
            await asyncio.sleep(0.1)
    return await asyncio.wait_for(enough(), 10)


def test_password_file_is_hashed_and_acl_lists_each_device(tmp_path, cfg_dir):
    from router.config import load_config
    from router.mqtt.auth import write_auth

    passwd, acl = write_auth(load_config(cfg_dir), tmp_path / "auth")
    text = passwd.read_text()
    assert "lab-00:$7$" in text and "token" not in text  # mosquitto_passwd hashed them
    rules = acl.read_text()
    assert "user lab-00\ntopic write baton/v1/sync-lab/lab-00/events" in rules
    assert "topic read baton/v1/sync-lab/lab-00/commands" in rules
    assert "user baton-router\ntopic readwrite baton/v1/#" in rules


def test_committed_broker_files_match_the_config():
    """config/mosquitto/acl (mounted by docker-compose) is what `baton mqtt-auth` makes from
    config/: regenerate it when sites change. No password file is committed: it would let
    anyone with the repository in (`baton secrets generate` writes one per deployment)."""
    import subprocess

    from router.config import load_config
    from router.mqtt.auth import acl_text
    from tests.mqtt.helpers import REPO

    cfg = load_config(REPO / "config")
    assert (REPO / "config/mosquitto/acl").read_text() == acl_text(cfg)
    tracked = subprocess.run(["git", "ls-files", "config/mosquitto"], cwd=REPO,
                             capture_output=True, text=True).stdout.split()
    assert "config/mosquitto/passwd" not in tracked, tracked
