"""A supervisor takes a connected case themselves (POST /v1/cases/{id}/take): a warm transfer
to their own worker id, accepted at once, worked from their desk's WebSocket like a worker's."""

from __future__ import annotations

import yaml

from router.config import load_config
from tests.service.conftest import auth, config_copy, token
from tests.service.test_api import _connect, recv_until


def without_staff_languages(tmp_path):
    """config/ with floor-supervisor's languages removed: a supervisor off the roster."""
    cfg = config_copy(tmp_path)
    tokens = yaml.safe_load((cfg / "tokens.yaml").read_text())
    entry = next(t for t in tokens["tokens"] if t["subject"] == "floor-supervisor")
    del entry["languages"]
    (cfg / "tokens.yaml").write_text(yaml.safe_dump(tokens, allow_unicode=True))
    return cfg


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


def test_a_supervisor_off_workers_yaml_takes_a_case_and_works_it(router):
    """floor-supervisor is not in workers.yaml: their tokens.yaml entry names the languages
    they work in, so they join the roster as floor staff, take a case and close it."""
    assert "floor-supervisor" not in {w["id"] for w in yaml.safe_load(
        open(load_config().directory + "/workers.yaml"))["workers"]}
    assert router.core.presence_of("floor-supervisor") is not None
    router.available("haruto")
    case = _connect(router, "haruto", skills={"residency": 3})
    r = take(router, case["id"], who="supervisor")
    assert r.status_code == 409 and r.json()["reason"] == "taker_unavailable"  # desk closed
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('supervisor')}"}) as desk:
        assert desk.receive_json()["role"] == "supervisor"
        desk.send_json({"type": "presence", "presence": "available"})
        assert recv_until(desk, "presence")["presence"] == "available"
        r = take(router, case["id"], who="supervisor", note="Mine now.")
        assert r.status_code == 200, r.text
        assert r.json()["assigned_worker"] == "floor-supervisor"
        mine = recv_until(desk, "case")["case"]
        while mine["id"] != case["id"] or mine["state"] != "connected":
            mine = recv_until(desk, "case")["case"]
        assert mine["assigned_worker"] == "floor-supervisor"
        r = router.client.post(f"/v1/cases/{case['id']}/messages", headers=auth("supervisor"),
                               json={"text": "I'm the floor supervisor, I will help you."})
        assert r.status_code == 201, r.text
    people = router.client.get("/v1/directory", headers=auth("supervisor")).json()["people"]
    me = next(p for p in people if p["id"] == "floor-supervisor")
    assert me["kind"] == "floor_staff" and me["languages"] == {"ja": 4, "en": 4}
    r = router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("supervisor"),
                           json={"status": "resolved", "ai_verdict": "right"})
    assert r.status_code == 200 and r.json()["state"] == "resolved"


def test_a_supervisor_without_languages_is_refused_and_told_what_to_do(make_router, tmp_path):
    router = make_router(without_staff_languages(tmp_path))
    assert router.core.presence_of("floor-supervisor") is None
    router.available("haruto")
    case = _connect(router, "haruto", skills={"residency": 3})
    r = take(router, case["id"], who="supervisor")
    assert r.status_code == 403 and r.json()["reason"] == "not_in_roster"
    assert "config/tokens.yaml" in r.json()["message"]
    assert "config/workers.yaml" in r.json()["message"]
    with router.client.websocket_connect("/v1/ws", headers={"Authorization": f"Bearer {token('supervisor')}"}) as desk:
        desk.receive_json()
        desk.send_json({"type": "presence", "presence": "available"})
        err = recv_until(desk, "error")
    assert err["request"] == "presence" and err["status"] == 403
    assert "not in the worker roster" in err["message"]
