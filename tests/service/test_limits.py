"""No input stalls a device or the router, over REST and WebSocket (docs/protocol.md §8):
strict wire types, the time rules, batch isolation of the group commit, bounded query
parameters, the server's WebSocket frame limit, per-kind alert caps."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets

from protocol.models import Presence
from sandbox.procs import RouterProcess
from tests.mqtt.helpers import REPO
from tests.service.conftest import auth, token


def _turn(case_id, seq, ts, origin="kiosk-1", event_id=None, text="hello"):
    return {"event_id": event_id or f"{origin}-{seq}", "case_id": case_id, "origin": origin,
            "seq": seq, "ts": ts, "type": "turn",
            "payload": {"speaker": "resident", "language": "ja", "text": text}}


def _post_raw(router, body: str, who="kiosk-1"):
    return router.client.post("/v1/events", content=body.encode(),
                              headers={**auth(who), "Content-Type": "application/json"})


def test_integers_are_integers_and_numbers_finite(router):
    case = router.open_case(escalate=False)
    now = router.clock.now()
    good = json.dumps(_turn(case["id"], 1, now))
    for bad in (good.replace('"seq": 1', '"seq": "1"'), good.replace('"seq": 1', '"seq": true'),
                good.replace('"seq": 1', '"seq": 1.0')):
        r = _post_raw(router, bad)
        assert r.status_code == 422 and "seq" in r.json()["message"], r.text
    assert _post_raw(router, good).json() == {"status": "applied", "seq": 1}
    for seq, ts in ((2, "NaN"), (3, "-Infinity"), (4, "Infinity"), (5, "1e400")):
        body = json.dumps(_turn(case["id"], seq, 1.5)).replace('"ts": 1.5', f'"ts": {ts}')
        r = _post_raw(router, body)
        assert r.status_code == 422 and r.json()["reason"] == "schema", r.text
        assert "finite" in r.json()["message"] and "do not resend" in r.json()["message"]
    # Every seq of those was consumed: the device goes on at 6.
    assert _post_raw(router, json.dumps(_turn(case["id"], 6, now))).json()["status"] == \
        "applied"
    served = router.events(case["id"])
    assert all(isinstance(e["ts"], float) for e in served)  # never "ts": null
    r = router.client.post("/v1/cases", json={"site": "city-office", "language": "ja",
                                              "priority": "5"}, headers=auth("supervisor"))
    assert r.status_code == 422


@pytest.mark.parametrize("ts_offset,reason", [(3600, "clock_skew"), (-8 * 86400, "too_old"),
                                              (-3600, "before_case")])
def test_time_rules_refuse_with_a_reason_and_consume_the_seq(router, ts_offset, reason):
    case = router.open_case(escalate=False)
    now = router.clock.now()
    r = router.client.post("/v1/events", json=_turn(case["id"], 1, now + ts_offset),
                           headers=auth("kiosk-1"))
    assert r.status_code == 422 and r.json()["reason"] == reason
    assert "clock" in r.json()["message"]  # says what to fix
    r = router.client.post("/v1/events", json=_turn(case["id"], 2, now),
                           headers=auth("kiosk-1"))
    assert r.json() == {"status": "applied", "seq": 2}


def test_one_bad_event_never_fails_the_others(router):
    """A kiosk sending NaN, reused event ids and 600-level nesting while 150 supervisor
    notes go in concurrently: every note is saved, no state rebuild."""
    case = router.open_case(escalate=False)
    target = router.open_case(escalate=False)
    now = router.clock.now()
    assert router.client.post("/v1/events", json=_turn(case["id"], 1, now),
                               headers=auth("kiosk-1")).status_code == 200
    deep = '{"a": ' * 600 + "1" + "}" * 600

    def bad(k: int):
        seq = 2 + k
        if k % 3 == 0:
            body = json.dumps(_turn(case["id"], seq, 1.5)).replace('"ts": 1.5', '"ts": NaN')
            return _post_raw(router, body).status_code
        if k % 3 == 1:  # an event id already stored, at a new seq
            return router.client.post("/v1/events", json=_turn(
                case["id"], seq, now, event_id="kiosk-1-1"), headers=auth("kiosk-1")).status_code
        body = '{"site": "city-office", "language": "ja", "account": ' + deep + "}"
        return router.client.post("/v1/cases", content=body.encode(), headers={
            **auth("kiosk-1"), "Content-Type": "application/json"}).status_code

    def note(k: int):
        return router.client.post(f"/v1/cases/{target['id']}/notes", json={
            "text": f"note {k}"}, headers=auth("supervisor")).status_code

    with ThreadPoolExecutor(16) as pool:
        bads = [pool.submit(bad, k) for k in range(60)]
        notes = [pool.submit(note, k) for k in range(150)]
        note_codes = [f.result() for f in notes]
        bad_codes = [f.result() for f in bads]
    assert note_codes == [201] * 150
    assert all(400 <= c < 500 for c in bad_codes), bad_codes
    assert router.core.rebuilds == 0
    stored = [e for e in router.events(target["id"]) if e["type"] == "note"]
    assert len(stored) == 150


def test_a_unit_the_store_refuses_fails_alone(router):
    """Batch isolation when something slips past the checks: the group is written unit by
    unit, only the bad unit fails; the others are saved and answered."""
    target = router.open_case(escalate=False)
    other = router.open_case(escalate=False)
    store = router.core.store
    real = store.append_many

    async def refusing(items):
        if any(getattr(e.payload, "text", "") == "poison" for e, _ in items):
            raise RuntimeError("the store refuses this row")
        return await real(items)

    store.append_many = refusing
    try:
        def note(k: int):
            case = target if k != 7 else other
            return router.client.post(f"/v1/cases/{case['id']}/notes", json={
                "text": "poison" if k == 7 else f"note {k}"},
                headers=auth("supervisor")).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(note, range(60)))
    finally:
        store.append_many = real
    assert codes[7] == 503
    assert [c for k, c in enumerate(codes) if k != 7] == [201] * 59
    assert len([e for e in router.events(target["id"]) if e["type"] == "note"]) == 59
    assert not [e for e in router.events(other["id"]) if e["type"] == "note"]


def test_integer_query_parameters_are_bounded(router):
    for url in ("/v1/cases?offset=9223372036854775808", "/v1/cases?limit=100000",
                "/v1/cases?offset=-1", "/v1/kpis?limit=9223372036854775808",
                "/v1/alerts?limit=0"):
        r = router.client.get(url, headers=auth("supervisor"))
        assert r.status_code == 422, (url, r.status_code)


def test_presence_churn_cannot_push_device_alerts_out(router):
    async def churn():
        await router.core.raise_alert("device_offline", device="kiosk-1", site="city-office",
                                      message="kiosk-1 at city-office is offline")
        for k in range(3000):
            await router.core.set_presence("ken", Presence.away if k % 2 else
                                           Presence.available)

    router.call(churn)
    alerts = router.client.get("/v1/alerts?limit=5000", headers=auth("supervisor")).json()
    kinds = [a["kind"] for a in alerts["alerts"]]
    assert "device_offline" in kinds
    assert 100 <= kinds.count("worker_away") <= 200  # capped per kind
    only = router.client.get("/v1/alerts?kind=device_offline",
                             headers=auth("supervisor")).json()["alerts"]
    assert [a["device"] for a in only] == ["kiosk-1"]


async def test_the_server_closes_an_oversized_websocket_frame(tmp_path):
    """uvicorn's ws_max_size is the app's limit: a 1 MiB frame closes the socket (1009)
    before the app reads it, and the router keeps serving."""
    proc = RouterProcess(REPO / "config", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    http = await asyncio.to_thread(proc.start)
    try:
        url = f"ws://127.0.0.1:{proc.port}/v1/ws"
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token("supervisor")}))
            await ws.send("x" * (1 << 20))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:  # the hello first, if the socket was accepted before
                        await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert (await asyncio.to_thread(http.get, "/healthz")).status_code == 200
    finally:
        proc.kill()


def test_stored_and_served_events_match_the_published_schema(router, tmp_path):
    """What the router stores and serves validates against docs/schemas/case-event-1.0.json,
    after hostile input was refused (a NaN or -Infinity never becomes "ts": null)."""
    import sqlite3

    import jsonschema

    schema = json.loads((REPO / "docs/schemas/case-event-1.0.json").read_text())
    case = router.open_case(escalate=True)
    now = router.clock.now()
    for seq, ts in ((1, "-Infinity"), (2, "NaN")):
        body = json.dumps(_turn(case["id"], seq, 1.5)).replace('"ts": 1.5', f'"ts": {ts}')
        assert _post_raw(router, body).status_code == 422
    assert router.client.post("/v1/events", json=_turn(case["id"], 3, now),
                              headers=auth("kiosk-1")).status_code == 200
    router.client.post(f"/v1/cases/{case['id']}/notes", json={"text": "checked"},
                       headers=auth("supervisor"))
    served = router.events(case["id"])
    assert {e["type"] for e in served} >= {"opened", "queued", "turn", "note"}
    for e in served:
        jsonschema.validate(e, schema)
    con = sqlite3.connect(tmp_path / "router.db")
    try:
        rows = con.execute("SELECT event_id, case_id, origin, seq, ts, type, payload "
                           "FROM case_events").fetchall()
    finally:
        con.close()
    assert len(rows) >= len(served)
    for event_id, case_id, origin, seq, ts, type_, payload in rows:
        jsonschema.validate({"event_id": event_id, "case_id": case_id, "origin": origin,
                             "seq": seq, "ts": ts, "type": type_,
                             "payload": json.loads(payload)}, schema)
