"""The router bridge: bad input is dead-lettered by class and never stops it; commands are
durable and run once; presence, heartbeats and case updates reach the right place."""

from __future__ import annotations

import asyncio
import json
import time

from common.mqtt.client import MqttClient, Settings
from protocol import topics
from tests.mqtt.helpers import LAB, await_until, edge, stored_events, token


def _event(origin: str, seq: int, case: str, type_: str = "opened", **payload) -> dict:
    body = {"site": LAB, "device": origin, "language": "en"} if type_ == "opened" else \
        {"speaker": "resident", "language": "en", "text": "hello", **payload}
    return {"event_id": f"e-{origin}-{seq}", "case_id": case, "origin": origin, "seq": seq,
            "ts": time.time(), "type": type_, "payload": body}


def _publisher(port: int, user: str, password: str) -> MqttClient:
    return MqttClient(Settings("127.0.0.1", port, client_id=f"pub-{user}", username=user,
                               password=password), on_message=lambda m: None)


def _get(router, path: str) -> dict:
    return router.http.get(path).json()


async def test_each_class_of_bad_input_is_dead_lettered_and_the_bridge_keeps_going(
        router, broker):
    dev = "lab-00"
    events = topics.topic(LAB, dev, "events")
    far = _event(dev, 50_000, "case-far")
    big = _event(dev, 1, "case-big", "turn")
    big["payload"]["text"] = "x" * 3000
    big = json.dumps(big) + " " * (70 * 1024)  # valid JSON, over the 64 KiB limit
    cases = [  # (class, topic, payload, account)
        ("malformed_json", events, b'{"event_id": "half', dev),
        ("schema", events, json.dumps({"event_id": "s", "type": "turn"}).encode(), dev),
        ("schema", topics.topic(LAB, dev, "state"), b'{"status": "sleepy"}', dev),
        # Names seq 1 of the device: refused, and seq 1 consumed (docs/protocol.md §8).
        ("oversized", events, big.encode(), dev),
        ("unknown_device", topics.topic(LAB, "ghost-1", "events"),
         json.dumps(_event("ghost-1", 1, "case-g")).encode(), "baton-router"),
        ("unknown_device", topics.topic("city-office", dev, "events"),
         json.dumps(_event(dev, 1, "case-w")).encode(), "baton-router"),
        ("seq_far_ahead", events, json.dumps(far).encode(), dev),
        ("origin_mismatch", events, json.dumps(_event("lab-01", 1, "case-o")).encode(), dev),
        # Well-formed but refused (a turn on a case that does not exist): dead-lettered,
        # and its seq is consumed so the device's next event is not blocked.
        ("not_allowed", events, json.dumps(_event(dev, 2, "case-none", "turn")).encode(), dev),
        # A device speaking for a person (as REST /v1/events refuses too).
        ("not_allowed", events, json.dumps(_event(dev, 3, "case-none", "turn", speaker="human",
                                                  worker_id="aiko")).encode(), dev),
    ]
    clients = {dev: _publisher(broker.port, dev, token(dev)),
               "baton-router": _publisher(broker.port, "baton-router", "demo-router-mqtt-0001")}
    async with clients[dev], clients["baton-router"]:
        for c in clients.values():
            await c.wait_connected(10)
        for _, topic, payload, account in cases:
            assert await clients[account].publish_wait(topic, payload) == 0
        # Still running: seq 4 of the device applies (seqs 1-3 were consumed by refusals).
        await clients[dev].publish_wait(events, json.dumps(_event(dev, 4, "case-ok")).encode())
        await _until(lambda: stored_events(router.db).get(dev), 10, "the good event")

    assert stored_events(router.db) == {dev: [(4, f"e-{dev}-4")]}
    want: dict[str, int] = {}
    for cls, *_ in cases:
        want[cls] = want.get(cls, 0) + 1
    status = await _until(lambda: (s := _get(router, "/v1/sync"))["dead_letters"] == want
                          and s, 10, "the counters")
    assert status["counters"]["applied"] == 1
    rows = await _until(lambda: len(r := _get(router, "/v1/sync/dead-letters?limit=50")[
        "dead_letters"]) >= len(cases) and r, 10, "the dead letters stored (in batches)")
    assert sorted(r["reason"].split(":")[0] for r in rows) == sorted(c for c, *_ in cases)
    oversized = next(r for r in rows if r["reason"].startswith("oversized"))
    assert oversized["raw_size"] > 64 * 1024 and len(oversized["raw"]) <= 64 * 1024
    assert all(r["source"].startswith("mqtt:baton/v1/") for r in rows)


