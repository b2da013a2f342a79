"""The workspace REST (router/service/routes_workspace.py) on the real app with a manual
clock: directory, offer preview with the resident's words, why-not-matched per step, assign,
wrap-up counting in capacity, acknowledging any alert, and trends after a simulated hour."""

from __future__ import annotations

from tests.service.conftest import auth, config_copy
from tests.service.test_api import _connect


def test_workspace_config_and_directory(router):
    r = router.client.get("/v1/workspace", headers=auth("haruto"))
    assert r.status_code == 200, r.text
    w = r.json()
    assert "answered" in [d["code"] for d in w["dispositions"]]
    assert w["canned"]["ja"] and w["wrapup_capacity_s"] == 30 and w["handback_limit"] == 1
    assert router.client.get("/v1/workspace", headers=auth("kiosk-1")).status_code == 403

    router.available("haruto")
    _connect(router, "haruto", skills={"residency": 3})
    people = {p["id"]: p for p in router.client.get(
        "/v1/directory", headers=auth("ken")).json()["people"]}
    assert people["haruto"]["state"] == "busy" and people["haruto"]["load"] == {"chat": 1}
    assert people["haruto"]["since"] is not None
    assert people["lucas"]["state"] == "offline" and people["lucas"]["can_take"] == []


def test_offer_preview_has_the_residents_words_and_why(router):
    router.available("haruto")
    case = router.open_case(skills={"residency": 3}, transcript=[
        {"speaker": "resident", "language": "ja", "text": "在留カードを更新したいです。",
         "translated": "I want to renew my residence card.", "translated_language": "en"}])
    offer = router.case(case["id"])["case"]["pending_offer"]
    r = router.client.get(f"/v1/offers/{offer['offer_id']}/preview", headers=auth("haruto"))
    assert r.status_code == 200, r.text
    words = r.json()["words"]
    assert words[-1]["text"] == "在留カードを更新したいです。"
    assert words[-1]["translated"] == "I want to renew my residence card."
    # Only the person offered may read it.
    r = router.client.get(f"/v1/offers/{offer['offer_id']}/preview", headers=auth("lucas"))
    assert r.status_code == 404


def test_why_not_names_the_unmet_requirement_then_assign(router):
    router.available("ken", "aiko")
    # Residency 5 in Japanese: only haruto has it, and he is offline.
    case = router.open_case(skills={"residency": 5}, workflow="contact_center")
    r = router.client.get(f"/v1/cases/{case['id']}/why-not", headers=auth("supervisor"))
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert [s["step"] for s in steps] == ["specialist_in_language", "agent_in_language",
                                          "any_agent_with_live_translation"]
    first = steps[0]
    assert first["current"] and first["matched"] == []
    assert "kind: specialist" in first["unmet"]
    assert "skill residency at level 5 or more" in first["unmet"]
    assert steps[2]["matched"] == ["ken"]  # the last step drops language and skills
    assert router.client.get(f"/v1/cases/{case['id']}/why-not",
                             headers=auth("ken")).status_code == 403

    # The supervisor assigns it to ken: connected at once, audited, offer gone.
    r = router.client.post(f"/v1/cases/{case['id']}/assign", headers=auth("supervisor"),
                           json={"worker_id": "ken", "note": "Ken knows this resident."})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["state"] == "connected" and got["assigned_worker"] == "ken"
    packet = router.case(case["id"], "ken")["packet"]
    note = packet["notes"][-1]
    assert (note["author"], note["text"]) == ("floor-supervisor", "Ken knows this resident.")
    results = [e["payload"] for e in router.events(case["id"]) if e["type"] == "offer_result"]
    assert results[-1]["status"] == "accepted" and results[-1]["worker_id"] == "ken"
    # Assigning a connected case is refused with a reason.
    r = router.client.post(f"/v1/cases/{case['id']}/assign", headers=auth("supervisor"),
                           json={"worker_id": "aiko"})
    assert r.status_code == 409 and r.json()["reason"] == "not_waiting"


def test_assign_withdraws_someone_elses_pending_offer(router):
    router.available("haruto", "lucas")
    case = router.open_case(skills={"residency": 3})
    offer = router.case(case["id"])["case"]["pending_offer"]
    assert offer["worker_id"] == "haruto"
    r = router.client.post(f"/v1/cases/{case['id']}/assign", headers=auth("supervisor"),
                           json={"worker_id": "lucas"})
    assert r.status_code == 200, r.text
    assert r.json()["assigned_worker"] == "lucas"
    results = [e["payload"] for e in router.events(case["id"]) if e["type"] == "offer_result"]
    assert (results[0]["worker_id"], results[0]["status"]) == ("haruto", "withdrawn")
    # Refusals: offline person, unknown person.
    other = router.open_case(skills={"residency": 3})
    r = router.client.post(f"/v1/cases/{other['id']}/assign", headers=auth("supervisor"),
                           json={"worker_id": "mei"})
    assert r.status_code == 409 and r.json()["reason"] == "target_unavailable"
    r = router.client.post(f"/v1/cases/{other['id']}/assign", headers=auth("supervisor"),
                           json={"worker_id": "nobody"})
    assert r.status_code == 404


