"""Real ``baton router`` processes in partitioned mode on a fresh PostgreSQL database:
a deposed leader (SIGSTOP past its lease, then SIGCONT) cannot write; SIGKILL of a leader
hands its partitions to a live router that rebuilds them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandbox.ha_cluster import PG, Cluster

pytestmark = pytest.mark.postgres
CONFIG = Path(__file__).resolve().parents[2] / "config"
SUPERVISOR = {"Authorization": "Bearer demo-sato-floor-token-0001"}
LEASE_S = 2.0


async def _events(name: str) -> list:
    conn = await asyncpg.connect(**{**PG, "database": name})
    try:
        return await conn.fetch("SELECT position, case_id, origin, seq FROM case_events "
                                "ORDER BY position")
    finally:
        await conn.close()


def _open(url: str, case_id: str, site: str = "city-office", partition: str = "city",
          timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{url}/p/{partition}/v1/cases", headers=SUPERVISOR, timeout=timeout,
                      json={"case_id": case_id, "site": site, "language": "en"})


async def test_a_leader_paused_past_its_lease_cannot_write_when_it_resumes(db):
    name, url = db
    cluster = Cluster(CONFIG, url, 2, lease_s=LEASE_S, poll_s=0.25)
    try:
        cluster.start("r1")
        assert (await cluster.wait_led(["city", "north"])) == {"city": "r1", "north": "r1"}
        cluster.start("r2")
        r1, r2 = cluster.routers["r1"].url, cluster.routers["r2"].url
        assert _open(r1, "c-before").status_code == 201
        forwarded = _open(r2, "c-via-r2")  # r2 leads nothing yet: it forwards to r1
        assert forwarded.status_code == 201
        assert forwarded.headers["x-baton-served-by"] == "router:r1"

        cluster.pause("r1")
        # Requests sent to the paused leader wait in its socket backlog; it handles them
        # when it resumes, after r2 has taken over: its fence refuses them (503), or, once
        # it knows it lost the partitions, it forwards them to r2, the leader now.
        paused = [asyncio.create_task(asyncio.to_thread(_open, r1, f"c-paused-{i}",
                                                        timeout=60)) for i in range(5)]
        leaders = await cluster.wait_led(["city", "north"], timeout=30, not_by="r1")
        assert leaders == {"city": "r2", "north": "r2"}
        assert _open(r2, "c-after").status_code == 201
        cluster.resume("r1")
        answers = [await t for t in paused]
        assert all(a.status_code == 503 or (a.status_code == 201 and a.headers[
            "x-baton-served-by"] == "router:r2") for a in answers), \
            [(a.status_code, a.text[:200]) for a in answers]
        stored_via_r2 = {f"c-paused-{i}" for i, a in enumerate(answers) if a.status_code == 201}

        rows = await _events(name)
        cases = {r["case_id"] for r in rows}
        assert {"c-before", "c-via-r2", "c-after"} <= cases
        assert {f"c-paused-{i}" for i in range(5)} & cases == stored_via_r2
        assert all(r["origin"].startswith("router:r2:") for r in rows
                   if r["case_id"] in stored_via_r2)
        first_r2 = min(r["position"] for r in rows if r["origin"].startswith("router:r2:"))
        assert all(r["position"] < first_r2 for r in rows if r["origin"].startswith("router:r1:"))
        # Each term writes as its own origin, each gap-free from 1.
        seqs: dict[str, list[int]] = {}
        for r in rows:
            seqs.setdefault(r["origin"], []).append(r["seq"])
        for origin, s in seqs.items():
            assert s == list(range(1, len(s) + 1)), origin
        status = (await cluster.status())["r1"]
        assert status is not None and status["leads"] == []
        metrics = httpx.get(f"{r1}/metrics").text
        assert "baton_leadership_lost_total 2.0" in metrics
    finally:
        cluster.stop_all()


async def test_a_killed_leaders_partitions_are_taken_over_and_rebuilt(db):
    name, url = db
    cluster = Cluster(CONFIG, url, 3, lease_s=LEASE_S, poll_s=0.25)
    try:
        cluster.start_all()
        leaders = await cluster.wait_led(["city", "north"])
        victim = leaders["city"]
        leader_url = cluster.routers[victim].url
        assert _open(leader_url, "c-queued").status_code == 201  # nobody to offer it to
        cluster.kill(victim)
        leaders = await cluster.wait_led(["city", "north"], timeout=30, not_by=victim)
        new = cluster.routers[leaders["city"]].url
        case = httpx.get(f"{new}/p/city/v1/cases/c-queued", headers=SUPERVISOR).json()["case"]
        assert case["state"] == "queued"  # rebuilt from the store, still waiting
        assert case["queue_position"] == 1
        ready = httpx.get(f"{new}/readyz").json()
        assert ready["ready"] and "city" in ready["leads"] and ready["epochs"]["city"] >= 2
    finally:
        cluster.stop_all()