async def _until(fn, timeout, what):
    return await await_until(lambda: fn(), timeout, what)


async def test_commands_are_durable_and_run_once(tmp_path, router, broker):
    dev = "lab-02"
    ran = []

    async def handler(cmd):
        ran.append(cmd.command_id)
        return "done", f"showed {cmd.args['text']}"

    # Sent while the device is away: the command waits (stored, and in the broker).
    r = router.http.post(f"/v1/sync/devices/{dev}/commands",
                         json={"type": "display.message", "args": {"text": "hello"}})
    assert r.status_code == 202, r.text
    cid = r.json()["command_id"]
    async with edge(tmp_path, dev, broker.port) as sync:
        sync.on_command = handler
        await await_until(lambda: ran, 15, "the command to run")
        await await_until(lambda: router.http.get(f"/v1/sync/commands/{cid}").json()
                          ["status"] == "done", 10, "the receipt")
        # Delivered again (e.g. the receipt was lost): answered from the record, not rerun.
        from protocol.messages import Command
        row = router.http.get(f"/v1/sync/commands/{cid}").json()
        sync._commands.put_nowait(Command(command_id=cid, type=row["type"], args=row["args"],
                                          ts=row["created_at"]))
        await await_until(lambda: sync.stats["duplicate_commands"] == 1, 5, "the duplicate")
    assert ran == [cid]
    row = router.http.get(f"/v1/sync/commands/{cid}").json()
    assert row["detail"] == "showed hello" and row["attempts"] >= 1


async def test_presence_heartbeats_and_alerts(tmp_path, router, broker):
    dev = "lab-03"
    alerts = lambda: [a for a in router.http.get("/v1/alerts").json()["alerts"]  # noqa: E731
                      if a.get("device") == dev]
    device = lambda: next((d for d in router.http.get("/v1/sync").json()["devices"]  # noqa: E731
                           if d["device"] == dev), {})
    telemetry = {"battery": {"percent": 9.0, "charging": False}, "docked": False,
                 "network": {"type": "wifi", "rssi_dbm": -61.0}}
    async with edge(tmp_path, dev, broker.port) as sync:
        sync.telemetry = lambda: telemetry
        await await_until(lambda: device().get("status") == "online", 10, "online")
        await await_until(lambda: device().get("telemetry", {}).get("battery"), 10, "telemetry")
        assert device()["telemetry"]["network"]["rssi_dbm"] == -61.0
        await await_until(lambda: [a for a in alerts() if a["kind"] == "device_battery_low"],
                          10, "a low-battery alert")
        # The process dies without a word: the broker publishes its last will.
        sync.client._drop_client()
        for t in sync.tasks.tasks:
            t.cancel()
        await await_until(lambda: device().get("status") == "offline", 15, "offline")
        await await_until(lambda: [a for a in alerts() if a["kind"] == "device_offline"], 5,
                          "the offline alert")
        await asyncio.sleep(0.5)
        assert [a["kind"] for a in alerts()].count("device_offline") == 1
        sync.client._closing = True
    # Back: online again, and a device_online alert clears the floor's worry.
    async with edge(tmp_path, dev, broker.port):
        await await_until(lambda: device().get("status") == "online", 10, "online again")
        await await_until(lambda: [a for a in alerts() if a["kind"] == "device_online"], 10,
                          "back-online alert")
    # A clean shutdown says offline too (retained state), without an alert storm.
    await await_until(lambda: device().get("status") == "offline", 10, "offline after close")


async def test_case_updates_reach_the_device(tmp_path, router, broker):
    dev = "lab-04"
    seen = []
    async with edge(tmp_path, dev, broker.port) as sync:
        sync.on_case = seen.append
        await sync.emit(f"case-{dev}", "opened", {"site": LAB, "device": dev,
                                                  "language": "en"})
        await await_until(lambda: seen, 10, "the first case update")
        assert seen[0].case_id == f"case-{dev}" and seen[0].state == "ai_active"
        r = router.http.post(f"/v1/cases/case-{dev}/close",
                             json={"status": "resolved"})
        assert r.status_code == 200, r.text
        await await_until(lambda: sync.cases[f"case-{dev}"].state == "resolved", 10,
                          "the resolved update")
