"""The router service end to end in-process: REST, the worker WebSocket and the store."""

from __future__ import annotations

import json

import pytest

from tests.service.conftest import auth, config_copy, token


def recv_until(ws, type_: str, limit: int = 50) -> dict:
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == type_:
            return msg
    raise AssertionError(f"no {type_!r} message in {limit} messages")


def offers_in(events: list[dict]) -> list[str]:
    return [e["payload"]["offer"]["worker_id"] for e in events if e["type"] == "offer"]


def test_offer_accept_packet_close(router):
    router.available("haruto")
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('haruto')}"}) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["presence"] == "available"
        case = router.open_case(skills={"residency": 3}, resident="res-9", transcript=[
            {"speaker": "resident", "language": "ja", "text": "在留カードの更新です",
             "translated": "Renewing my residence card", "translated_language": "en"}])
        assert case["state"] == "offered"
        offer = recv_until(ws, "offer")
        assert offer["offer"]["worker_id"] == "haruto"
        assert offer["case"]["id"] == case["id"] and offer["case"]["language"] == "ja"
        assert "transcript" not in offer["case"]  # a preview; accept delivers the whole
        ws.send_json({"type": "accept", "offer_id": offer["offer"]["offer_id"]})
        accepted = recv_until(ws, "accepted")
    packet = accepted["packet"]
    assert accepted["case"]["state"] == "connected"
    assert packet["transcript"][0]["translated"] == "Renewing my residence card"
    assert packet["handoffs"][-1]["to_owner"] == "haruto"
    # Visibility: the assigned worker and supervisors see it; another worker does not.
    assert router.case(case["id"], "haruto")["case"]["assigned_worker"] == "haruto"
    assert router.client.get(f"/v1/cases/{case['id']}", headers=auth("ken")).status_code == 404
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("ken"),
                           json={"status": "resolved"})
    assert r.status_code == 404
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                           json={"status": "resolved", "code": "renewed", "ai_verdict": "right"})
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    types = [e["type"] for e in router.events(case["id"])]
    assert types == ["opened", "turn", "queued", "offer", "offer_result", "outcome"]


def test_bad_input_is_refused_and_nothing_written(router):
    c = router.client
    dev = auth("kiosk-1")
    good = {"site": "city-office", "device": "kiosk-1", "language": "ja"}
    cases = [
        (c.post("/v1/cases", content=b"{not json", headers={**dev, "content-type":
                                                              "application/json"}),
         400, "not valid JSON"),
        (c.post("/v1/cases", json={**good, "colour": "red"}, headers=dev), 422, "colour"),
        (c.post("/v1/cases", json={**good, "priority": "high"}, headers=dev), 422, "priority"),
        (c.post("/v1/cases", json={**good, "language": 7}, headers=dev), 422, "language"),
        (c.post("/v1/cases", content=b"{" + b" " * 70_000 + b"}",
                headers={**dev, "content-type": "application/json"}), 413, "bytes"),
        (c.post("/v1/cases", json={**good, "site": "moon-base", "device": None},
                headers=auth("admin")), 404, "unknown site"),
        (c.post("/v1/cases", json={**good, "skills": {"juggling": 2}}, headers=dev), 422,
         "juggling"),
        (c.post("/v1/cases", json={**good, "language": "fr"}, headers=dev), 422,
         "does not serve"),
        (c.post("/v1/cases", json=good), 401, "Bearer"),
        (c.post("/v1/cases", json=good, headers={"Authorization": "Bearer nope-nope-nope"}),
         401, "unknown"),
        (c.post("/v1/cases", json=good, headers=auth("ken")), 403, "role"),
        (c.post("/v1/cases", json={**good, "device": "kiosk-2", "site": "north-branch"},
                headers=dev), 403, "itself"),
        (c.get("/v1/cases/c-does-not-exist", headers=auth("supervisor")), 404, "no case"),
        (c.post("/v1/offers/o-nope/accept", headers=auth("ken")), 409, "no longer pending"),
        (c.get("/v1/stats", headers=auth("ken")), 403, "role"),
        (c.put("/v1/workers/ken/presence", json={"presence": "available"},
               headers=auth("emma")), 403, "own presence"),
        (c.put("/v1/workers/nobody/presence", json={"presence": "available"},
               headers=auth("admin")), 404, "unknown worker"),
        (c.put("/v1/workers/ken/presence", json={"presence": "dancing"},
               headers=auth("ken")), 422, "presence"),
    ]
    for resp, status, text in cases:
        assert resp.status_code == status, (resp.request.url, resp.text)
        body = resp.json()
        assert text.lower() in body["message"].lower(), body
    listed = c.get("/v1/cases", headers=auth("supervisor")).json()["cases"]
    assert listed == []
    assert router.call(router.core.store.high_waters) == {}


