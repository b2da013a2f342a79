"""Every router serves every partition (router/ha/forward.py), with real ``baton router``
processes on a fresh PostgreSQL database: a REST command sent to a router that does not
lead the partition runs on the leader as the caller; a worker socket on that router gets
the leader's offers and accepts them; after SIGKILL of the leader the socket on the
surviving router stays open, resyncs from the new leader's hello and works on."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
import websockets

from sandbox.ha_cluster import PG, Cluster
from sandbox.procs import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import require

pytestmark = pytest.mark.postgres
CONFIG = Path(__file__).resolve().parents[2] / "config"
SUPERVISOR = {"Authorization": "Bearer demo-sato-floor-token-0001"}
ADMIN = {"Authorization": "Bearer demo-admin-token-0001"}
WORKER = "demo-haruto-token-0001"  # a specialist of the city partition (en)
LEASE_S = 2.0


async def _events(name: str, case_id: str) -> list:
    conn = await asyncpg.connect(**{**PG, "database": name})
    try:
        return await conn.fetch("SELECT origin, type, payload FROM case_events "
                                "WHERE case_id = $1 ORDER BY position", case_id)
    finally:
        await conn.close()


async def _next(ws, kind: str, timeout: float = 20.0, **match) -> dict:
    """The next frame of ``kind`` (whose fields equal ``match``), skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind} {match} within {timeout} s")
        msg = json.loads(await asyncio.wait_for(ws.recv(), left))
        if msg["type"] == kind and all(msg.get(k) == v for k, v in match.items()):
            return msg


async def _open(http: httpx.AsyncClient, url: str, case_id: str) -> httpx.Response:
    return await http.post(f"{url}/p/city/v1/cases", headers=SUPERVISOR,
                           json={"case_id": case_id, "site": "city-office", "language": "en",
                                 "intent": "general"})


async def _r1_leads_r2_follows(cluster: Cluster) -> tuple[str, str]:
    """r1 started alone leads both partitions; then r2 starts as a follower. Their URLs."""
    cluster.start("r1")
    assert await cluster.wait_led(["city", "north"]) == {"city": "r1", "north": "r1"}
    cluster.start("r2")
    return cluster.routers["r1"].url, cluster.routers["r2"].url


async def test_a_follower_forwards_commands_and_relays_the_socket_as_the_caller(db):
    name, url = db
    cluster = Cluster(CONFIG, url, 2, lease_s=LEASE_S, poll_s=0.25)
    try:
        r1, r2 = await _r1_leads_r2_follows(cluster)
        ready = httpx.get(f"{r2}/readyz").json()
        assert ready["leads"] == [] and ready["address"] == r2
        async with httpx.AsyncClient(timeout=10) as http:
            # The worker signs in by message on the follower's socket (as browsers do):
            # the relay passes the message on to the leader.
            async with websockets.connect(f"{r2.replace('http', 'ws')}/p/city/v1/ws") as ws:
                await ws.send(json.dumps({"type": "auth", "token": WORKER}))
                hello = await _next(ws, "hello")
                assert hello["subject"] == "haruto"
                await ws.send(json.dumps({"type": "presence", "presence": "available"}))
                await ws.send(json.dumps({"type": "ping"}))
                await _next(ws, "pong")  # the leader has handled the presence
                opened = await _open(http, r2, "c-fwd-1")  # a command to the follower
                assert opened.status_code == 201, opened.text
                assert opened.headers["x-baton-served-by"] == "router:r1"
                offer = (await _next(ws, "offer"))["offer"]
                assert offer["case_id"] == "c-fwd-1"
                await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer_id"]}))
                accepted = await _next(ws, "accepted")
                assert accepted["case"]["assigned_worker"] == "haruto"
                # The worker's REST call through the follower runs on the leader as haruto.
                closed = await http.post(f"{r2}/p/city/v1/cases/c-fwd-1/close",
                                         headers={"Authorization": f"Bearer {WORKER}"},
                                         json={"status": "resolved", "code": "answered"})
                assert closed.status_code == 200, closed.text
            # A resident's turn through the follower runs the partition's conversation
            # layer on the leader: asking for a person hands the case over.
            opened = await http.post(f"{r2}/p/city/v1/cases", headers=SUPERVISOR, json={
                "case_id": "c-fwd-2", "site": "city-office", "language": "en",
                "escalate": False})  # with the AI
            assert opened.status_code == 201, opened.text
            turn = await http.post(f"{r2}/p/city/v1/cases/c-fwd-2/turns", headers=SUPERVISOR,
                                   json={"text": "I want to talk to a real person, please",
                                         "language": "en"})
            assert turn.status_code == 200, turn.text
            assert turn.json()["handoff"]["status"] == "connecting", turn.json()
            assert turn.headers["x-baton-served-by"] == "router:r1"
            # Refusals come from the leader, for the caller: a wrong token is refused.
            bad = await http.post(f"{r2}/p/city/v1/cases/c-fwd-1/close",
                                  headers={"Authorization": "Bearer nope"}, json={})
            assert bad.status_code == 401
            audit = (await http.get(f"{r2}/p/city/v1/audit", params={"action": "close"},
                                    headers=ADMIN)).json()["entries"]
            assert [(e["actor"], e.get("case_id")) for e in audit] == [("haruto", "c-fwd-1")]
            # No loops: a request already forwarded once is not forwarded again.
            looped = await http.post(f"{r2}/p/city/v1/cases", headers={
                **SUPERVISOR, "X-Baton-Forwarded": "r9"}, json={})
            assert looped.status_code == 421 and looped.json()["leader"] == "router:r1"
            assert (await http.get(f"{r2}/p/nowhere/v1/cases", headers=SUPERVISOR)
                    ).status_code == 404
            metrics = (await http.get(f"{r2}/metrics")).text
            assert 'baton_forwarded_total{kind="http",outcome="ok"}' in metrics
            assert 'baton_forwarded_total{kind="ws",outcome="relayed"} 1.0' in metrics
        events = await _events(name, "c-fwd-1")
        assert {e["origin"] for e in events} == {"router:r1:city"}
        payloads = {e["type"]: json.loads(e["payload"]) for e in events}
        assert (payloads["offer_result"]["worker_id"], payloads["offer_result"]["status"]) == \
            ("haruto", "accepted")
        assert payloads["outcome"]["by"] == "haruto"  # the caller, not the forwarding router
    finally:
        cluster.stop_all()


