"""Finding: a worker kept reading (and annotating) a case long after it left them, and an
unaccepted offer already returned the whole packet. Now: an offer shows the preview; the
assignee sees all; whoever passed the case on reads it, without changing it, for the wrap-up
window (tokens.yaml access.wrapup_minutes, default 15) on the injected clock; who declined or
never accepted sees nothing; supervisors see all. Sensitive actions are in the audit log."""

from __future__ import annotations

from tests.service.conftest import auth

TRANSCRIPT = [{"speaker": "resident", "language": "ja", "text": "在留カードの更新です",
               "translated": "Renewing my residence card", "translated_language": "en"}]


def _offer(router, case_id: str) -> dict:
    return router.case(case_id)["case"]["pending_offer"]


def _accept(router, case_id: str, worker: str) -> None:
    offer = _offer(router, case_id)
    assert offer["worker_id"] == worker, offer
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth(worker))
    assert r.status_code == 200, r.text


def test_an_offer_shows_the_preview_not_the_packet(router):
    router.available("haruto")
    case = router.open_case(skills={"residency": 3}, resident="res-77", transcript=TRANSCRIPT)
    assert _offer(router, case["id"])["worker_id"] == "haruto"
    r = router.client.get(f"/v1/cases/{case['id']}", headers=auth("haruto"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["packet"] is None and "preview" in body["access"]
    assert "Renewing" not in r.text and "res-77" not in r.text
    assert body["case"]["language"] == "ja" and body["case"]["skills"] == {"residency": 3}
    # Neither the events nor the list give more.
    events = router.client.get(f"/v1/cases/{case['id']}/events", headers=auth("haruto"))
    assert events.status_code == 403 and "accept the offer" in events.json()["message"]
    listed = router.client.get("/v1/cases", headers=auth("haruto"))
    assert "res-77" not in listed.text and "Renewing" not in listed.text
    assert [c["id"] for c in listed.json()["cases"]] == [case["id"]]
    # An offer does not let one write either.
    assert router.client.post(f"/v1/cases/{case['id']}/notes", headers=auth("haruto"),
                              json={"text": "hello"}).status_code == 403
    # The accept brings the packet.
    _accept(router, case["id"], "haruto")
    full = router.case(case["id"], "haruto")
    assert full["packet"]["transcript"][0]["translated"] == "Renewing my residence card"


def test_previous_holder_reads_during_wrapup_only_and_cannot_write(router):
    router.available("haruto", "lucas")
    case = router.open_case(skills={"residency": 3}, transcript=TRANSCRIPT)
    _accept(router, case["id"], "haruto")
    r = router.client.post(f"/v1/cases/{case['id']}/transfer", headers=auth("haruto"),
                           json={"skills": {"tax": 3}, "note": "tax question"})
    assert r.status_code == 200, r.text
    _accept(router, case["id"], "lucas")
    # Wrap-up: haruto reads the packet, but may no longer add notes or write to the resident.
    router.advance(14 * 60)
    assert router.case(case["id"], "haruto")["packet"]["transcript"]
    for path, body in (("notes", {"text": "one more thing"}), ("messages", {"text": "hi"})):
        r = router.client.post(f"/v1/cases/{case['id']}/{path}", headers=auth("haruto"),
                               json=body)
        assert r.status_code == 403 and "wrap-up" in r.json()["message"], r.text
    # After the window (15 min by default): nothing, as for any stranger.
    router.advance(61 + 1)
    for path in ("", "/events"):
        assert router.client.get(f"/v1/cases/{case['id']}{path}",
                                 headers=auth("haruto")).status_code == 404
    assert case["id"] not in router.client.get("/v1/cases", headers=auth("haruto")).text
    # The assignee and supervisors still see everything.
    assert router.case(case["id"], "lucas")["packet"]["transcript"]
    assert router.case(case["id"], "supervisor")["packet"]["transcript"]
    assert router.client.post(f"/v1/cases/{case['id']}/notes", headers=auth("lucas"),
                              json={"text": "noted"}).status_code == 201


def test_a_transfer_target_who_rejected_sees_nothing(router):
    router.available("haruto", "lucas", "mei")
    case = router.open_case(skills={"residency": 3}, transcript=TRANSCRIPT)
    _accept(router, case["id"], "haruto")
    r = router.client.post(f"/v1/cases/{case['id']}/transfer", headers=auth("haruto"),
                           json={"to_worker": "lucas", "note": "for you"})
    assert r.status_code == 200, r.text
    offer = _offer(router, case["id"])
    assert offer["worker_id"] == "lucas"
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/reject", headers=auth("lucas"),
                           json={"reason": "busy"})
    assert r.status_code == 200, r.text
    assert router.client.get(f"/v1/cases/{case['id']}", headers=auth("lucas")).status_code == 404
    assert router.client.post(f"/v1/cases/{case['id']}/notes", headers=auth("lucas"),
                              json={"text": "x"}).status_code == 404
    # A worker never offered the case has nothing either.
    assert router.client.get(f"/v1/cases/{case['id']}", headers=auth("ken")).status_code == 404


def test_wrapup_window_is_configured(make_router, tmp_path):
    import yaml

    from tests.service.conftest import config_copy

    cfg = config_copy(tmp_path)
    tokens = yaml.safe_load((cfg / "tokens.yaml").read_text())
    tokens["access"] = {"wrapup_minutes": 1}
    (cfg / "tokens.yaml").write_text(yaml.safe_dump(tokens))
    router = make_router(cfg)
    router.available("haruto")
    case = router.open_case(skills={"residency": 3})
    _accept(router, case["id"], "haruto")
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                           json={"status": "resolved"})
    assert r.status_code == 200, r.text
    router.advance(59)
    assert router.client.get(f"/v1/cases/{case['id']}", headers=auth("haruto")).status_code == 200
    router.advance(2)
    assert router.client.get(f"/v1/cases/{case['id']}", headers=auth("haruto")).status_code == 404


