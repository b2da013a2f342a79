"""Zero loss through faults: each test streams ≥ 1,000 events from ≥ 10 devices through a
real Mosquitto into a real router process, breaks something mid-stream, and then checks
that the router's store holds exactly the events sent, in per-origin order, without
duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys

import pytest

from tests.mqtt.helpers import (
    REPO,
    BlackholeProxy,
    MqttRouter,
    assert_exactly_sent,
    await_until,
    edge,
    emit_until,
    lab_devices,
    stored_events,
)

DEVICES = 10
EVENTS = 100  # per device: 1,000 in all


def _done(db, totals) -> bool:
    stored = stored_events(db)
    return all(len(stored.get(d, [])) >= n for d, n in totals.items())


async def _stream(tmp_path, broker, devices, rate, during=None, ports=None):
    """Run one edge per device emitting EVENTS at ``rate``; ``during(edges)`` runs
    alongside. Returns when every edge has its events acknowledged."""
    async with asyncio.timeout(150):
        edges = {}
        async with contextlib.AsyncExitStack() as stack:
            for d in devices:
                port = (ports or {}).get(d, broker.port)
                edges[d] = await stack.enter_async_context(edge(tmp_path, d, port))
            tasks = [asyncio.create_task(emit_until(s, d, EVENTS, rate)) for d, s in edges.items()]
            if during is not None:
                await during(edges)
            await asyncio.gather(*tasks)
            for s in edges.values():
                await s.wait_acked(EVENTS, timeout=60)
        return edges


@pytest.mark.slow
async def test_broker_killed_and_restarted_mid_stream(tmp_path, cfg_dir, broker, routers):
    router = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(router)
    router.start()
    devices = lab_devices(DEVICES)

    async def kill_broker(edges):
        await await_until(lambda: all(s.outbox.acked >= 20 for s in edges.values()), 30,
                          "the stream to flow")
        broker.kill()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(broker.start)

    edges = await _stream(tmp_path, broker, devices, rate=25, during=kill_broker)
    assert all(s.client.connects >= 2 for s in edges.values())  # all went through it
    assert_exactly_sent(router.db, {d: EVENTS for d in devices})


@pytest.mark.slow
async def test_edge_cut_off_for_30_s_then_back(tmp_path, cfg_dir, broker, routers):
    router = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(router)
    http = router.start()
    devices = lab_devices(DEVICES)
    cut = devices[0]
    proxy = BlackholeProxy(broker.port)
    await proxy.start()
    alerts = []

    async def cut_off(edges):
        await await_until(lambda: edges[cut].outbox.acked >= 10, 30, "the cut edge to flow")
        proxy.cut()
        acked_at_cut = edges[cut].outbox.acked
        await asyncio.sleep(30)
        # Meanwhile the edge kept its events, and the router saw the device go offline.
        assert edges[cut].outbox.acked == acked_at_cut
        assert edges[cut].outbox.last_seq > acked_at_cut + 30
        alerts.extend(a for a in (await asyncio.to_thread(http.get, "/v1/alerts")).json()
                      ["alerts"] if a.get("device") == cut)
        proxy.heal()

    try:
        # The others finish early; the cut one emits through the whole cut-off.
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_stream(tmp_path, broker, devices[1:], rate=10))
            tg.create_task(_stream(tmp_path, broker, [cut], rate=EVENTS / 40, during=cut_off,
                                   ports={cut: proxy.port}))
    finally:
        await proxy.aclose()
    assert_exactly_sent(router.db, {d: EVENTS for d in devices})
    assert [a["kind"] for a in alerts] == ["device_offline"], alerts
    back = (await asyncio.to_thread(http.get, "/v1/alerts")).json()["alerts"]
    assert any(a["kind"] == "device_online" and a.get("device") == cut for a in back)


@pytest.mark.slow
async def test_router_killed_and_restarted_mid_stream(tmp_path, cfg_dir, broker, routers):
    router = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(router)
    router.start()
    devices = lab_devices(DEVICES)

    async def kill_router(edges):
        await await_until(lambda: all(s.outbox.acked >= 20 for s in edges.values()), 30,
                          "the stream to flow")
        router.kill()
        # Acks the router published just before it died may still be on their way.
        await asyncio.sleep(0.5)
        emitted = sum(s.outbox.last_seq for s in edges.values())
        acked = sum(s.outbox.acked for s in edges.values())
        await asyncio.sleep(2)  # the edges keep publishing into the broker meanwhile
        assert sum(s.outbox.last_seq for s in edges.values()) > emitted + 50
        assert sum(s.outbox.acked for s in edges.values()) == acked  # nobody to ack
        await asyncio.to_thread(router.start)

    await _stream(tmp_path, broker, devices, rate=25, during=kill_router)
    assert_exactly_sent(router.db, {d: EVENTS for d in devices})


@pytest.mark.slow
async def test_edge_process_killed_and_restarted_replays_its_outbox(tmp_path, cfg_dir, broker,
                                                                     routers):
    router = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(router)
    router.start()
    devices = lab_devices(DEVICES)
    cmd = [sys.executable, "-m", "tests.mqtt.edge_driver", "--port", str(broker.port),
           "--dir", str(tmp_path / "edges"), "--events", str(EVENTS), "--rate", "25",
           *devices]
    first = subprocess.Popen(cmd, cwd=REPO)
    try:
        await await_until(lambda: sum(len(v) for v in stored_events(router.db).values())
                          >= DEVICES * 30, 60, "the stream to flow")
        first.send_signal(signal.SIGKILL)  # no goodbye, no flush: a crash
        first.wait(10)
        stored_at_kill = sum(len(v) for v in stored_events(router.db).values())
        assert stored_at_kill < DEVICES * EVENTS
        second = subprocess.Popen(cmd, cwd=REPO)
        try:
            assert await asyncio.to_thread(second.wait, 120) == 0
        finally:
            second.kill()
    finally:
        first.kill()
    assert_exactly_sent(router.db, {d: EVENTS for d in devices})
