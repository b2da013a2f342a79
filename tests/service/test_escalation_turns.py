"""Resident turns through ``POST /v1/cases/{id}/turns`` on the real layer (embedding model
included): every request for a person in the held-out corpus is routed to workers with the
resident's language, not to a specialist pool; bad input gets a clear 422 or a decision."""

from __future__ import annotations

import pytest

from router.config import load_config
from tests.service.conftest import REPO, auth
from tests.transition.corpus import HELDOUT_DIR, load_corpus

PERSON = [(c.language, t.say, t.pivot) for c in load_corpus(HELDOUT_DIR) for t in c.turns
          if t.category == "person"]


def say(router, case_id, text, language="en", translated=None):
    body = {"text": text, "language": language}
    if translated is not None:
        body["translated"] = translated
    return router.client.post(f"/v1/cases/{case_id}/turns", json=body, headers=auth("kiosk-1"))


def test_every_request_for_a_person_goes_to_workers_with_the_language(router):
    cfg = load_config(REPO / "config")
    flag_skills = {r.id: r.skill for r in cfg.transition.policy.flags if r.skill}
    specialists_only = {sk for sk in cfg.skills.skills if sk != "general"}
    assert len(PERSON) >= 75
    wrong = []
    for lang, text, pivot in PERSON:
        case = router.open_case(language=lang, escalate=False)
        r = say(router, case["id"], text, lang, pivot)
        assert r.status_code == 200, r.text
        out = r.json()
        if out["decision"]["decision"] != "escalate":
            wrong.append((text, "not escalated", out["decision"]["reasons"]))
            continue
        queued = [e for e in router.events(case["id"]) if e["type"] == "queued"][-1]["payload"]
        req = queued["requirement"]
        flags = [f for e in router.events(case["id"]) if e["type"] == "signal"
                 and e["payload"]["name"] == "policy_flags"
                 for f in e["payload"]["detail"]["flags"]]
        allowed = {flag_skills[f] for f in flags if f in flag_skills}
        extra = set(req["skills"]) & specialists_only - allowed
        if req["language"] != lang or extra:
            wrong.append((text, out["intent"], req["skills"], queued["reasons"],
                          out["decision"]["numbers"]["confidence"]))
    assert not wrong, wrong


def test_a_polite_request_reaches_an_agent_with_the_language(router):
    # Previously "I want to talk to a person" scored as a complaint and waited for the one
    # complaints specialist; now the case goes to the general pool in the resident's language.
    router.available("sofia")  # es 5, general 3; no complaints skill
    router.available("haruto")  # the complaints specialist, no Spanish
    case = router.open_case(language="es", escalate=False)
    out = say(router, case["id"], "Disculpe, ¿podría hablar con alguien de la oficina?", "es",
              "Excuse me, could I speak with someone from the office?").json()
    assert out["decision"]["decision"] == "escalate"
    router.advance(46)  # past the specialists-only first step
    offer = router.case(case["id"])["case"]["pending_offer"]
    assert offer is not None and offer["worker_id"] == "sofia"
    queued = [e for e in router.events(case["id"]) if e["type"] == "queued"][-1]["payload"]
    assert queued["requirement"]["skills"] == {"general": 2}
    assert any(r.startswith("routing:general") for r in queued["reasons"]) \
        or out["intent"] is None


@pytest.mark.parametrize("text,language,translated", [
    ("", "en", None),
    ("   \n\t  ", "en", None),
    ("\x00\x00", "en", None),
    ("a" * 10_000, "en", None),
    ("word " * 2000, "es", "word " * 2000),
])
def test_bad_turns_get_a_clear_422(router, text, language, translated):
    case = router.open_case(language=language, escalate=False)
    r = say(router, case["id"], text, language, translated)
    assert r.status_code == 422, r.text
    body = r.json()
    assert "turn rejected" in body["message"] and body["message"].split(":")[-1].strip()
    assert [e["type"] for e in router.events(case["id"])] == ["opened"]


@pytest.mark.parametrize("text,language,translated", [
    ("😀😀😀🙏", "en", None),
    ("🚑🚑", "ja", "🚑🚑"),
    ("私はpersonと話したい quiero hablar 你好", "ja", "I want to talk to a person, hello"),
    ("help\x07\x1b[31m me\x0b please\u202e", "en", None),
    ("ｔａｌｋ　ｔｏ　ａ　ｐｅｒｓｏｎ", "en", None),
    ("\u200b\u200bhello\u200b", "en", None),
])
def test_odd_turns_get_a_decision(router, text, language, translated):
    case = router.open_case(language=language, escalate=False)
    r = say(router, case["id"], text, language, translated)
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["decision"] in ("continue_ai", "assist", "escalate")
    # The router is still fine: a routine question right after is answered.
    case2 = router.open_case(language="en", escalate=False)
    r = say(router, case2["id"], "What time does the office close today?")
    assert r.status_code == 200 and r.json()["decision"]["decision"] == "continue_ai"
