"""Chaos: 3 real routers, 2 partitions, 20 workers on WebSockets accepting and closing cases,
≥ 1,000 cases opened through any router; the leader of a partition is SIGKILLed 5 times
during the run, then all routers but one. Invariants on the event log at the end.

Not yet here (docs/scale-out.md): the 10 edge devices over MQTT of the issue's chaos test —
partitioned mode runs no MQTT bridge yet, so cases are opened over REST.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from pathlib import Path

import pytest
import yaml

from router.config import load_config
from router.ha.partitions import load_partitions
from sandbox.ha_cluster import (
    CaseDriver,
    Cluster,
    RotatingWorker,
    chat_capacity,
    check_invariants,
    create_database,
    drop_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CONFIG = Path(__file__).resolve().parents[2] / "config"
CASES = 1000
WORKERS_PER_PARTITION = 10


def chaos_config(tmp: Path) -> Path:
    """The demo configuration with 10 generalist workers per partition."""
    out = tmp / "config"
    shutil.copytree(CONFIG, out)
    sites = {"city": "city-office", "north": "north-branch"}
    workers, tokens, parts = [], [], []
    for pid, site in sites.items():
        ids = [f"{pid}-w{i:02d}" for i in range(WORKERS_PER_PARTITION)]
        for w in ids:
            workers.append({"id": w, "name": w, "kind": "agent", "languages": {"en": 5},
                            "skills": {"general": 4}, "capacity": {"chat": 2}})
            tokens.append({"subject": w, "role": "agent", "token": f"demo-{w}-token-0001"})
        parts.append({"id": pid, "sites": [site], "workers": ids})
    # Supervisors only watch here: without languages they do not join the roster (tokens.yaml).
    kept = [{k: v for k, v in t.items() if k not in ("languages", "name")}
            for t in yaml.safe_load((CONFIG / "tokens.yaml").read_text())["tokens"]
            if t["role"] in ("supervisor", "device", "admin")]
    (out / "workers.yaml").write_text(yaml.safe_dump({"workers": workers}))
    (out / "tokens.yaml").write_text(yaml.safe_dump({"tokens": kept + tokens}))
    (out / "partitions.yaml").write_text(yaml.safe_dump({"partitions": parts}))
    return out


async def test_chaos_kills_lose_nothing_and_assign_nothing_twice(pg_server, tmp_path):
    config = chaos_config(tmp_path)
    cfg = load_config(config)
    parts = load_partitions(cfg)
    pids = [p.id for p in parts.partitions]
    tokens = {t.subject: t.token for t in cfg.tokens.tokens}
    supervisor = next(t.token for t in cfg.tokens.tokens if t.role.value == "supervisor")
    db_name, url = await create_database("baton_chaos")
    cluster = Cluster(config, url, 3, lease_s=2.0, poll_s=0.25, log_level="warning")
    rng = random.Random(16)
    stop, drive_stop = asyncio.Event(), asyncio.Event()
    try:
        cluster.start_all()
        await cluster.wait_led(pids)
        workers = [RotatingWorker(cluster, p.id, w, tokens[w], rng, answer_s=(0.05, 0.2),
                                  handle_s=(0.2, 0.8), decline_rate=0.05)
                   for p in parts.partitions for w in p.workers]
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        driver = CaseDriver(cluster, {p.id: p.sites[0] for p in parts.partitions},
                            supervisor, rate=50.0)
        drive = asyncio.create_task(driver.run(drive_stop, limit=CASES // len(pids)))
        kills = []
        for k in range(5):
            await asyncio.sleep(4.0)
            pid = pids[k % 2]
            victim = (await cluster.wait_led(pids, timeout=60))[pid]
            kills.append((victim, cluster.kill(victim)))
            await cluster.wait_led(pids, timeout=60, not_by=victim)
            cluster.start(victim)
        # All but one: the survivor must take every partition.
        await asyncio.sleep(3.0)
        leaders = await cluster.wait_led(pids, timeout=60)
        survivor = leaders[pids[0]]
        for name in cluster.routers:
            if name != survivor:
                cluster.kill(name)
        assert await cluster.wait_led(pids, timeout=60) == {p: survivor for p in pids}
        await asyncio.wait_for(drive, 900)
        assert len(driver.acked) >= CASES
        deadline = time.monotonic() + 300
        capacity = chat_capacity(cfg)
        while time.monotonic() < deadline:
            inv = await check_invariants(db_name, driver.acked, capacity)
            if inv.unresolved == 0:
                break
            await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        inv = await check_invariants(db_name, driver.acked, capacity)
        print(f"chaos: {inv}; kills {kills}")
        assert inv.cases >= CASES
        assert (inv.lost, inv.duplicated, inv.seq_gaps) == (0, 0, 0)
        assert (inv.double_assignments, inv.over_capacity) == (0, 0)
        assert inv.unresolved == 0
        # The kills really changed leaders: several terms wrote in each partition.
        for pid in pids:
            assert sum(1 for o in inv.origins if o.endswith(f":{pid}")) >= 2
    finally:
        stop.set()
        drive_stop.set()
        cluster.stop_all()
        await drop_database(db_name)
