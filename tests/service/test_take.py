"""A supervisor takes a connected case themselves (POST /v1/cases/{id}/take): a warm transfer
to their own worker id, accepted at once, worked from their desk's WebSocket like a worker's."""

from __future__ import annotations

from tests.service.conftest import auth, token
from tests.service.test_api import _connect, recv_until


def take(router, case_id: str, who: str = "sato-floor", **body):
    return router.client.post(f"/v1/cases/{case_id}/take", headers=auth(who), json=body)


def test_supervisor_takes_a_case_and_works_it_at_the_desk(router):
    router.available("haruto")
    case = _connect(router, "haruto", skills={"residency": 3})
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('haruto')}"}) as haruto, \
            router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('sato-floor')}"}) as desk:
        haruto.receive_json()
        hello = desk.receive_json()
        assert hello["role"] == "supervisor" and hello["presence"] == "offline"
        desk.send_json({"type": "presence", "presence": "available"})
        assert recv_until(desk, "presence")["presence"] == "available"

        r = take(router, case["id"], note="I will finish this one.")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["state"] == "connected" and got["assigned_worker"] == "sato-floor"
        # The desk hears the case is theirs; the worker who had it hears it moved on.
        mine = recv_until(desk, "case")["case"]
        while mine["id"] != case["id"] or mine["state"] != "connected":
            mine = recv_until(desk, "case")["case"]
        assert mine["assigned_worker"] == "sato-floor"
        gone = recv_until(haruto, "case")["case"]
        assert gone["id"] == case["id"] and gone["assigned_worker"] == "sato-floor"

    packet = router.case(case["id"], "sato-floor")["packet"]
    moves = [(h["kind"], h["from_owner"], h["to_owner"]) for h in packet["handoffs"]]
    assert moves[-2:] == [("transferred", "haruto", "sato-floor"),
                          ("accepted", "haruto", "sato-floor")]
    assert packet["notes"][-1]["author"] == "sato-floor"
    assert packet["notes"][-1]["text"] == "I will finish this one."
    transfer = [e for e in router.events(case["id"]) if e["type"] == "transfer"][-1]
    assert transfer["payload"]["to_worker"] == "sato-floor"
    # Haruto no longer owns it; the supervisor closes it like any worker.
    assert router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                              json={}).status_code == 403
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("sato-floor"),
                           json={"status": "resolved", "ai_verdict": "right"})
    assert r.status_code == 200 and r.json()["state"] == "resolved"


def test_take_refusals_say_what_to_do_and_change_nothing(router):
    router.available("haruto", "lucas")
    case = _connect(router, "haruto", skills={"residency": 3})
    before = len(router.events(case["id"]))

    r = take(router, case["id"], who="ken")
    assert r.status_code == 403 and "supervisor" in r.json()["message"]
    r = take(router, case["id"], who="supervisor")  # floor-supervisor: not on the roster
    assert r.status_code == 403 and r.json()["reason"] == "not_in_roster"
    assert "worker roster" in r.json()["message"] and "config/workers.yaml" in r.json()["message"]
    r = take(router, case["id"])  # sato-floor is offline: no desk open
    assert r.status_code == 409 and r.json()["reason"] == "taker_unavailable"
    assert "/desk" in r.json()["message"]
    assert take(router, "c-nope").status_code == 404

    router.available("sato-floor")
    waiting = router.open_case(skills={"childcare": 4})  # mei is offline: it waits
    r = take(router, waiting["id"])
    assert r.status_code == 409 and r.json()["reason"] == "not_connected"
    portuguese = _connect(router, "lucas", language="pt", skills={"tax": 3})
    r = take(router, portuguese["id"])
    assert r.status_code == 422 and r.json()["reason"] == "language"
    assert "you do not speak pt" in r.json()["message"]

    got = router.case(case["id"])["case"]
    assert got["state"] == "connected" and got["assigned_worker"] == "haruto"
    assert len(router.events(case["id"])) == before
    assert take(router, case["id"]).status_code == 200
    r = take(router, case["id"])
    assert r.status_code == 409 and r.json()["reason"] == "already_yours"


def test_supervisor_off_the_roster_is_told_at_the_desk(router):
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('supervisor')}"}) as desk:
        desk.receive_json()
        desk.send_json({"type": "presence", "presence": "available"})
        err = recv_until(desk, "error")
    assert err["request"] == "presence" and err["status"] == 403
    assert "not in the worker roster" in err["message"]
