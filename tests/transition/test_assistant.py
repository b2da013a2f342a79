"""The built-in assistant: intent scoring over pivot examples, out-of-scope, answers from
config, tools through the account service, slot filling and giving up."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from router.assistant import (
    AccountError,
    Assistant,
    BuiltinAssistant,
    DialogContext,
    InMemoryAccountService,
    IntentScorer,
)
from tests.transition.conftest import T0

TZ = "Asia/Tokyo"


@pytest.fixture(scope="module")
def scorer(cfg_module):
    from router.assistant import build_scorer

    return build_scorer(cfg_module)  # the configured one: sentence embeddings


@pytest.fixture(scope="module")
def tfidf(cfg_module):
    from router.assistant import build_scorer

    return build_scorer(cfg_module.model_copy(update={"scoring": cfg_module.scoring.model_copy(
        update={"method": "tfidf"})}))


@pytest.fixture(scope="module")
def cfg_module():
    from router.assistant import load_assistant_config
    from tests.transition.conftest import CONFIG

    return load_assistant_config(CONFIG)


@pytest.fixture
def accounts():
    return InMemoryAccountService.demo(now=lambda: T0, tz=TZ)


@pytest.fixture
def assistant(cfg_module, accounts, scorer):
    return BuiltinAssistant(cfg_module, accounts, site_timezones={"city-office": TZ},
                            scorer=scorer)


def turn(layer, text, language="en", pivot=None, at=T0 + 10):
    return layer.accept(text, language, pivot_text=pivot, at=at)


def test_builtin_is_an_assistant(assistant):
    assert isinstance(assistant, Assistant) and assistant.name == "builtin"


@pytest.mark.parametrize("text,intent", [
    ("What time does the city office close?", "office_hours"),
    ("Which papers do I need to register my new address?", "documents_needed"),
    ("Where is the welfare section?", "where_to_go"),
    ("When is my appointment?", "appointment_lookup"),
    ("Can I move my appointment to another day?", "appointment_reschedule"),
    ("How much do I owe?", "balance_lookup"),
    ("I got a demand letter for unpaid tax", "collections"),
    ("How do I renew my visa?", "residency_status"),
    ("I want to file a complaint about rude staff", "complaint"),
])
def test_intent_scoring(scorer, text, intent):
    s = scorer.score(text)
    assert s.intent == intent
    assert s.raw_confidence > 0.5 and s.out_of_scope < 0.5
    assert set(s.scores) == set(scorer.classes) - {"_out_of_scope"}


@pytest.mark.parametrize("text", ["tell me a joke", "what is the weather in Paris",
                                  "qwerty zxcvb", "recommend a movie for tonight"])
def test_out_of_scope_scores_high(scorer, text):
    assert scorer.score(text).out_of_scope >= 0.6


def test_scorer_fast_path_matches_sklearn(tfidf):
    import numpy as np

    scorer = tfidf
    for text in ["where is counter 3", "how much tax do i owe", "x", "ありがとう"]:
        slow = (scorer._examples @ scorer._embed([text]).T).toarray().ravel()
        fast = scorer._examples @ scorer._embed_one(text)
        assert np.allclose(slow, fast)


def test_scorer_needs_two_intents():
    with pytest.raises(ValueError):
        IntentScorer({"only": ["a b c"]})


async def test_answer_from_config_with_topic_and_facts(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office")
    r = await assistant.respond(turn(layer, "What documents do I need to register my move?"),
                                ctx)
    assert r.intent == "documents_needed" and "moving-out certificate" in r.text
    r = await assistant.respond(turn(layer, "When is the office open?"), ctx)
    assert "Monday to Friday, 8:30" in r.text and r.language == "en"
    ctx = DialogContext(case_id="c2", site="north-branch")
    r = await assistant.respond(turn(layer, "When is the office open?"), ctx)
    assert "North Branch" in r.text and "9:00 to 17:00" in r.text


async def test_localized_answer_when_configured(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office")
    r = await assistant.respond(turn(layer, "ありがとう", "ja", "Thank you"), ctx)
    assert r.intent == "thanks" and r.language == "ja" and "どういたしまして" in r.text
    r = await assistant.respond(turn(layer, "Obrigado", "pt", "Thanks"), ctx)
    assert r.language == "pt"
    r = await assistant.respond(turn(layer, "转入需要什么材料", "zh",
                                     "What documents do I need to move in?"), ctx)
    assert r.language == "en"  # no zh answer in config: the caller translates


async def test_appointment_lookup_records_the_action(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office", resident="res-1")
    r = await assistant.respond(turn(layer, "When is my appointment?"), ctx)
    assert r.intent == "appointment_lookup"
    assert [a.tool for a in r.actions] == ["lookup_appointment"]
    a = r.actions[0]
    assert a.ok and a.args == {"resident": "res-1"} and a.result[0]["reference"] == "AP-1001"
    assert "AP-1001" in r.text and "10:00" in r.text and "Counter 3" in r.text
    # by reference, from another resident's text
    ctx = DialogContext(case_id="c2", site="city-office")
    r = await assistant.respond(turn(layer, "Check my appointment ap-1003 please"), ctx)
    assert r.actions[0].args == {"reference": "AP-1003"} and "AP-1003" in r.text


async def test_lookup_without_anything_to_look_up(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office")
    r = await assistant.respond(turn(layer, "When is my appointment?"), ctx)
    assert r.actions == [] and "could not find" in r.text


async def test_reschedule_asks_then_moves(assistant, accounts, layer):
    ctx = DialogContext(case_id="c1", site="city-office", resident="res-2")
    r = await assistant.respond(turn(layer, "I need to reschedule my appointment"), ctx)
    assert r.intent == "appointment_reschedule" and "which day and time" in r.text.lower()
    assert r.state.pending["reference"] == "AP-1002"
    ctx.state = r.state
    r = await assistant.respond(turn(layer, "Thursday at 11:00"), ctx)
    assert r.intent == "appointment_reschedule" and r.raw_confidence >= 0.9
    assert [a.tool for a in r.actions] == ["lookup_appointment", "reschedule_appointment"]
    assert r.actions[-1].ok and r.state.pending == {}
    moved = (await accounts.appointments(reference="AP-1002"))[0]
    assert moved.start == datetime(2025, 10, 9, 11, 0, tzinfo=ZoneInfo(TZ))
    assert "Thursday 2025-10-09" in r.text and "11:00" in r.text


async def test_reschedule_failure_is_a_failed_action(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office", resident="res-2")
    r = await assistant.respond(turn(layer, "Move my appointment to Saturday at 10:00"), ctx)
    assert r.actions[-1].tool == "reschedule_appointment" and not r.actions[-1].ok
    assert r.actions[-1].result["error"] == "outside_hours"
    assert "could not move it" in r.text and r.state.pending["intent"] == \
        "appointment_reschedule"


async def test_balance_lookup(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office", resident="res-3")
    r = await assistant.respond(turn(layer, "How much tax do I have to pay?"), ctx)
    assert r.actions[0].tool == "lookup_balance" and "76,000" in r.text


async def test_not_understood_then_gives_up(assistant, layer):
    ctx = DialogContext(case_id="c1", site="city-office")
    r = await assistant.respond(turn(layer, "tell me a joke"), ctx)
    assert r.intent is None and not r.gave_up and "did not understand" in r.text
    ctx.state = r.state
    r = await assistant.respond(turn(layer, "what is the weather tomorrow"), ctx)
    assert r.gave_up and "find a person" in r.text
    ctx.state = r.state
    r = await assistant.respond(turn(layer, "when do you open?"), ctx)  # understood again
    assert not r.gave_up and r.state.fallbacks == 0


async def test_account_service_rules(accounts):
    tz = ZoneInfo(TZ)
    with pytest.raises(AccountError) as e:
        await accounts.reschedule("AP-9999", datetime(2025, 10, 9, 10, tzinfo=tz))
    assert e.value.reason == "not_found"
    with pytest.raises(AccountError) as e:
        await accounts.reschedule("AP-1001", datetime(2025, 10, 1, 10, tzinfo=tz))
    assert e.value.reason == "in_the_past"
    with pytest.raises(AccountError) as e:
        await accounts.reschedule("AP-1001", datetime(2025, 10, 9, 10, 15, tzinfo=tz))
    assert e.value.reason == "outside_hours"
    # a slot another appointment holds at the same counter is taken
    other = (await accounts.appointments(reference="AP-1001"))[0]
    same_counter = InMemoryAccountService(now=lambda: T0, tz=TZ, appointments=[
        other, other.model_copy(update={"reference": "AP-2000", "resident": "res-9",
                                        "start": datetime(2025, 10, 10, 9, 30, tzinfo=tz)})])
    with pytest.raises(AccountError) as e:
        await same_counter.reschedule("AP-1001", datetime(2025, 10, 10, 9, 30, tzinfo=tz))
    assert e.value.reason == "slot_taken"
    moved = await same_counter.reschedule("ap-1001", datetime(2025, 10, 10, 10, 0, tzinfo=tz))
    assert moved.reference == "AP-1001" and moved.start.hour == 10
