"""Warm transfer (router/service/core/warm.py) on the real app with a manual clock: the first
worker keeps the case until the next person accepts; nobody in time → it stays with them,
with a typed reason; a decline keeps looking; closing cancels the search."""

from __future__ import annotations

from tests.service.conftest import auth, token
from tests.service.test_api import _connect, recv_until


def warm(router, case_id: str, who: str = "haruto", **body):
    return router.client.post(f"/v1/cases/{case_id}/warm-transfer", headers=auth(who),
                              json=body)


def test_first_worker_keeps_the_case_until_the_receiver_accepts(router):
    router.available("haruto", "ken")
    case = _connect(router, "haruto", skills={"residency": 3})
    with router.client.websocket_connect(
            "/v1/ws", headers={"Authorization": f"Bearer {token('ken')}"}) as ken:
        assert ken.receive_json()["type"] == "hello"
        r = warm(router, case["id"], to_worker="ken", note="Tax question: Ken knows it.")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        offer = recv_until(ken, "offer")
        assert offer["offer"]["case_id"] == case["id"]  # the real case, not the search's id
        assert offer["case"]["last_handoff"]["note"] == "Tax question: Ken knows it."
        # Meanwhile the case is still haruto's: connected, his chat works.
        got = router.case(case["id"])["case"]
        assert got["state"] == "connected" and got["assigned_worker"] == "haruto"
        r = router.client.post(f"/v1/cases/{case['id']}/messages", headers=auth("haruto"),
                               json={"text": "Un momento.", "language": "ja"})
        assert r.status_code == 201, r.text
        # The receiver reads the resident's words before accepting, then accepts.
        r = router.client.get(f"/v1/offers/{offer['offer']['offer_id']}/preview",
                              headers=auth("ken"))
        assert r.status_code == 200 and r.json()["case_id"] == case["id"]
        ken.send_json({"type": "accept", "offer_id": offer["offer"]["offer_id"]})
        accepted = recv_until(ken, "accepted")
        assert accepted["case"]["assigned_worker"] == "ken"
    got = router.case(case["id"])["case"]
    assert got["state"] == "connected" and got["assigned_worker"] == "ken"
    moves = [(h["kind"], h["from_owner"], h["to_owner"]) for h in got["handoffs"]][-2:]
    assert moves == [("transferred", "haruto", "ken"), ("accepted", "haruto", "ken")]
    people = {p["id"]: p for p in router.client.get(
        "/v1/directory", headers=auth("supervisor")).json()["people"]}
    assert people["haruto"]["load"] == {} and people["ken"]["load"] == {"chat": 1}


