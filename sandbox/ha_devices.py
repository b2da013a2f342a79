"""Edge devices for the cluster of sandbox/ha_cluster.py: each a simulated kiosk that opens its
cases the way ``baton edge-sim --mqtt`` does — events (opened, the resident's turn) through a
real outbox and ``EdgeSync`` over MQTT, with its own credentials, then an escalation over
REST — except that REST goes to any live router under its partition's prefix and is retried
on another router when the first is dead or does not lead (421/503). Its battery and its
connection are the test's to change, for device alerts.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from edge.outbox import Outbox
from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings
from sandbox.edge_sim import DeviceProfile, MqttSimulatedDevice
from sandbox.ha_cluster import PG, Cluster


class ClusterDevice(MqttSimulatedDevice):
    def __init__(self, cluster: Cluster, partition: str, token: str, profile: DeviceProfile,
                 rng: random.Random, outbox: Path, mqtt_port: int, *,
                 heartbeat_s: float = 2.0):
        super().__init__(None, token, profile, rng, None)  # type: ignore[arg-type]
        self.cluster, self.partition = cluster, partition
        self.outbox_path, self.mqtt_port, self.heartbeat_s = outbox, mqtt_port, heartbeat_s
        self.battery = 80.0
        self.cases: dict[str, str] = {}  # case id -> partition, once in the outbox
        self.retries = 0
        self.outbox: Outbox | None = None
        self._lock = asyncio.Lock()  # one case at a time; a restart waits for it

    async def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=5,
                                        headers={"Authorization": f"Bearer {self.token}"})
        await self._connect()

    async def _connect(self) -> None:
        p = self.profile
        self.outbox = Outbox(self.outbox_path, p.device)
        await self.outbox.open()
        mqtt = edge_mqtt_settings(p.device, self.token, "127.0.0.1", self.mqtt_port,
                                  keepalive=5, connect_timeout_s=3, backoff_max_s=2)
        self.sync = EdgeSync(EdgeSettings(p.site, p.device, p.kind, mqtt,
                                          heartbeat_s=self.heartbeat_s, ack_timeout_s=2.0,
                                          ack_timeout_max_s=4.0, will_delay_s=0),
                             self.outbox, telemetry=lambda: {
                                 "battery": {"percent": self.battery, "charging": False}})
        await self.sync.start()

    async def _disconnect(self) -> None:
        await self.sync.aclose()  # says goodbye: a retained offline state
        await self.outbox.aclose()

    async def restart(self, away_s: float = 1.0) -> None:
        """Off the network for ``away_s`` (a clean goodbye), then back on the same outbox."""
        async with self._lock:
            await self._disconnect()
            await asyncio.sleep(away_s)
            await self._connect()

    async def aclose(self) -> None:
        await self._disconnect()
        await self.client.aclose()

    async def open_case(self) -> dict:
        async with self._lock:
            return await super().open_case()

    async def escalate(self, case_id: str, body: dict) -> dict:
        # The chaos roster is generalists who speak English: ask for no particular skill.
        body = {**body, "skills": {}}
        self.cases[case_id] = self.partition
        attempt = 0
        while True:
            urls = self.cluster.urls()
            if urls:
                url = urls[attempt % len(urls)]
                try:
                    r = await self.client.post(
                        f"{url}/p/{self.partition}/v1/cases/{case_id}/escalate", json=body)
                    if r.status_code == 200:
                        return r.json()
                    if r.status_code == 409 and attempt > 0:
                        return {}  # an earlier attempt was stored; its answer was lost
                    if r.status_code not in (421, 503):
                        raise RuntimeError(f"escalating {case_id}: {r.status_code} "
                                           f"{r.text[:300]}")
                except httpx.TransportError:
                    pass
            attempt += 1
            self.retries += 1
            await asyncio.sleep(0.05)

    async def run_cases(self, n: int, rate: float) -> None:
        """Open ``n`` cases, about ``rate`` per second."""
        for _ in range(n):
            await self.open_case()
            await asyncio.sleep(self.rng.expovariate(rate))


def device_profiles(sites: dict[str, list[str]], languages: list[str]) -> list[DeviceProfile]:
    return [DeviceProfile(site, dev, "kiosk", languages)
            for site, devs in sites.items() for dev in devs]


async def stored_alerts(db_name: str) -> Counter:
    """(device, kind) -> how many alerts the store holds."""
    conn = await asyncpg.connect(**{**PG, "database": db_name}, timeout=5)
    try:
        return Counter((r["device"], r["kind"]) for r in
                       await conn.fetch("SELECT device, kind FROM alerts"))
    finally:
        await conn.close()


async def device_seqs(db_name: str) -> dict[str, list[int]]:
    """origin -> its stored seqs (events and refusals), for device origins."""
    conn = await asyncpg.connect(**{**PG, "database": db_name}, timeout=5)
    try:
        rows = await conn.fetch("SELECT origin, seq FROM case_events WHERE origin NOT LIKE "
                                "'router%' UNION ALL SELECT origin, seq FROM refused_seqs")
    finally:
        await conn.close()
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["origin"], []).append(r["seq"])
    return {k: sorted(v) for k, v in out.items()}
