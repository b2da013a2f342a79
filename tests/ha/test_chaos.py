"""Chaos: PostgreSQL (a fresh database), Mosquitto (generated passwords and ACL, client ids
bound to usernames), 3 real routers, 2 partitions, 10 edge devices over MQTT (each with its
outbox, its own credentials and the real wire protocol; sandbox/ha_devices.py) and 20
workers on WebSockets accepting and closing cases; ≥ 1,000 cases from the edges (events over
MQTT through the partition leader's persistent session, escalation over REST) plus some
opened over REST. The leader of a partition is SIGKILLed 5 times during the run, then all
routers but one. Around each kill two devices raise alerts: a low battery raised before the
kill and still low after it, and a goodbye and a reconnect after the takeover.

Invariants on the store at the end: 0 events lost (every device's outbox seq is stored, every
acknowledged REST case opened), 0 duplicated, per-origin sequences gap-free, no case
assigned to two workers, no worker over capacity, every case resolved or abandoned, every
device alert raised exactly once (battery low, offline, online per device).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from router.config import load_config
from router.ha.partitions import load_partitions
from router.mqtt.auth import write_auth
from sandbox.ha_cluster import (
    CaseDriver,
    Cluster,
    RotatingWorker,
    chat_capacity,
    check_invariants,
    create_database,
    drop_database,
)
from sandbox.ha_devices import ClusterDevice, device_seqs, stored_alerts
from sandbox.edge_sim import DeviceProfile
from sandbox.mosquitto import MosquittoProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CONFIG = Path(__file__).resolve().parents[2] / "config"
DEVICE_CASES = 1000  # from the edges over MQTT
REST_CASES = 100  # opened over REST by a supervisor
WORKERS_PER_PARTITION = 10
DEVICES_PER_PARTITION = 5
SITES = {"city": "city-office", "north": "north-branch"}


def chaos_config(tmp: Path) -> Path:
    """The demo configuration with 10 generalist workers per partition."""
    out = tmp / "config"
    shutil.copytree(CONFIG, out)
    workers, tokens, parts = [], [], []
    devices: dict[str, list] = {site: [] for site in SITES.values()}
    for pid, site in SITES.items():
        ids = [f"{pid}-w{i:02d}" for i in range(WORKERS_PER_PARTITION)]
        for w in ids:
            workers.append({"id": w, "name": w, "kind": "agent", "languages": {"en": 5},
                            "skills": {"general": 4}, "capacity": {"chat": 2}})
            tokens.append({"subject": w, "role": "agent", "token": f"demo-{w}-token-0001"})
        parts.append({"id": pid, "sites": [site], "workers": ids})
        for i in range(DEVICES_PER_PARTITION):
            dev = f"{pid}-k{i}"
            devices[site].append({"id": dev, "kind": "kiosk", "name": dev})
            tokens.append({"subject": dev, "role": "device", "token": f"demo-{dev}-token-0001"})
    # Supervisors only watch here: without languages they do not join the roster (tokens.yaml).
    kept = [{k: v for k, v in t.items() if k not in ("languages", "name")}
            for t in yaml.safe_load((CONFIG / "tokens.yaml").read_text())["tokens"]
            if t["role"] in ("supervisor", "device", "admin")]
    (out / "workers.yaml").write_text(yaml.safe_dump({"workers": workers}))
    (out / "tokens.yaml").write_text(yaml.safe_dump({"tokens": kept + tokens}))
    (out / "partitions.yaml").write_text(yaml.safe_dump({"partitions": parts}))
    sites = yaml.safe_load((CONFIG / "sites.yaml").read_text())
    for site in sites["sites"]:
        site["devices"] += devices.get(site["id"], [])
    (out / "sites.yaml").write_text(yaml.safe_dump(sites))
    return out


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_chaos_kills_lose_nothing_and_assign_nothing_twice(pg_server, tmp_path):
    t0 = time.monotonic()
    config = chaos_config(tmp_path)
    cfg = load_config(config)
    parts = load_partitions(cfg)
    pids = [p.id for p in parts.partitions]
    tokens = {t.subject: t.token for t in cfg.tokens.tokens}
    supervisor = next(t.token for t in cfg.tokens.tokens if t.role.value == "supervisor")
    passwd, acl = write_auth(cfg, tmp_path / "auth")
    broker = MosquittoProcess(tmp_path / "broker", passwd=passwd, acl=acl,
                              bind_client_ids=True)
    broker.start()
    db_name, url = await create_database("baton_chaos")
    cluster = Cluster(config, url, 3, lease_s=2.0, poll_s=0.25, log_level="warning",
                      mqtt_port=broker.port)
    rng = random.Random(16)
    stop, drive_stop = asyncio.Event(), asyncio.Event()
    devices: list[ClusterDevice] = []
    tasks: list[asyncio.Task] = []
    try:
        await asyncio.gather(*[asyncio.to_thread(cluster.start, n) for n in cluster.routers])
        await cluster.wait_led(pids)
        for pid, site in SITES.items():
            for i in range(DEVICES_PER_PARTITION):
                dev = f"{pid}-k{i}"
                devices.append(ClusterDevice(cluster, pid, tokens[dev],
                                             DeviceProfile(site, dev, "kiosk", ["en"]),
                                             random.Random(dev), tmp_path / f"{dev}.db",
                                             broker.port))
        for d in devices:
            await d.start()
        workers = [RotatingWorker(cluster, p.id, w, tokens[w], rng, answer_s=(0.05, 0.2),
                                  handle_s=(0.2, 0.8), decline_rate=0.05)
                   for p in parts.partitions for w in p.workers]
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        driver = CaseDriver(cluster, SITES, supervisor, rate=1.0)
        per_device = DEVICE_CASES // len(devices)
        edge_drive = [asyncio.create_task(d.run_cases(per_device, rate=1.4)) for d in devices]
        rest_drive = asyncio.create_task(driver.run(drive_stop, limit=REST_CASES // len(pids)))

        kills, restarting = [], None
        for k in range(5):
            pid = pids[k % 2]
            a, b = devices[2 * k], devices[2 * k + 1]
            # A low battery raised by the current leader, still low after the takeover.
            a.battery = b.battery = 9.0
            await _until(lambda: _has(db_name, [(a, "device_battery_low"),
                                                (b, "device_battery_low")]), 30,
                         "the battery alerts")
            if restarting is not None:
                await restarting  # two live routers before each kill
            victim = (await cluster.wait_led(pids, timeout=60))[pid]
            kills.append((victim, cluster.kill(victim)))
            await cluster.wait_led(pids, timeout=60, not_by=victim)
            # A goodbye and a reconnect under the new leader.
            await asyncio.gather(a.restart(), b.restart())
            await _until(lambda: _has(db_name, [(a, "device_offline"), (a, "device_online"),
                                                (b, "device_offline"), (b, "device_online")]),
                         30, "the offline and online alerts")
            await asyncio.sleep(2.5)  # low heartbeats reach the new leader: no new alert
            a.battery = b.battery = 80.0
            restarting = asyncio.create_task(asyncio.to_thread(cluster.start, victim))
        await restarting
        # All but one: the survivor must take every partition.
        await asyncio.sleep(2.0)
        leaders = await cluster.wait_led(pids, timeout=60)
        survivor = leaders[pids[0]]
        for name in cluster.routers:
            if name != survivor:
                cluster.kill(name)
        assert await cluster.wait_led(pids, timeout=60) == {p: survivor for p in pids}
        await asyncio.wait_for(asyncio.gather(*edge_drive, rest_drive), 600)
        for d in devices:
            await d.sync.wait_acked(d.outbox.last_seq, timeout=60)
        acked = {**driver.acked, **{c: p for d in devices for c, p in d.cases.items()}}
        assert len(driver.acked) >= REST_CASES and len(acked) >= DEVICE_CASES + REST_CASES
        capacity = chat_capacity(cfg)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            inv = await check_invariants(db_name, acked, capacity)
            if inv.unresolved == 0:
                break
            await asyncio.sleep(1.0)
        alerts = await stored_alerts(db_name)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        inv = await check_invariants(db_name, acked, capacity)
        seqs = await device_seqs(db_name)
        print(f"chaos: {inv}; kills {kills}; alerts {sum(alerts.values())}; "
              f"device events {sum(len(v) for v in seqs.values())}; "
              f"escalation retries {sum(d.retries for d in devices)}; "
              f"{time.monotonic() - t0:.0f} s")
        assert inv.cases >= DEVICE_CASES + REST_CASES
        assert (inv.lost, inv.duplicated, inv.seq_gaps) == (0, 0, 0)
        assert (inv.double_assignments, inv.over_capacity) == (0, 0)
        assert inv.unresolved == 0
        # Every event each device's outbox holds is stored once, in order, nothing missing.
        for d in devices:
            assert seqs[d.profile.device] == list(range(1, d.outbox.last_seq + 1)), \
                d.profile.device
        # Every device alert exactly once: battery low, offline, online per device.
        want = Counter({(d.profile.device, kind): 1 for d in devices
                        for kind in ("device_battery_low", "device_offline", "device_online")})
        assert alerts == want, alerts - want or want - alerts
        # The kills really changed leaders: several terms wrote in each partition.
        for pid in pids:
            assert sum(1 for o in inv.origins if o.endswith(f":{pid}")) >= 2
    finally:
        stop.set()
        drive_stop.set()
        for t in tasks:
            t.cancel()
        for d in devices:
            try:
                await d.aclose()
            except Exception:  # noqa: BLE001 - teardown of a device that never started
                pass
        cluster.stop_all()
        broker.stop()
        await drop_database(db_name)


async def _has(db_name: str, wanted: list) -> bool:
    alerts = await stored_alerts(db_name)
    return all(alerts[(d.profile.device, kind)] >= 1 for d, kind in wanted)