def test_offer_timeouts_reoffer_and_set_worker_away(router):
    router.available("haruto", "ken")
    first = router.open_case(skills={"residency": 3})
    second = router.open_case(skills={"residency": 3})
    # Chat capacity 2: haruto holds both offers; nobody answers.
    assert router.case(first["id"])["case"]["pending_offer"]["worker_id"] == "haruto"
    assert router.case(second["id"])["case"]["pending_offer"]["worker_id"] == "haruto"
    router.advance(21)
    workers = {w["id"]: w for w in
               router.client.get("/v1/workers", headers=auth("supervisor")).json()["workers"]}
    assert workers["haruto"]["presence"] == "away"
    alerts = router.client.get("/v1/alerts", headers=auth("supervisor")).json()["alerts"]
    assert any(a["kind"] == "worker_away" and a["worker_id"] == "haruto" for a in alerts)
    results = [e["payload"]["status"] for e in router.events(first["id"])
               if e["type"] == "offer_result"]
    assert results == ["timed_out"]
    # Widening: past the specialist step (45 s) and the agent step (60 s), ken may take it.
    router.advance(30)
    assert router.case(first["id"])["case"]["state"] == "queued"
    router.advance(60)
    assert router.case(first["id"])["case"]["pending_offer"]["worker_id"] == "ken"
    assert "haruto" not in offers_in(router.events(first["id"]))[1:]


def test_reject_goes_to_next_and_never_back(router):
    router.available("haruto", "lucas", "mei")
    case = router.open_case()
    seen = []
    for _ in range(3):
        pending = router.case(case["id"])["case"]["pending_offer"]
        seen.append(pending["worker_id"])
        r = router.client.post(f"/v1/offers/{pending['offer_id']}/reject",
                               headers=auth(pending["worker_id"]), json={"reason": "busy"})
        assert r.status_code == 200, r.text
    assert seen == ["haruto", "lucas", "mei"]  # by Japanese proficiency: 5, 4, 3
    assert router.case(case["id"])["case"]["state"] == "queued"
    router.advance(200)  # every step widened; all three declined, so nobody is offered
    assert router.case(case["id"])["case"]["pending_offer"] is None
    assert offers_in(router.events(case["id"])) == seen


def test_warm_transfer_carries_note_and_packet(router):
    router.available("haruto", "lucas")
    case = router.open_case(skills={"residency": 3})
    offer = router.case(case["id"])["case"]["pending_offer"]
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("haruto"))
    assert r.status_code == 200
    r = router.client.post(f"/v1/cases/{case['id']}/transfer", headers=auth("haruto"),
                           json={"skills": {"tax": 3}, "note": "residency done; tax question"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "offered"
    offer = r.json()["pending_offer"]
    assert offer["worker_id"] == "lucas"
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("lucas"))
    packet = r.json()["packet"]
    assert packet["notes"][-1] == {"at": packet["notes"][-1]["at"], "author": "haruto",
                                   "text": "residency done; tax question"}
    moves = [(h["kind"], h["from_owner"], h["to_owner"]) for h in packet["handoffs"]]
    assert ("transferred", "haruto", None) in moves
    assert moves[-1] == ("accepted", "haruto", "lucas")
    # haruto no longer owns it and cannot close it; lucas can.
    assert router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                              json={}).status_code == 403


def test_handback_at_most_once(router):
    router.available("haruto")

    def connect():
        offer = router.case(case["id"])["case"]["pending_offer"]
        r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("haruto"))
        assert r.status_code == 200

    case = router.open_case(skills={"residency": 3})
    connect()
    r = router.client.post(f"/v1/cases/{case['id']}/handback", headers=auth("haruto"),
                           json={"reason": "routine_remaining", "note": "only hours left"})
    assert r.status_code == 200 and r.json()["state"] == "handed_back"
    r = router.client.post(f"/v1/cases/{case['id']}/escalate", headers=auth("kiosk-1"),
                           json={"skills": {"residency": 3}, "reasons": ["asked again"]})
    assert r.status_code == 200, r.text
    # The same worker may take it again: a handback is not a decline.
    connect()
    r = router.client.post(f"/v1/cases/{case['id']}/handback", headers=auth("haruto"),
                           json={"reason": "routine_remaining"})
    assert r.status_code == 409 and "loop guard" in r.json()["message"]
    assert router.case(case["id"])["case"]["state"] == "connected"


