"""Devices over MQTT in partitioned mode (router/ha/devices.py), with real processes: Mosquitto
with the generated password file and ACL and client ids bound to usernames (as in
production), PostgreSQL, two ``baton router`` processes. Each partition's leader consumes its
sites through the persistent session ``baton-router-<partition>``; events a device sends
while its partition has no leader (the leader SIGKILLed, its lease not yet expired) are
queued by the broker for that session and delivered to the next leader."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import httpx
import pytest

from router.config import load_config
from router.mqtt.auth import write_auth
from sandbox.ha_cluster import PG, Cluster
from sandbox.mosquitto import MosquittoProcess
from edge.outbox import Outbox
from edge.sync import EdgeSync
from tests.mqtt.helpers import edge, edge_settings

pytestmark = pytest.mark.postgres
CONFIG = Path(__file__).resolve().parents[2] / "config"
LEASE_S = 2.0


async def _stored(db: str, origin: str) -> list[tuple[int, str, str]]:
    conn = await asyncpg.connect(**{**PG, "database": db})
    try:
        return [tuple(r) for r in await conn.fetch(
            "SELECT seq, event_id, case_id FROM case_events WHERE origin = $1 "
            "ORDER BY position", origin)]
    finally:
        await conn.close()


async def _alerts(db: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(**{**PG, "database": db})
    try:
        return [tuple(r) for r in await conn.fetch("SELECT device, kind FROM alerts ORDER BY at")]
    finally:
        await conn.close()


async def _wait_alerts(db: str, want: list[tuple[str, str]], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await _alerts(db)) != want:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.2)


async def _emit(sync, device: str, site: str, first: int, last: int) -> None:
    case = f"case-{device}"
    for seq in range(first, last + 1):
        if seq == 1:
            await sync.emit(case, "opened", {"site": site, "device": device, "language": "en"},
                            event_id=f"{device}-1")
        else:
            await sync.emit(case, "turn", {"speaker": "resident", "language": "en",
                                           "text": f"turn {seq}"}, event_id=f"{device}-{seq}")


def bound_broker(tmp_path) -> MosquittoProcess:
    """Mosquitto with the generated passwd/ACL (tmp_path/auth) and client ids bound to
    usernames, started."""
    passwd, acl = write_auth(load_config(CONFIG), tmp_path / "auth")
    assert "user baton-router-city\ntopic readwrite baton/v1/city-office/#" in acl.read_text()
    broker = MosquittoProcess(tmp_path / "broker", passwd=passwd, acl=acl,
                              bind_client_ids=True)
    broker.start()
    return broker


async def test_the_next_leader_resumes_the_partitions_session(db, tmp_path):
    broker = bound_broker(tmp_path)
    db, url = db  # the database name, as the helpers above take it
    cluster = Cluster(CONFIG, url, 2, lease_s=LEASE_S, poll_s=0.25, mqtt_port=broker.port)
    try:
        cluster.start_all()
        leaders = await cluster.wait_led(["city", "north"])
        # The edges resend only on a new connection or after a minute without an ack: what
        # reaches the next leader here comes through the partition's session.
        outbox = Outbox(tmp_path / "kiosk-1.db", "kiosk-1")
        await outbox.open()
        kiosk = EdgeSync(edge_settings("kiosk-1", broker.port, site="city-office",
                                       heartbeat_s=0.5), outbox,
                         telemetry=lambda: {"battery": {"percent": 9.0, "charging": False}})
        await kiosk.start()
        async with edge(tmp_path, "robot-1", broker.port, site="city-office",
                        ack_timeout_s=60, ack_timeout_max_s=60) as city, \
                edge(tmp_path, "kiosk-2", broker.port, site="north-branch",
                     ack_timeout_s=60, ack_timeout_max_s=60) as north:
            await _wait_alerts(db, [("kiosk-1", "device_battery_low")])
            assert kiosk.client.connected.is_set()
            await _emit(city, "robot-1", "city-office", 1, 5)
            await _emit(north, "kiosk-2", "north-branch", 1, 5)
            await city.wait_acked(5, timeout=30)
            await north.wait_acked(5, timeout=30)

            victim = leaders["city"]
            cluster.kill(victim)
            # Nobody leads city until the lease runs out: these wait in the broker.
            await _emit(city, "robot-1", "city-office", 6, 15)
            await kiosk.aclose()  # says it goes offline while nobody leads city
            await outbox.aclose()
            await asyncio.sleep(0.3)
            assert city.acked == 5
            leaders = await cluster.wait_led(["city", "north"], timeout=30, not_by=victim)
            await city.wait_acked(15, timeout=30)
            await _wait_alerts(db, [("kiosk-1", "device_battery_low"),
                                    ("kiosk-1", "device_offline")])
            # The new leader's floor list holds the old term's alert too (restored from the
            # store at its rebuild, not raised again) beside the one it raised.
            floor = httpx.get(f"{cluster.routers[leaders['city']].url}/p/city/v1/alerts",
                              headers={"Authorization": "Bearer demo-sato-floor-token-0001"},
                              timeout=10).json()["alerts"]
            assert [(a["device"], a["kind"]) for a in floor
                    if a["kind"].startswith("device_")] == [
                ("kiosk-1", "device_battery_low"), ("kiosk-1", "device_offline")], floor
            await _emit(north, "kiosk-2", "north-branch", 6, 8)
            await north.wait_acked(8, timeout=30)

        # The battery alarm is not raised again by the next leader (it is kept with the
        # device's presence); the offline state queued in the session raises one alert.
        # The other edges said goodbye at the end of the block: one offline alert each.
        await asyncio.sleep(1.0)
        got = await _alerts(db)
        assert sorted(got) == [("kiosk-1", "device_battery_low"), ("kiosk-1", "device_offline"),
                               ("kiosk-2", "device_offline"), ("robot-1", "device_offline")]
        for device, n in (("robot-1", 15), ("kiosk-2", 8)):
            rows = await _stored(db, device)
            assert [r[0] for r in rows] == list(range(1, n + 1)), device  # once each, in order
        log = broker.log.read_text()
        # Each partition's leader logs in as its own user, clean start off (c0), and the
        # takeover resumed the session the dead leader left.
        logins = re.findall(r"New client connected from \S+ as (baton-router-\w+) \(p5, c0", log)
        assert logins.count("baton-router-city") == 2, logins
        assert "baton-router-north" in logins
        assert "Denied" not in log and "not authorised" not in log.lower()
    finally:
        cluster.stop_all()
        broker.stop()


async def test_a_leader_paused_with_the_session_neither_takes_it_back_nor_writes(db, tmp_path):
    """SIGSTOP the leader while its bridge holds ``baton-router-city``: the next leader's
    connect takes the session over (Mosquitto closes the paused holder's connection and
    hands the new one what was in flight), and when the paused router resumes, its
    writes are refused by the lease fence and it does not connect again."""
    broker = bound_broker(tmp_path)
    db, url = db  # the database name, as the helpers above take it
    cluster = Cluster(CONFIG, url, 2, lease_s=LEASE_S, poll_s=0.25, mqtt_port=broker.port)
    try:
        cluster.start("r1")
        assert await cluster.wait_led(["city", "north"]) == {"city": "r1", "north": "r1"}
        cluster.start("r2")
        async with edge(tmp_path, "robot-1", broker.port, site="city-office",
                        ack_timeout_s=60, ack_timeout_max_s=60) as city:
            await _emit(city, "robot-1", "city-office", 1, 5)
            await city.wait_acked(5, timeout=30)
            cluster.pause("r1")
            # Delivered to the paused holder's socket (or queued): none is acked by it.
            await _emit(city, "robot-1", "city-office", 6, 10)
            await cluster.wait_led(["city", "north"], timeout=30, not_by="r1")
            await city.wait_acked(10, timeout=30)
            cluster.resume("r1")
            await asyncio.sleep(3 * LEASE_S)  # r1 runs again: rounds fail, terms end
            await _emit(city, "robot-1", "city-office", 11, 12)
            await city.wait_acked(12, timeout=30)
            status = (await cluster.status())["r1"]
            assert status is not None and status["leads"] == []
        rows = await _stored(db, "robot-1")
        assert [r[0] for r in rows] == list(range(1, 13))
        log = broker.log.read_text()
        logins = re.findall(r"New client connected from \S+ as (baton-router-\w+) \(p5, c0", log)
        # r1, then r2 taking the session over; r1 never connects again after resuming.
        assert logins.count("baton-router-city") == 2, logins
        assert "baton-router-city" in log and "already connected, closing old connection" in log
    finally:
        cluster.stop_all()
        broker.stop()
