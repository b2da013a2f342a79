"""Resident turns through the router: the AI answers, escalates with a full packet, and goes
silent once a person is connected."""

from __future__ import annotations

import json

import jsonschema

from tests.service.conftest import REPO, auth, token
from tests.service.test_api import recv_until


def say(router, case_id, text, language="en", translated=None, device="kiosk-1"):
    body = {"text": text, "language": language}
    if translated is not None:
        body["translated"] = translated
    return router.client.post(f"/v1/cases/{case_id}/turns", json=body, headers=auth(device))


def test_routine_question_is_answered_by_the_ai(router):
    case = router.open_case(language="en", escalate=False)
    r = say(router, case["id"], "What time does the office close today?")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["decision"]["decision"] == "continue_ai"
    assert out["ai_silent"] is False and out["reply"]["text"]
    assert out["handoff"] is None
    got = router.case(case["id"])["case"]
    assert got["state"] == "ai_active"
    types = [e["type"] for e in router.events(case["id"])]
    assert types[:2] == ["opened", "turn"] and "decision" in types and types[-1] == "turn"
    assert types.count("signal") >= 5


def test_request_for_a_person_escalates_with_the_whole_story(router):
    case = router.open_case(language="es", escalate=False, resident="res-77")
    r = say(router, case["id"], "¿Dónde pago mis impuestos?", "es",
            "Where do I pay my taxes?")
    assert r.json()["decision"]["decision"] == "continue_ai"
    r = say(router, case["id"], "Prefiero hablar con una persona, por favor.", "es",
            "I'd rather speak to a real person, please.")
    out = r.json()
    assert out["decision"]["decision"] == "escalate", out
    assert out["ai_silent"] is True and out["reply"] is None
    assert out["handoff"]["status"] == "connecting"
    assert out["decision"]["reasons"]
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('sofia')}"}) as ws:
        ws.receive_json()
        router.available("sofia")  # es 5: step 2 of contact_center takes agents
        router.advance(46)
        offer = recv_until(ws, "offer")
        assert offer["case"]["id"] == case["id"]
        assert offer["case"]["last_handoff"]["kind"] == "escalated"
        ws.send_json({"type": "accept", "offer_id": offer["offer"]["offer_id"]})
        packet = recv_until(ws, "accepted")["packet"]
    texts = [(t["speaker"], t["text"], t["translated"]) for t in packet["transcript"]]
    assert ("resident", "¿Dónde pago mis impuestos?", "Where do I pay my taxes?") in texts
    assert any(s == "ai" for s, _, _ in texts)  # what the AI said is there too
    assert packet["escalation"]["decision"]["decision"] == "escalate"
    assert "sentiment" in packet["escalation"]["signals"]
    assert packet["summary"] and isinstance(packet["next_steps"], list)
    assert packet["handoffs"][-1]["to_owner"] == "sofia"
    schema = json.loads((REPO / "docs/schemas/context-packet-1.0.json").read_text())
    jsonschema.validate(packet, schema)


def test_ai_stays_silent_once_a_person_is_connected(router):
    router.available("emma")
    case = router.open_case(language="en", escalate=False)
    out = say(router, case["id"], "I want to talk to a human right now.").json()
    assert out["decision"]["decision"] == "escalate"
    # A request for a person with no certain intent needs the general skill: no specialist
    # has it, so agents take it from the second step (45 s); the estimate says so.
    assert out["handoff"]["wait_estimate_s"] == 45
    router.advance(46)
    offer = router.case(case["id"])["case"]["pending_offer"]
    assert offer["worker_id"] == "emma"
    router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("emma"))
    before = [e for e in router.events(case["id"]) if e["type"] == "turn"
              and e["payload"]["speaker"] == "ai"]
    out = say(router, case["id"], "What time does the office close today?").json()
    assert out["ai_silent"] is True and out["reply"] is None
    after = [e for e in router.events(case["id"]) if e["type"] == "turn"
             and e["payload"]["speaker"] == "ai"]
    assert after == before  # no AI turn reached the resident
    assert router.case(case["id"])["case"]["state"] == "connected"


def test_bad_turns_are_rejected_and_nothing_else_breaks(router):
    case = router.open_case(language="en", escalate=False)
    for body, code in [({"text": "", "language": "en"}, "empty"),
                       ({"text": "hola", "language": "fr"}, "language"),
                       ({"text": "x" * 5000, "language": "en"}, "too_long")]:
        r = router.client.post(f"/v1/cases/{case['id']}/turns", json=body,
                               headers=auth("kiosk-1"))
        assert r.status_code == 422, (body, r.text)
        assert "turn rejected" in r.json()["message"]
    assert [e["type"] for e in router.events(case["id"])] == ["opened"]
    r = say(router, case["id"], "What documents do I need to register my new address?")
    assert r.status_code == 200 and r.json()["decision"]["decision"] == "continue_ai"
    # No translation from the edge: the multilingual model reads the resident's own words.
    r = say(router, case["id"], "¿Qué papeles necesito para registrar mi domicilio?", "es")
    assert r.status_code == 200 and r.json()["decision"]["decision"] == "continue_ai", r.text
    turn = [e for e in router.events(case["id"]) if e["type"] == "turn"][-2]["payload"]
    assert turn["language"] == "es" and turn["translated"] is None
    r = router.client.post("/v1/cases/c-nope/turns", json={"text": "hi", "language": "en"},
                           headers=auth("kiosk-1"))
    assert r.status_code == 404


def test_kpis_are_served(router):
    router.available("emma")
    case = router.open_case(language="en", escalate=False)
    say(router, case["id"], "I want to talk to a human right now.")
    router.advance(46)
    offer = router.case(case["id"])["case"]["pending_offer"]
    router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("emma"))
    router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("emma"),
                       json={"status": "resolved", "ai_verdict": "wrong"})
    k = router.client.get("/v1/kpis", headers=auth("supervisor"))
    assert k.status_code == 200, k.text
    body = k.json()
    assert body["cases"] == 1 and body["escalation_rate"] == 1.0
    assert router.client.get("/v1/kpis", headers=auth("emma")).status_code == 403


def test_escalated_case_carries_the_recognized_intent(router):
    # Opened by the device without an intent: the assistant's is the only one there is.
    case = router.open_case(language="en", escalate=False)
    assert case["intent"] is None
    out = say(router, case["id"], "My residence card expires next month, how do I renew "
              "it?").json()
    assert out["decision"]["decision"] == "escalate" and out["intent"]
    got = router.case(case["id"])
    assert got["case"]["state"] == "queued"
    assert got["case"]["intent"] == out["intent"] == got["packet"]["intent"]
    queued = [e for e in router.events(case["id"]) if e["type"] == "queued"][-1]
    assert queued["payload"]["intent"] == out["intent"]