def _turn(case_id, seq, origin="kiosk-1", text="hello"):
    return {"event_id": f"{origin}-{seq}", "case_id": case_id, "origin": origin, "seq": seq,
            "ts": 1_800_000_000.0, "type": "turn",
            "payload": {"speaker": "resident", "language": "ja", "text": text}}


def test_device_events_are_idempotent_and_gaps_refused(router):
    case = router.open_case(escalate=False)
    post = router.client.post
    r = post("/v1/events", json=_turn(case["id"], 1), headers=auth("kiosk-1"))
    assert r.json() == {"status": "applied", "seq": 1}
    r = post("/v1/events", json=_turn(case["id"], 1), headers=auth("kiosk-1"))
    assert r.json() == {"status": "duplicate", "seq": 1}
    r = post("/v1/events", json=_turn(case["id"], 3), headers=auth("kiosk-1"))
    assert r.status_code == 409 and "expected seq 2" in r.json()["message"]
    r = post("/v1/events", json=_turn(case["id"], 2, origin="robot-1"), headers=auth("kiosk-1"))
    assert r.status_code == 403
    r = post("/v1/events", json=_turn(case["id"], 1, origin="robot-1"), headers=auth("robot-1"))
    # Not robot-1's case: refused, and its seq consumed (docs/protocol.md §8).
    assert r.status_code == 403 and r.json()["reason"] == "not_allowed"
    bad = _turn(case["id"], 2)
    bad["payload"]["text"] = ""
    r = post("/v1/events", json=bad, headers=auth("kiosk-1"))
    assert r.status_code == 422 and "text" in r.json()["message"]
    assert r.json()["reason"] == "schema"  # seq 2 consumed: the next event is seq 3
    r = post("/v1/events", json=_turn(case["id"], 3), headers=auth("kiosk-1"))
    assert r.json() == {"status": "applied", "seq": 3}
    turns = [e for e in router.events(case["id"]) if e["type"] == "turn"]
    assert len(turns) == 2


def test_preferred_worker_for_repeat_contact_then_fallback(router):
    router.available("ken")
    first = router.open_case(resident="res-42")
    # No specialist is available: after the specialist step the agent ken takes it.
    router.advance(46)
    offer = router.case(first["id"])["case"]["pending_offer"]
    assert offer["worker_id"] == "ken"
    router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("ken"))
    router.client.post(f"/v1/cases/{first['id']}/close", headers=auth("ken"), json={})
    router.available("haruto")  # a better fit for step 1 ...
    router.client.put("/v1/workers/ken/presence", json={"presence": "away"},
                      headers=auth("ken"))
    again = router.open_case(resident="res-42")
    assert again["pending_offer"] is None  # ... but ken, the preferred worker, is asked first
    assert again["step"] == "preferred_worker"
    router.advance(21)  # fallback: the workflow applies
    assert router.case(again["id"])["case"]["pending_offer"]["worker_id"] == "haruto"


def test_preferred_worker_is_offered_first(router):
    router.available("ken", "haruto")
    first = router.open_case(resident="res-7")
    offer = router.case(first["id"])["case"]["pending_offer"]
    assert offer["worker_id"] == "haruto"
    router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("haruto"))
    router.client.post(f"/v1/cases/{first['id']}/close", headers=auth("haruto"), json={})
    router.client.put("/v1/workers/haruto/presence", json={"presence": "away"},
                      headers=auth("haruto"))
    router.available("haruto")
    second = router.open_case(resident="res-7")
    assert second["pending_offer"]["worker_id"] == "haruto"
    assert second["pending_offer"]["step"] == "preferred_worker"


def test_resident_walks_away_withdraws_offer(router):
    router.available("haruto")
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('haruto')}"}) as ws:
        ws.receive_json()
        case = router.open_case()
        recv_until(ws, "offer")
        r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("kiosk-1"),
                               json={"status": "abandoned", "code": "walked_away"})
        assert r.status_code == 200 and r.json()["state"] == "abandoned"
        assert r.json()["pending_offer"] is None
        r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("kiosk-1"),
                               json={"status": "resolved"})
        assert r.status_code == 409
    # haruto's reservation was released: a new case is offered to him at once.
    assert router.open_case()["pending_offer"]["worker_id"] == "haruto"


