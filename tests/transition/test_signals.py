"""Per-turn signals: phrases per language, sentiment, flags, misunderstanding, time."""

from __future__ import annotations

import pytest

from router.assistant.base import AssistantReply, DialogState
from router.signals import PhraseMatcher, SignalState, normalize
from tests.transition.conftest import T0


def reply(intent="office_hours", conf=0.9, oos=0.05, **kw):
    return AssistantReply(assistant="builtin", text="ok", language="en", intent=intent,
                          raw_confidence=conf, out_of_scope=oos, **kw)


def assess(layer, text, language="en", pivot=None, r=None, state=None, at=T0 + 30):
    turn = layer.accept(text, language, pivot_text=pivot, at=at)
    return layer.signals.assess(turn, r or reply(), state or SignalState(opened_at=T0))


@pytest.mark.parametrize("language,text,pivot", [
    ("en", "Can I speak to a person please?", None),
    ("en", "I want a REAL PERSON", None),
    ("ja", "人と話したいです", "I want to talk to people"),
    ("ja", "担当者と話せますか", "Can I talk with the responsible party"),
    ("es", "Quiero hablar con una persona", "I want to talk with someone"),
    ("es", "QUIERO HABLAR CON UN AGENTE", "I want to talk with an agent"),
    ("pt", "Quero falar com um atendente", "I want to speak with an attendant"),
    ("zh", "我要转人工", "I want manual transfer"),
])
def test_asked_for_person_in_each_language(layer, language, text, pivot):
    sig, _ = assess(layer, text, language, pivot)
    assert sig.asked_for_person is not None


@pytest.mark.parametrize("language,text,pivot", [
    ("en", "I want to complain about a staff member", None),
    ("zh", "人工智能是什么", "What is artificial intelligence"),
    pytest.param("pt", "O atendente foi rude", "The attendant was rude", marks=pytest.mark.xfail(
        strict=True, reason="known false positive of the semantic person detector at recall "
        ">= 0.98 ('atendente' ~ 'quero falar com um atendente'; precision 0.83 on validation, "
        "docs/transition.md); the turn escalates as a complaint anyway")),
    ("es", "¿A qué hora abren?", "What time do you open?"),
])
def test_no_false_request_for_person(layer, language, text, pivot):
    sig, _ = assess(layer, text, language, pivot)
    assert sig.asked_for_person is None


def test_request_heard_in_the_translation_only(layer):
    # The Spanish list does not have this wording; the pivot translation carries it.
    sig, _ = assess(layer, "Páseme con alguien de carne y hueso", "es",
                    "Put me through to a real person")
    assert sig.asked_for_person == "real person"


def test_phrase_matching_folds_case_width_and_accents():
    m = PhraseMatcher({"es": ["pérdida de tiempo"], "ja": ["オペレーター"], "en": ["agent"]})
    assert m.match(normalize("Es una PERDIDA de TIEMPO"), "es") == "pérdida de tiempo"
    assert m.match(normalize("ｵﾍﾟﾚｰﾀｰをお願いします"), "ja") == "オペレーター"
    assert m.match(normalize("the agents"), "en") is None  # whole words for Latin scripts
    assert m.match(normalize("an agent, please"), "en") == "agent"
    assert m.match("anything", "fr") is None
    dv = PhraseMatcher({"ja": ["DV"]})
    assert dv.match(normalize("ＤＶを受けています"), "ja") == "DV"
    assert dv.match(normalize("DVDを借りたい"), "ja") is None


def test_escalation_phrase_caps_sentiment(layer):
    calm, _ = assess(layer, "I see, where is the counter?")
    assert calm.escalation_phrase is None and calm.sentiment_band in ("calm", "pleased")
    sig, _ = assess(layer, "Ya lo dije tres veces", "es", "I said it three times")
    assert sig.escalation_phrase == "ya lo dije"
    assert sig.sentiment <= -0.6 and sig.sentiment_band == "frustrated"


def test_sentiment_bands_and_mood(layer):
    sig, st = assess(layer, "This is terrible and I hate it, awful service")
    assert sig.sentiment < -0.45 and sig.sentiment_band == "frustrated"
    sig2, _ = assess(layer, "ok thanks, great", state=st)
    # one nice turn does not erase the mood
    assert sig2.sentiment > 0 and sig2.mood < sig2.sentiment


def test_calibrated_confidence_uses_the_calibrator(layer):
    from router.calibration import Calibrator, CurveMap
    from router.signals import SignalExtractor

    cal = Calibrator({("builtin", "routine"): CurveMap("platt", a=1.0, b=-2.0)})
    ext = SignalExtractor(layer.cfg.policy, layer.cfg.assistant.phrases, pivot="en",
                          calibrator=cal, sentiment=lambda _t: 0.0)
    turn = layer.accept("When do you open?", "en", pivot_text=None, at=T0 + 1)
    sig, _ = ext.assess(turn, reply(conf=0.9), SignalState(opened_at=T0))
    assert sig.raw_confidence == 0.9 and sig.confidence == pytest.approx(0.5493, abs=1e-3)
    sig, _ = ext.assess(turn, reply("balance_lookup", conf=0.9), SignalState(opened_at=T0))
    assert sig.confidence == 0.9  # no map for the account class: identity