def test_nobody_in_time_the_case_stays_with_a_typed_reason(router):
    router.available("haruto")
    case = _connect(router, "haruto", skills={"residency": 3})
    with router.client.websocket_connect(
            "/v1/ws", headers={"Authorization": f"Bearer {token('haruto')}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
        r = warm(router, case["id"], language="zh", skills={"childcare": 5}, timeout_s=30,
                 note="Needs Chinese.")
        assert r.status_code == 200, r.text
        assert recv_until(ws, "transfer")["status"] == "pending"
        router.advance(31)
        back = recv_until(ws, "transfer")
        while back["status"] == "pending":
            back = recv_until(ws, "transfer")
        assert back["status"] == "returned" and back["reason"] == "no_one_accepted"
    got = router.case(case["id"])["case"]
    assert got["state"] == "connected" and got["assigned_worker"] == "haruto"
    notes = router.case(case["id"], "haruto")["packet"]["notes"]
    assert "Warm transfer not completed (no_one_accepted)" in notes[-1]["text"]
    alerts = router.client.get("/v1/alerts", headers=auth("supervisor")).json()["alerts"]
    assert alerts[-1]["kind"] == "transfer_failed" and alerts[-1]["reason"] == "no_one_accepted"
    # Asking twice while one is pending is refused; closing the case cancels a pending one.
    assert warm(router, case["id"], to_worker="ken").status_code == 200
    r = warm(router, case["id"], to_worker="ken")
    assert r.status_code == 409 and r.json()["reason"] == "transfer_pending"
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                           json={"status": "resolved"})
    assert r.status_code == 200
    assert router.core.warm.by_case == {}


def test_a_decline_keeps_looking(router):
    router.available("haruto", "lucas", "mei")
    case = _connect(router, "haruto", skills={"residency": 3})
    r = warm(router, case["id"], skills={"welfare": 4}, workflow="contact_center")
    assert r.status_code == 200, r.text
    first = r.json()["offered_to"]
    assert first in ("lucas", "mei")
    offer = router.core.offers_of(first)[0]
    r = router.client.post(f"/v1/offers/{offer.offer_id}/reject", headers=auth(first),
                           json={"reason": "busy with a walk-in"})
    assert r.status_code == 200, r.text
    second = router.core.warm.by_case[case["id"]].offered_to
    assert second in ("lucas", "mei") and second != first
    assert router.case(case["id"])["case"]["assigned_worker"] == "haruto"


def consult(router, case_id: str, who: str, text: str):
    return router.client.post(f"/v1/cases/{case_id}/consult", headers=auth(who),
                              json={"text": text})


def test_the_two_workers_consult_before_and_after_the_handover(router):
    router.available("haruto", "ken", "emma")
    case = _connect(router, "haruto", skills={"residency": 3})
    # No transfer yet: nobody to consult.
    r = consult(router, case["id"], "haruto", "Ken, a minute?")
    assert r.status_code == 409 and r.json()["reason"] == "no_consult"
    with router.client.websocket_connect(
            "/v1/ws", headers={"Authorization": f"Bearer {token('ken')}"}) as ken, \
            router.client.websocket_connect(
            "/v1/ws", headers={"Authorization": f"Bearer {token('haruto')}"}) as haruto:
        assert ken.receive_json()["type"] == "hello"
        assert haruto.receive_json()["type"] == "hello"
        assert warm(router, case["id"], to_worker="ken").status_code == 200
        offer = recv_until(ken, "offer")
        # Pending: haruto asks, ken answers before accepting; both desks get both messages.
        r = consult(router, case["id"], "haruto", "She asks about a tax refund; OK for you?")
        assert r.status_code == 200, r.text
        for ws in (ken, haruto):
            got = recv_until(ws, "consult")
            assert (got["from"], got["to"], got["case_id"]) == ("haruto", "ken", case["id"])
            assert got["text"] == "She asks about a tax refund; OK for you?"
        assert consult(router, case["id"], "ken", "Yes, send her over.").status_code == 200
        assert recv_until(haruto, "consult")["text"] == "Yes, send her over."
        # A third worker is not part of it; an empty message says what to do.
        r = consult(router, case["id"], "emma", "Can I help?")
        assert r.status_code == 409 and r.json()["reason"] == "no_consult"
        r = consult(router, case["id"], "haruto", "   ")
        assert r.status_code == 422 and "empty" in r.json()["message"]
        # Ken accepts (the handover); the two can still consult while the case is open.
        ken.send_json({"type": "accept", "offer_id": offer["offer"]["offer_id"]})
        assert recv_until(ken, "accepted")["case"]["assigned_worker"] == "ken"
        assert consult(router, case["id"], "ken", "Which form did she bring?").status_code == 200
        assert recv_until(haruto, "consult")["from"] == "ken"
    # Never a case event, never the device's business.
    assert not [e for e in router.events(case["id"]) if "consult" in str(e["payload"]).lower()
                or e["type"] == "consult"]
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("ken"),
                           json={"status": "resolved"})
    assert r.status_code == 200
    r = consult(router, case["id"], "haruto", "Thanks!")
    assert r.status_code == 409 and r.json()["reason"] == "no_consult"
    assert router.core.warm.after == {}