def test_websocket_bad_messages_do_not_break_the_socket(router):
    router.available("ken")
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('ken')}"}) as ws:
        ws.receive_json()
        ws.send_text("not json at all")
        assert "invalid message" in recv_until(ws, "error")["message"]
        ws.send_json({"type": "accept"})
        assert "offer_id" in recv_until(ws, "error")["message"]
        ws.send_json({"type": "accept", "offer_id": "o-missing"})
        err = recv_until(ws, "error")
        assert err["status"] == 409 and err["request"] == "accept"
        ws.send_text(json.dumps({"type": "ping"}))
        assert recv_until(ws, "pong") == {"type": "pong"}


def test_websocket_refuses_bad_tokens_and_devices(router):
    from starlette.websockets import WebSocketDisconnect

    first = [({"type": "ping"}, 4401), ({"type": "auth", "token": "wrong-wrong-wrong"}, 4401),
             ({"type": "auth", "token": token("kiosk-1")}, 4403)]
    for msg, code in first:
        with pytest.raises(WebSocketDisconnect) as exc:
            with router.client.websocket_connect("/v1/ws") as ws:
                ws.send_json(msg)
                ws.receive_json()
        assert exc.value.code == code
    # A token in the URL is refused even when valid: URLs end up in logs.
    with pytest.raises(WebSocketDisconnect) as exc:
        with router.client.websocket_connect(f"/v1/ws?token={token('haruto')}") as ws:
            ws.receive_json()
    assert exc.value.code == 4401


def test_workers_see_only_their_cases(router):
    router.available("haruto", "ken")
    a = router.open_case(skills={"residency": 3})
    router.open_case(language="en", skills={"appointments": 1}, device="kiosk-1")
    mine = router.client.get("/v1/cases", headers=auth("haruto")).json()["cases"]
    assert [c["id"] for c in mine] == [a["id"]]
    everything = router.client.get("/v1/cases", headers=auth("supervisor")).json()["cases"]
    assert len(everything) == 2
    kiosk2 = router.client.get("/v1/cases", headers=auth("kiosk-2")).json()["cases"]
    assert kiosk2 == []


def test_openapi_and_docs_published(router):
    spec = router.client.get("/openapi.json").json()
    assert "/v1/cases" in spec["paths"] and "/v1/offers/{offer_id}/accept" in spec["paths"]
    assert router.client.get("/docs").status_code == 200


def test_stats_report_queues_and_service_level(router):
    router.available("haruto")
    case = router.open_case(skills={"residency": 3})
    router.open_case(language="zh")
    router.advance(5)
    offer = router.case(case["id"])["case"]["pending_offer"]
    router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("haruto"))
    s = router.client.get("/v1/stats", headers=auth("supervisor")).json()
    assert s["waiting"] == 1 and s["answered_last_hour"] == 1
    assert s["service_level"] == 1.0 and s["asa_s"] == pytest.approx(5.0)
    assert sum(s["queues"].values()) == 1


def test_max_wait_closes_case_with_alert(make_router, tmp_path):
    router = make_router(config_copy(tmp_path, max_wait_s=60))
    case = router.open_case(language="zh")
    router.advance(61)
    got = router.case(case["id"])["case"]
    assert got["state"] == "abandoned" and got["outcome_code"] == "max_wait_exceeded"
    alerts = router.client.get("/v1/alerts", headers=auth("supervisor")).json()["alerts"]
    assert alerts[-1]["kind"] == "wait_exceeded"


def _connect(router, worker, **case_kw):
    case = router.open_case(**case_kw)
    offer = router.case(case["id"])["case"]["pending_offer"]
    assert offer["worker_id"] == worker, offer
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth(worker))
    assert r.status_code == 200
    return case


def test_failed_transfer_has_a_typed_reason_and_keeps_the_case(router):
    router.available("haruto")
    case = _connect(router, "haruto", skills={"residency": 3})
    r = router.client.post(f"/v1/cases/{case['id']}/transfer", headers=auth("haruto"),
                           json={"to_worker": "lucas", "note": "tax question"})
    assert r.status_code == 409
    assert r.json()["reason"] == "target_unavailable" and "lucas" in r.json()["message"]
    got = router.case(case["id"])["case"]
    assert got["state"] == "connected" and got["assigned_worker"] == "haruto"


