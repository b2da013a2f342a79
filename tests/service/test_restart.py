"""Kill the real router process mid-flight (SIGKILL) and start it again on the same store."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.procs import RouterProcess
from tests.service.conftest import auth, config_copy

# Longer than a router start-up (which loads the sentence-embedding model, ~2 s of CPU) on a
# busy machine: part 1 restarts within it.
OFFER_TIMEOUT = 30.0


def snapshot(client: httpx.Client) -> dict[str, dict]:
    cases = client.get("/v1/cases", headers=auth("supervisor"), params={"limit": 500})
    return {c["id"]: c for c in cases.json()["cases"]}


def essentials(c: dict) -> tuple:
    offer = c["pending_offer"]
    return (c["state"], c["assigned_worker"], c["queue_position"], c["step"],
            offer and (offer["offer_id"], offer["worker_id"], offer["expires_at"]),
            c["revision"])


@pytest.mark.slow
def test_router_killed_mid_flight_loses_nothing(tmp_path):
    cfg = config_copy(tmp_path, offer_timeout_s=OFFER_TIMEOUT)
    proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    c = proc.start()
    try:
        for w in ("haruto", "lucas"):
            assert c.put(f"/v1/workers/{w}/presence", json={"presence": "available"},
                         headers=auth(w)).status_code == 200
        ids = []
        for i in range(7):
            body = {"site": "city-office", "device": "kiosk-1", "resident": f"r{i}",
                    "language": "ja" if i < 5 else "zh", "priority": 5 if i == 4 else 0}
            r = c.post("/v1/cases", json=body, headers=auth("kiosk-1"))
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        before = snapshot(c)
        first_offer = before[ids[0]]["pending_offer"]
        assert c.post(f"/v1/offers/{first_offer['offer_id']}/accept",
                      headers=auth(first_offer["worker_id"])).status_code == 200
        turn = {"event_id": "k1-1", "case_id": ids[0], "origin": "kiosk-1", "seq": 1,
                "ts": time.time(), "type": "turn",
                "payload": {"speaker": "resident", "language": "ja", "text": "もしもし"}}
        assert c.post("/v1/events", json=turn, headers=auth("kiosk-1")).json()["status"] == \
            "applied"
        before = snapshot(c)
        states = sorted(s["state"] for s in before.values())
        assert states.count("connected") == 1 and states.count("offered") == 3
        assert states.count("queued") == 3

        # 1. Killed and restarted within the offer timeout: everything is as it was.
        proc.kill()
        c = proc.start()
        after = snapshot(c)
        assert {k: essentials(v) for k, v in after.items()} == \
            {k: essentials(v) for k, v in before.items()}
        assert c.post("/v1/events", json=turn, headers=auth("kiosk-1")).json()["status"] == \
            "duplicate"

        # 2. Down past the offers' expiry: on restart they time out and the cases re-route.
        proc.kill()
        time.sleep(OFFER_TIMEOUT + 0.5)
        c = proc.start()
        after = snapshot(c)
        assert set(after) == set(before)
        for cid, old in before.items():
            new = after[cid]
            if old["state"] == "connected":
                assert essentials(new)[:2] == essentials(old)[:2]
            if old["state"] != "offered":
                continue
            events = c.get(f"/v1/cases/{cid}/events", headers=auth("supervisor")).json()
            results = [(e["payload"]["offer_id"], e["payload"]["status"])
                       for e in events["events"] if e["type"] == "offer_result"]
            assert (old["pending_offer"]["offer_id"], "timed_out") in results
            if new["pending_offer"] is not None:
                assert new["pending_offer"]["worker_id"] != old["pending_offer"]["worker_id"]
            else:
                assert new["state"] == "queued"
        # Per-origin sequences stayed gap-free and duplicate-free through both kills.
        seqs: dict[str, list[int]] = {}
        for cid in after:
            events = c.get(f"/v1/cases/{cid}/events", headers=auth("supervisor")).json()
            for e in events["events"]:
                seqs.setdefault(e["origin"], []).append(e["seq"])
        assert set(seqs) == {"router", "kiosk-1"}
        for origin, got in seqs.items():
            assert sorted(got) == list(range(1, len(got) + 1)), origin
    finally:
        proc.kill()


@pytest.mark.slow
def test_closed_browser_sends_connected_case_back_to_routing(tmp_path):
    """A real router and a real WebSocket: the worker's browser goes away mid-case."""
    import json

    from websockets.sync.client import connect

    from tests.service.conftest import token

    cfg = config_copy(tmp_path, presence_grace_s=0.3)
    proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    c = proc.start()
    try:
        ws_url = proc.url.replace("http", "ws", 1) + "/v1/ws"
        with connect(ws_url) as ws:
            ws.send(json.dumps({"type": "auth", "token": token("haruto")}))
            json.loads(ws.recv())  # hello
            ws.send(json.dumps({"type": "presence", "presence": "available"}))
            assert c.put("/v1/workers/lucas/presence", json={"presence": "available"},
                         headers=auth("lucas")).status_code == 200
            r = c.post("/v1/cases", json={"site": "city-office", "device": "kiosk-1",
                                          "language": "ja", "skills": {"residency": 3}},
                       headers=auth("kiosk-1"))
            case_id = r.json()["id"]
            while True:
                msg = json.loads(ws.recv(timeout=5))
                if msg["type"] == "offer":
                    break
            ws.send(json.dumps({"type": "accept", "offer_id": msg["offer"]["offer_id"]}))
            while json.loads(ws.recv(timeout=5))["type"] != "accepted":
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = c.get(f"/v1/cases/{case_id}", headers=auth("supervisor")).json()["case"]
            if got["state"] != "connected":
                break
            time.sleep(0.1)
        assert got["state"] in ("transferring", "offered"), got["state"]
        assert got["assigned_worker"] is None
        assert got["handoffs"][-1]["note"] == "worker disconnected"
        workers = {w["id"]: w for w in
                   c.get("/v1/workers", headers=auth("supervisor")).json()["workers"]}
        assert workers["haruto"]["presence"] == "offline"
        alerts = c.get("/v1/alerts", headers=auth("supervisor")).json()["alerts"]
        assert any(a["kind"] == "worker_disconnected" for a in alerts)
    finally:
        proc.kill()


@pytest.mark.slow
def test_worker_who_never_comes_back_after_a_restart_loses_no_case(tmp_path):
    cfg = config_copy(tmp_path, presence_grace_s=0.5)
    proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    c = proc.start()
    try:
        for w in ("haruto", "lucas"):
            c.put(f"/v1/workers/{w}/presence", json={"presence": "available"},
                  headers=auth(w))
        r = c.post("/v1/cases", json={"site": "city-office", "device": "kiosk-1",
                                      "language": "ja", "skills": {"residency": 3}},
                   headers=auth("kiosk-1"))
        case = r.json()
        offer = case["pending_offer"]
        assert offer["worker_id"] == "haruto"
        assert c.post(f"/v1/offers/{offer['offer_id']}/accept",
                      headers=auth("haruto")).status_code == 200
        proc.kill()
        c = proc.start()  # nobody reconnects
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = c.get(f"/v1/cases/{case['id']}", headers=auth("supervisor")).json()["case"]
            if got["state"] != "connected":
                break
            time.sleep(0.1)
        assert got["state"] in ("transferring", "offered") and got["assigned_worker"] is None
        assert got["handoffs"][-1]["note"] == "worker disconnected"
    finally:
        proc.kill()