def test_policy_flags_from_intent_entity_and_phrase(layer):
    sig, _ = assess(layer, "How do I renew my visa?", r=reply("residency_status"))
    assert "residency_status" in sig.policy_flags and sig.regulatory_flags == ("residency_status",)
    sig, _ = assess(layer, "My card is AB12345678CD", r=reply(
        "documents_needed", entities={"residence_card": "AB12345678CD"}))
    assert sig.regulatory_flags == ("residency_status",)
    sig, _ = assess(layer, "口座を差し押さえると言われた", "ja",
                    "I was told they will take my account")
    assert sig.regulatory_flags == ("collections_enforcement",)
    sig, _ = assess(layer, "I have overdue tax", r=reply("collections"))
    assert sig.policy_flags == ("collections",) and sig.regulatory_flags == ()
    sig, _ = assess(layer, "my number is 1234 5678 9012", r=reply(
        "documents_needed", entities={"my_number": "123456789012"}))
    assert sig.policy_flags == ("personal_number",) and not sig.regulatory_flags


def test_flags_accumulate_in_state(layer):
    _, st = assess(layer, "I have overdue tax", r=reply("collections"))
    _, st = assess(layer, "they will seize my bank account", r=reply("collections"), state=st)
    assert st.flags == ["collections", "collections_enforcement"]


def test_misunderstanding_streak_low_confidence(layer):
    st = SignalState(opened_at=T0)
    sig, st = assess(layer, "blah", r=reply(None, conf=0.1, oos=0.9), state=st)
    assert sig.misunderstanding_streak == 1 and not sig.repeated_misunderstanding
    sig, st = assess(layer, "blah blah", r=reply(None, conf=0.1, oos=0.9), state=st)
    assert sig.misunderstanding_streak == 2 and sig.repeated_misunderstanding
    sig, st = assess(layer, "when do you open", r=reply(), state=st)
    assert sig.misunderstanding_streak == 0


def test_misunderstanding_repeated_intent(layer):
    st = SignalState(opened_at=T0)
    r = reply("appointment_lookup", conf=0.95)
    sig, st = assess(layer, "When is my appointment?", r=r, state=st)
    sig, st = assess(layer, "When is my appointment??", r=r, state=st)
    assert sig.misunderstanding_streak == 1  # asked again after an answer
    # the same intent with other words is a new question, not a repeat
    sig, st = assess(layer, "Which counter should I go to for it", r=r, state=st)
    assert sig.misunderstanding_streak == 0
    # after the assistant asked a question, the same intent is the answer, not a repeat
    asked = reply("appointment_reschedule", conf=0.95,
                  state=DialogState(pending={"intent": "appointment_reschedule"}))
    _, st = assess(layer, "reschedule my appointment", r=asked, state=st)
    sig, st = assess(layer, "reschedule my appointment to friday",
                     r=reply("appointment_reschedule", conf=0.95), state=st)
    assert sig.misunderstanding_streak == 0
    # thanks twice is polite, not a misunderstanding
    _, st = assess(layer, "thank you", r=reply("thanks"), state=st)
    sig, st = assess(layer, "thank you", r=reply("thanks"), state=st)
    assert sig.misunderstanding_streak == 0


def test_gave_up_and_time(layer):
    sig, _ = assess(layer, "x y z", r=reply(None, conf=0.0, oos=1.0, gave_up=True),
                    at=T0 + 125)
    assert sig.gave_up and sig.time_in_ai_s == 125 and sig.misunderstanding_streak == 1


def test_payloads_for_the_log(layer):
    sig, _ = assess(layer, "Can I talk to a person about my overdue tax?",
                    r=reply("collections"))
    payloads = {p.name: p for p in sig.to_payloads()}
    assert set(payloads) == {"confidence", "sentiment", "asked_for_person", "escalation_phrase",
                             "misunderstanding_streak", "policy_flags", "assistant_gave_up",
                             "time_in_ai_s", "semantic"}
    assert payloads["confidence"].detail["raw"] == 0.9
    assert payloads["confidence"].detail["intent_class"] == "financial"
    assert payloads["asked_for_person"].value is True
    assert payloads["policy_flags"].detail["flags"] == ["collections"]


def test_state_round_trips(layer):
    _, st = assess(layer, "I have overdue tax", r=reply("collections"))
    assert SignalState.from_dict(st.to_dict()) == st
