"""POST /v1/cases/{id}/messages: the connected worker writes to the resident."""

from __future__ import annotations

from tests.service.conftest import auth


def connected_case(router, worker: str = "haruto", device: str = "kiosk-1") -> dict:
    router.available(worker)
    case = router.open_case(device=device, skills={"residency": 3})
    offer = router.case(case["id"])["case"]["pending_offer"]
    assert offer["worker_id"] == worker
    r = router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth(worker))
    assert r.status_code == 200, r.text
    return case


def say(router, case_id: str, who: str, **body):
    return router.client.post(f"/v1/cases/{case_id}/messages", headers=auth(who), json=body)


def test_assigned_worker_message_is_recorded_as_a_human_turn(router):
    case = connected_case(router)
    r = say(router, case["id"], "haruto", text="  Your card is ready.\n")
    assert r.status_code == 201, r.text
    # No MQTT bridge in this app: recorded only.
    assert r.json() == {"event_id": r.json()["event_id"], "delivered_to": None}
    turn = router.events(case["id"])[-1]
    assert turn["event_id"] == r.json()["event_id"] and turn["type"] == "turn"
    assert turn["origin"] == "router"
    # Default language: the worker's strongest in the roster (haruto: ja 5, en 4).
    assert {k: turn["payload"][k] for k in ("speaker", "worker_id", "language", "text")} == {
        "speaker": "human", "worker_id": "haruto", "language": "ja",
        "text": "Your card is ready."}
    r = say(router, case["id"], "haruto", text="Window 3, please.", language="en")
    assert r.status_code == 201, r.text
    entry = router.case(case["id"], "haruto")["packet"]["transcript"][-1]
    assert (entry["speaker"], entry["worker_id"], entry["language"], entry["text"],
            entry["translated"]) == ("human", "haruto", "en", "Window 3, please.", None)


def test_only_the_assigned_worker_may_write(router):
    router.available("lucas")
    case = connected_case(router)
    before = len(router.events(case["id"]))
    for who, status in [("supervisor", 403), ("admin", 403), ("kiosk-1", 403),
                        ("ken", 404)]:  # ken cannot see the case: not told it exists
        r = say(router, case["id"], who, text="hello")
        assert r.status_code == status, (who, r.text)
    assert "not assigned to you" in say(router, case["id"], "supervisor", text="x").json()[
        "message"]
    # A worker holding an offer on the case (after a transfer) is not its worker yet; nor is
    # the one who transferred it away.
    r = router.client.post(f"/v1/cases/{case['id']}/transfer", headers=auth("haruto"),
                           json={"skills": {"tax": 3}, "note": "tax question"})
    assert r.status_code == 200 and r.json()["pending_offer"]["worker_id"] == "lucas"
    for who in ("lucas", "haruto"):
        r = say(router, case["id"], who, text="hello")
        assert r.status_code == 403, (who, r.text)
    assert [e["type"] for e in router.events(case["id"])[before:]] == ["transfer", "offer"]
    assert say(router, "no-such-case", "haruto", text="hello").status_code == 404


def test_case_must_be_connected(router):
    case = connected_case(router)
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                           json={"status": "resolved"})
    assert r.status_code == 200, r.text
    r = say(router, case["id"], "haruto", text="One more thing")
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "conflict"
    assert "is resolved, not connected" in body["message"] and "add a note" in body["message"]
    assert router.events(case["id"])[-1]["type"] == "outcome"


def test_bad_bodies_are_refused_and_nothing_written(router):
    case = connected_case(router)
    before = len(router.events(case["id"]))
    for body in [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 2001},
                 {"text": "hi", "language": "English"}, {"text": "hi", "to": "robot-1"},
                 {"text": 5}]:
        r = say(router, case["id"], "haruto", **body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"] == "invalid_request"
    assert say(router, case["id"], "haruto", text="x" * 2000).status_code == 201
    assert len(router.events(case["id"])) == before + 1