def test_audit_log_holds_sensitive_actions_for_admins_only(router):
    router.available("haruto", "lucas")
    a = router.open_case(skills={"residency": 3})
    _accept(router, a["id"], "haruto")
    # A supervisor reassigns haruto's case to lucas, then takes it; the holder closes it.
    r = router.client.post(f"/v1/cases/{a['id']}/transfer", headers=auth("sato-floor"),
                           json={"to_worker": "lucas", "note": "reassigned"})
    assert r.status_code == 200, r.text
    _accept(router, a["id"], "lucas")
    with router.client.websocket_connect("/v1/ws", headers=auth("sato-floor")) as desk:
        desk.receive_json()  # hello
        desk.send_json({"type": "presence", "presence": "available"})
        while desk.receive_json()["type"] != "presence":
            pass
        r = router.client.post(f"/v1/cases/{a['id']}/take", headers=auth("sato-floor"),
                               json={})
        assert r.status_code == 200, r.text
    r = router.client.post(f"/v1/cases/{a['id']}/close", headers=auth("sato-floor"),
                           json={"status": "resolved"})
    assert r.status_code == 200, r.text
    b = router.open_case(skills={"residency": 3})
    _accept(router, b["id"], "haruto")
    r = router.client.post(f"/v1/cases/{b['id']}/transfer", headers=auth("haruto"),
                           json={"skills": {"tax": 3}})
    assert r.status_code == 200, r.text

    assert router.client.get("/v1/audit", headers=auth("sato-floor")).status_code == 403
    assert router.client.get("/v1/audit", headers=auth("haruto")).status_code == 403
    r = router.client.get("/v1/audit", headers=auth("admin"))
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    acts = [(e["action"], e["actor"], e["case_id"]) for e in entries[::-1]
            if e["action"] != "token_new_address"]
    assert acts == [("reassign", "sato-floor", a["id"]), ("take", "sato-floor", a["id"]),
                    ("close", "sato-floor", a["id"]), ("transfer", "haruto", b["id"])], acts
    reassign = next(e for e in entries if e["action"] == "reassign")
    assert reassign["detail"]["from_worker"] == "haruto"
    assert reassign["detail"]["to_worker"] == "lucas"
    # First use of each token from an address (the test client's): once per subject.
    firsts = [e["actor"] for e in entries if e["action"] == "token_new_address"]
    assert sorted(firsts) == sorted(set(firsts)) and {"haruto", "sato-floor", "admin"} <= set(firsts)
    assert all(e["address"] for e in entries)


def _estop_event(case_id: str, seq: int, tool: str, args: dict, ts: float) -> dict:
    return {"event_id": f"kiosk-1-estop-{seq}", "case_id": case_id, "origin": "kiosk-1",
            "seq": seq, "ts": ts, "type": "action",
            "payload": {"tool": tool, "args": args, "ok": True}}


def test_device_estop_events_are_audited_and_malformed_ones_refused(router):
    """The same rule over REST /v1/events as over MQTT (tests/telepresence/test_estop_audit.py
    drives it end to end through a station and the data channel)."""
    case = router.open_case()
    at = router.clock.now()

    def send(seq: int, tool: str, args: dict):
        return router.client.post("/v1/events", headers=auth("kiosk-1"),
                                  json=_estop_event(case["id"], seq, tool, args, at))

    r = send(1, "estop", {"by": "haruto", "source": "data_channel", "reason": "worker",
                          "session": "s-1"})
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    r = send(2, "estop_reset", {})  # the device's own reset: "device" asked
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    # An action of another name is not an e-stop.
    assert send(3, "estop_help", {"by": ""}).status_code == 200
    # Who asked must be a name: a malformed e-stop is refused saying what to fix, and
    # audits nothing.
    r = send(4, "estop", {"by": "", "source": "somewhere"})
    assert r.status_code == 403 and "estop action: args.by" in r.text, r.text

    assert router.client.get("/v1/audit", headers=auth("kiosk-1")).status_code == 403
    assert router.client.get("/v1/audit", headers=auth("haruto")).status_code == 403
    r = router.client.get("/v1/audit", headers=auth("admin"))
    got = [(e["action"], e["actor"], e["case_id"], e["detail"]["device"], e["detail"]["at"])
           for e in r.json()["entries"][::-1] if e["action"].startswith("estop")]
    assert got == [("estop", "haruto", case["id"], "kiosk-1", at),
                   ("estop_reset", "device", case["id"], "kiosk-1", at)], got