def test_transfer_nobody_takes_fails_with_a_typed_outcome(make_router, tmp_path):
    router = make_router(config_copy(tmp_path, max_wait_s=120))
    router.available("haruto")
    case = _connect(router, "haruto", skills={"residency": 3})
    r = router.client.post(f"/v1/cases/{case['id']}/transfer", headers=auth("haruto"),
                           json={"language": "zh", "note": "needs Chinese"})
    assert r.status_code == 200 and r.json()["state"] == "transferring"
    router.advance(121)
    got = router.case(case["id"])["case"]
    assert got["state"] == "abandoned"
    assert got["outcome_code"] == "transfer_failed:no_one_available"
    alerts = router.client.get("/v1/alerts", headers=auth("supervisor")).json()["alerts"]
    assert alerts[-1]["kind"] == "transfer_failed"
    assert alerts[-1]["reason"] == "no_one_available"


def test_idle_ai_case_is_closed(make_router, tmp_path):
    router = make_router(config_copy(tmp_path, idle_case_timeout_s=600))
    case = router.open_case(escalate=False)
    router.advance(599)
    assert router.case(case["id"])["case"]["state"] == "ai_active"
    router.advance(2)
    got = router.case(case["id"])["case"]
    assert got["state"] == "abandoned" and got["outcome_code"] == "inactive"


def test_review_regressions_device_and_socket_input(router):
    case = router.open_case(escalate=False)
    post = router.client.post
    forged = _turn(case["id"], 1)
    forged["payload"].update(speaker="human", worker_id="ken", text="refund approved")
    r = post("/v1/events", json=forged, headers=auth("kiosk-1"))
    assert r.status_code == 403 and "speak for a person" in r.json()["message"]
    # Refused, its seq consumed: a copy is a duplicate, the device goes on with seq 2.
    assert post("/v1/events", json=forged,
                headers=auth("kiosk-1")).json()["status"] == "duplicate"
    assert post("/v1/events", json=_turn(case["id"], 2),
                headers=auth("kiosk-1")).json()["status"] == "applied"
    for seq in (1, 2):  # other content at a consumed seq, refused or applied
        other = _turn(case["id"], seq, text=f"a different event reusing seq {seq}")
        other["event_id"] = f"kiosk-1-other-{seq}"
        r = post("/v1/events", json=other, headers=auth("kiosk-1"))
        assert r.status_code == 409 and r.json()["reason"] == "seq_conflict"
    future = _turn(case["id"], 3)
    future["ts"] = router.clock.now() + 86_400
    r = post("/v1/events", json=future, headers=auth("kiosk-1"))
    assert r.status_code == 422 and r.json()["reason"] == "clock_skew"
    router.available("ken")
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('ken')}"}) as ws:
        ws.receive_json()
        ws.send_bytes(b"\x00\x01")
        assert "text frames" in recv_until(ws, "error")["message"]
        ws.send_json({"type": "ping"})
        assert recv_until(ws, "pong") == {"type": "pong"}


def test_closing_a_case_withdraws_its_offer_from_the_desk(router):
    router.available("haruto")
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('haruto')}"}) as ws:
        ws.receive_json()
        case = router.open_case()
        offer = recv_until(ws, "offer")["offer"]
        r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("supervisor"),
                               json={"status": "resolved", "code": "duplicate_case"})
        assert r.status_code == 200
        closed = recv_until(ws, "offer_closed")
        assert closed["offer_id"] == offer["offer_id"] and closed["status"] == "withdrawn"


def test_refused_device_event_does_not_wedge_the_device(router):
    first = router.open_case(escalate=False)
    router.client.post(f"/v1/cases/{first['id']}/close", headers=auth("kiosk-1"),
                       json={"status": "abandoned", "code": "walked_away"})
    late = router.client.post("/v1/events", json=_turn(first["id"], 1),
                              headers=auth("kiosk-1"))
    assert late.status_code == 409 and late.json()["reason"] == "refused"
    second = router.open_case(escalate=False)
    r = router.client.post("/v1/events", json=_turn(second["id"], 2), headers=auth("kiosk-1"))
    assert r.status_code == 200 and r.json()["status"] == "applied"
    dead = router.client.get("/v1/sync/dead-letters", headers=auth("supervisor"))
    assert dead.status_code == 200
    assert any("refused" in d["reason"] for d in dead.json()["dead_letters"])