async def test_a_relayed_socket_resumes_on_the_next_leader_after_a_kill(db):
    name, url = db
    cluster = Cluster(CONFIG, url, 2, lease_s=LEASE_S, poll_s=0.25)
    try:
        _, r2 = await _r1_leads_r2_follows(cluster)
        async with httpx.AsyncClient(timeout=10) as http:
            async with websockets.connect(f"{r2.replace('http', 'ws')}/p/city/v1/ws",
                                          additional_headers={
                                              "Authorization": f"Bearer {WORKER}"}) as ws:
                await _next(ws, "hello")
                await ws.send(json.dumps({"type": "presence", "presence": "available"}))
                await ws.send(json.dumps({"type": "ping"}))
                await _next(ws, "pong")  # the leader has handled the presence
                assert (await _open(http, r2, "c-before")).status_code == 201
                offer = (await _next(ws, "offer"))["offer"]
                await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer_id"]}))
                await _next(ws, "accepted")
                killed_at = cluster.kill("r1")
                # Until r2 leads, a request for the partition gets a clear 503, not a hang.
                during = await http.get(f"{r2}/p/city/v1/cases/c-before", headers=SUPERVISOR)
                assert during.status_code == 503, during.text
                assert during.headers["retry-after"] == "1"
                assert during.json()["reason"] in ("leader_unreachable", "no_leader")
                # The socket stays open: the relay finds the next leader (r2 itself) and the
                # client gets its hello, with the case it holds.
                hello = await _next(ws, "hello", timeout=30)
                resumed_s = time.time() - killed_at
                assert [c["id"] for c in hello["cases"]] == ["c-before"]
                assert hello["cases"][0]["assigned_worker"] == "haruto"
                assert hello["presence"] == "available"
                # It converges: a new case through the survivor is offered and accepted.
                opened = await _open(http, r2, "c-after")
                assert opened.status_code == 201, opened.text
                offer = (await _next(ws, "offer"))["offer"]
                assert offer["case_id"] == "c-after"
                await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer_id"]}))
                assert (await _next(ws, "accepted"))["case"]["id"] == "c-after"
        print(f"relayed socket resumed {resumed_s:.2f} s after the kill")
        events = await _events(name, "c-after")
        assert {e["origin"] for e in events} == {"router:r2:city"}
        # r2 takes north too once r1's instance row has expired (its fair share grows).
        assert await cluster.wait_led(["city", "north"], not_by="r1") == {
            "city": "r2", "north": "r2"}
        metrics = httpx.get(f"{r2}/metrics").text
        assert 'baton_forwarded_total{kind="ws",outcome="resumed"} 1.0' in metrics
    finally:
        cluster.stop_all()


@pytest.mark.slow
async def test_a_desk_page_opened_on_a_follower_works_inside_its_partition(db):
    """The desk as a worker meets it under several routers: opened at /p/city/desk on a
    router that does not lead the partition, it signs in, its socket is relayed to the
    leader, and an offer the leader makes shows up and is accepted by a click."""
    require(shutil.which("chromium") is not None, "Chromium at /usr/bin/chromium",
            "apt-get install chromium")
    from playwright.async_api import async_playwright, expect

    name, url = db
    cluster = Cluster(CONFIG, url, 2, lease_s=LEASE_S, poll_s=0.25)
    errors: list[str] = []
    try:
        _, r2 = await _r1_leads_r2_follows(cluster)
        async with async_playwright() as pw, httpx.AsyncClient(timeout=10) as http:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.set_default_timeout(20_000)
                await page.goto(f"{r2}/p/city/desk#token={WORKER}")
                await page.wait_for_selector('#conn[data-state="connected"]')
                await page.get_by_label("Available").check()
                deadline = time.monotonic() + 15
                while True:  # the presence reached the leader through the relay
                    r = await http.get(f"{r2}/p/city/v1/workers", headers=SUPERVISOR)
                    if next(w for w in r.json()["workers"] if w["id"] == "haruto"
                            )["presence"] == "available":
                        break
                    assert time.monotonic() < deadline, "haruto never became available"
                    await asyncio.sleep(0.2)
                assert (await _open(http, r2, "c-page-1")).status_code == 201
                accept = page.get_by_role("button", name="Accept case c-page-1")
                await accept.click()
                await expect(page.locator("#case-h")).to_have_text("Case c-page-1")
            finally:
                await browser.close()
        events = await _events(name, "c-page-1")
        accepted = [json.loads(e["payload"]) for e in events if e["type"] == "offer_result"]
        assert [(a["worker_id"], a["status"]) for a in accepted] == [("haruto", "accepted")]
        assert not errors, errors
    finally:
        cluster.stop_all()