def test_wrapup_counts_in_capacity_until_done_or_timeout(router):
    router.available("haruto")
    first = _connect(router, "haruto", skills={"residency": 3}, channel="voice")
    r = router.client.post(f"/v1/cases/{first['id']}/close", headers=auth("haruto"),
                           json={"status": "resolved", "code": "answered"})
    assert r.status_code == 200, r.text
    # Haruto (video/voice capacity 1) is in wrap-up: a new case waits for him.
    second = router.open_case(skills={"residency": 5}, workflow="contact_center",
                              channel="voice")
    assert router.case(second["id"])["case"]["pending_offer"] is None
    people = {p["id"]: p for p in router.client.get(
        "/v1/directory", headers=auth("supervisor")).json()["people"]}
    assert people["haruto"]["state"] == "wrap-up"
    r = router.client.post(f"/v1/cases/{first['id']}/wrapup/done", headers=auth("haruto"))
    assert r.status_code == 200, r.text
    assert router.case(second["id"])["case"]["pending_offer"]["worker_id"] == "haruto"
    assert router.client.post(f"/v1/cases/{first['id']}/wrapup/done",
                              headers=auth("haruto")).status_code == 409


def test_wrapup_ends_by_itself(router):
    router.available("haruto")
    first = _connect(router, "haruto", skills={"residency": 3}, channel="voice")
    router.client.post(f"/v1/cases/{first['id']}/close", headers=auth("haruto"),
                       json={"status": "resolved"})
    second = router.open_case(skills={"residency": 5}, workflow="contact_center",
                              channel="voice")
    assert router.case(second["id"])["case"]["pending_offer"] is None
    router.advance(31)
    assert router.case(second["id"])["case"]["pending_offer"]["worker_id"] == "haruto"


def test_any_router_alert_can_be_acknowledged(make_router, tmp_path):
    router = make_router(config_copy(tmp_path, offer_timeout_s=5, away_after_timeouts=1))
    router.available("haruto")
    router.open_case(skills={"residency": 3})
    router.advance(6)  # the offer times out: haruto is set away, an alert is raised
    alerts = router.client.get("/v1/alerts", headers=auth("supervisor")).json()["alerts"]
    away = [a for a in alerts if a["kind"] == "worker_away"][-1]
    assert away["alert_id"].startswith("al-")
    r = router.client.post(f"/v1/alerts/{away['alert_id']}/ack", headers=auth("supervisor"))
    assert r.status_code == 200 and r.json()["alert"]["acknowledged_by"] == "floor-supervisor"


def test_trends_after_a_simulated_hour(make_router, tmp_path):
    """Cases through the real app and store, an hour of manual clock: each 10-minute bucket
    has its answered cases, the waits behind ASA and service level, and the escalations."""
    router = make_router(config_copy(tmp_path, offer_timeout_s=120))
    router.available("haruto")
    waits = []
    for i in range(6):
        case = router.open_case(skills={"residency": 3})
        offer = router.case(case["id"])["case"]["pending_offer"]
        wait = 5 + 10 * i  # 5 s … 55 s before the accept
        router.advance(wait)
        waits.append(wait)
        router.client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth("haruto"))
        router.client.post(f"/v1/cases/{case['id']}/close", headers=auth("haruto"),
                           json={"status": "resolved", "ai_verdict": "wrong" if i % 2 else "right"})
        router.client.post(f"/v1/cases/{case['id']}/wrapup/done", headers=auth("haruto"))
        router.advance(600 - wait)
    r = router.client.get("/v1/trends?hours=1&bucket_s=600", headers=auth("supervisor"))
    assert r.status_code == 200, r.text
    t = r.json()
    buckets = t["buckets"]
    assert len(buckets) == 6
    assert [b["answered"] for b in buckets] == [1] * 6
    assert [b["asa_s"] for b in buckets] == waits
    assert [b["service_level"] for b in buckets] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # SL 20 s
    assert all(b["escalation_rate"] == 1.0 for b in buckets)
    # An escalation the human says the AI got wrong is a true positive.
    assert [b["escalation_precision"] for b in buckets] == [0.0, 1.0] * 3
    assert t["sites"] == ["city-office"] and t["queues"] == ["contact_center"]
    none = router.client.get("/v1/trends?hours=1&bucket_s=600&site=north-branch",
                             headers=auth("supervisor")).json()
    assert sum(b["answered"] for b in none["buckets"]) == 0
    assert router.client.get("/v1/trends?hours=48&bucket_s=60",
                             headers=auth("supervisor")).status_code == 422
    assert router.client.get("/v1/trends", headers=auth("haruto")).status_code == 403
